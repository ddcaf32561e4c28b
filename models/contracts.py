"""Canonical data contracts: the one place where the product's tables are defined.

Every source system (the embedded demo world, Salesforce, a Zendesk-style API, any SQL
warehouse) is mapped into these tables before anything downstream sees it. Each contract names
its columns, their kind, whether they may be null, the primary key and the references to other
tables. `conform()` turns a raw frame into the contract's dtypes and raises `ContractError`
naming the problem; the Great Expectations suites in `models.quality` check the rest (duplicate
ids, unknown references, impossible dates, negative counts).

Timestamps are timezone-naive UTC (`datetime64[ns]`), dates are midnight timestamps.

| table          | grain                          | primary key         |
|----------------|--------------------------------|---------------------|
| accounts       | one row per customer account   | account_id          |
| renewals       | one row per renewal (contract) | renewal_id          |
| tickets        | one row per support ticket     | ticket_id           |
| usage_daily    | one row per account per day    | account_id, date    |
| churn_outcomes | one row per churn event        | account_id, churned_at |
| account_history | one row per account per change | account_id, valid_from |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

Kind = Literal["str", "float", "int", "datetime", "bool"]

SEGMENTS = ("enterprise", "mid_market", "smb")
RENEWAL_OUTCOMES = ("renewed", "churned", "open")
TICKET_PRIORITIES = ("urgent", "high", "normal", "low")
TICKET_STATUSES = ("new", "open", "pending", "solved", "closed")


class ContractError(ValueError):
    """A frame does not satisfy its contract. The message names the table and the column."""


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    nullable: bool = False
    description: str = ""
    allowed: tuple[str, ...] | None = None
    min_value: float | None = None
    may_be_future: bool = False  # datetimes only: scheduled dates (e.g. a renewal) may lie ahead


@dataclass(frozen=True)
class Reference:
    column: str
    table: str
    target: str = "account_id"


@dataclass(frozen=True)
class TableContract:
    name: str
    description: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    references: tuple[Reference, ...] = field(default_factory=tuple)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


ACCOUNTS = TableContract(
    name="accounts",
    description="Customer accounts from the CRM.",
    primary_key=("account_id",),
    columns=(
        Column("account_id", "str", description="Stable account identifier (CRM id)."),
        Column("name", "str", description="Account name."),
        Column("segment", "str", allowed=SEGMENTS, description="enterprise / mid_market / smb."),
        Column("industry", "str", nullable=True),
        Column("region", "str", nullable=True),
        Column("arr", "float", min_value=0, description="Annual recurring revenue, in currency units."),
        Column("plan", "str", nullable=True, description="Commercial plan / edition."),
        Column("seats", "int", min_value=0, description="Licensed seats."),
        Column("csm_owner", "str", nullable=True, description="Customer success manager who owns the account."),
        Column("created_at", "datetime", description="When the account became a customer."),
    ),
)

RENEWALS = TableContract(
    name="renewals",
    description="Renewal opportunities (one per contract term) from the CRM.",
    primary_key=("renewal_id",),
    references=(Reference("account_id", "accounts"),),
    columns=(
        Column("renewal_id", "str"),
        Column("account_id", "str"),
        Column("renewal_date", "datetime", may_be_future=True, description="End of the contract term being renewed."),
        Column("amount", "float", min_value=0, description="ARR up for renewal."),
        Column("stage", "str", nullable=True, description="CRM opportunity stage."),
        Column("closed_at", "datetime", nullable=True, description="When the outcome became known."),
        Column("outcome", "str", allowed=RENEWAL_OUTCOMES),
    ),
)

TICKETS = TableContract(
    name="tickets",
    description="Support tickets from the ticketing system.",
    primary_key=("ticket_id",),
    references=(Reference("account_id", "accounts"),),
    columns=(
        Column("ticket_id", "str"),
        Column("account_id", "str"),
        Column("created_at", "datetime"),
        Column("first_response_at", "datetime", nullable=True),
        Column("solved_at", "datetime", nullable=True),
        Column("priority", "str", allowed=TICKET_PRIORITIES),
        Column("category", "str", nullable=True),
        Column("status", "str", allowed=TICKET_STATUSES),
        Column("csat", "float", nullable=True, min_value=1, description="1-5, given when solved."),
        Column("escalated", "bool"),
    ),
)

USAGE_DAILY = TableContract(
    name="usage_daily",
    description="Product usage aggregated in the warehouse to one row per account per day.",
    primary_key=("account_id", "date"),
    references=(Reference("account_id", "accounts"),),
    columns=(
        Column("account_id", "str"),
        Column("date", "datetime"),
        Column("active_users", "int", min_value=0),
        Column("events", "int", min_value=0),
        Column("core_events", "int", min_value=0, description="Events on the product's core workflow."),
        Column("advanced_events", "int", min_value=0, description="Events on advanced / sticky features."),
    ),
)

CHURN_OUTCOMES = TableContract(
    name="churn_outcomes",
    description="Churn events derived from renewals: the labels of the churn model.",
    primary_key=("account_id", "churned_at"),
    references=(Reference("account_id", "accounts"),),
    columns=(
        Column("account_id", "str"),
        Column("churned_at", "datetime", description="When the churn became known (renewal closed lost)."),
        Column("arr_lost", "float", min_value=0),
    ),
)

ACCOUNT_HISTORY = TableContract(
    name="account_history",
    description="Account attributes as they changed; features read them as of each observation date.",
    primary_key=("account_id", "valid_from"),
    references=(Reference("account_id", "accounts"),),
    columns=(
        Column("account_id", "str"),
        Column("valid_from", "datetime", description="From when the values hold (until the account's next row)."),
        Column("arr", "float", min_value=0, description="Annual recurring revenue in force (0 between terms)."),
        Column("plan", "str", nullable=True),
        Column("seats", "int", nullable=True, min_value=0),
        Column("segment", "str", nullable=True),
        Column("csm_owner", "str", nullable=True),
    ),
)

CONTRACTS: dict[str, TableContract] = {
    c.name: c for c in (ACCOUNTS, RENEWALS, TICKETS, USAGE_DAILY, CHURN_OUTCOMES, ACCOUNT_HISTORY)
}


def _coerce(series: pd.Series, col: Column, table: str) -> pd.Series:
    try:
        if col.kind == "str":
            out = series.astype("string")
        elif col.kind == "float":
            out = pd.to_numeric(series, errors="raise").astype("float64")
        elif col.kind == "int":
            num = pd.to_numeric(series, errors="raise")
            if num.isna().any():
                out = num.astype("Int64")
            else:
                if not np.all(np.mod(num.to_numpy(dtype="float64"), 1) == 0):
                    raise ValueError("non-integer values")
                out = num.astype("int64")
        elif col.kind == "datetime":
            out = pd.to_datetime(series, errors="raise", utc=True, format="mixed").dt.tz_localize(None)
            out = out.astype("datetime64[ns]")
        elif col.kind == "bool":
            if pd.api.types.is_bool_dtype(series):
                out = series.astype("bool")
            else:
                mapping = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}
                lowered = series.astype("string").str.strip().str.lower()
                bad = ~lowered.isin(list(mapping)) & lowered.notna()
                if bad.any():
                    raise ValueError(f"not a boolean: {lowered[bad].iloc[0]!r}")
                out = lowered.map(mapping).astype("boolean").fillna(False).astype("bool")
        else:  # pragma: no cover - Kind is closed
            raise ValueError(f"unknown kind {col.kind}")
    except (ValueError, TypeError) as exc:
        raise ContractError(
            f"{table}.{col.name}: cannot read as {col.kind} ({exc})"
        ) from exc
    return out


def conform(df: pd.DataFrame, contract: TableContract, *, lenient: bool = False) -> pd.DataFrame:
    """Return `df` restricted to the contract's columns, in order, with the contract's dtypes.

    Values are coerced (numbers stored as text become numbers). Strict (the default): raises
    `ContractError` naming every missing column, or the first column that cannot be read as its
    kind. Lenient (used when pulling sources, before the quality checks): missing columns stay
    missing and a column that cannot be coerced keeps its raw values, so the Great Expectations
    suite can count and name every problem instead of the pull failing on the first one. Rows
    are never dropped or reordered here.
    """
    missing = [c for c in contract.column_names if c not in df.columns]
    if missing and not lenient:
        raise ContractError(f"{contract.name}: missing column(s) {', '.join(missing)}")
    out = pd.DataFrame(index=df.index)
    for col in contract.columns:
        if col.name not in df.columns:
            continue
        try:
            out[col.name] = _coerce(df[col.name], col, contract.name)
        except ContractError:
            if not lenient:
                raise
            out[col.name] = df[col.name]
    return out.reset_index(drop=True)


def empty_frame(contract: TableContract) -> pd.DataFrame:
    """An empty frame with the contract's columns and dtypes."""
    dtypes = {"str": "string", "float": "float64", "int": "int64", "datetime": "datetime64[ns]", "bool": "bool"}
    return pd.DataFrame({c.name: pd.Series(dtype=dtypes[c.kind]) for c in contract.columns})


# --------------------------------------------------------------------------------------------
# Frames passed between stages (not source tables). Their columns are fixed here so that the
# policy engine (models.routing), the queue store (connectors.queue.store) and the assets agree.
# --------------------------------------------------------------------------------------------

#: `rescue_candidates` input to the policy: one row per account at the snapshot, every column
#: usable in a policy condition. Produced by models.churn.scoring.build_candidate_frame.
CANDIDATE_COLUMNS: dict[str, str] = {
    "account_id": "str: account id",
    "name": "str: account name",
    "segment": "str: enterprise / mid_market / smb",
    "industry": "str",
    "region": "str",
    "plan": "str",
    "csm_owner": "str: CSM who owns the account",
    "arr": "float: annual recurring revenue",
    "vip": "bool: strategic account (enterprise and ARR in the top decile of enterprise)",
    "churn_risk": "float 0-1: calibrated churn probability within the horizon",
    "churn_risk_delta": "float: change since the previous snapshot (0 if none)",
    "health_score": "float 0-100 (100 = healthy)",
    "health_band": "str: healthy / watch / at_risk / critical",
    "expected_arr_at_risk": "float: churn_risk x arr",
    "renewal_date": "datetime: next open renewal (NaT if none)",
    "days_to_renewal": "float: days from snapshot to renewal_date (NaN if none)",
    "open_urgent_tickets": "int: urgent tickets open at the snapshot",
    "oldest_open_urgent_hours": "float: age in hours of the oldest open urgent ticket (0 if none)",
    "open_compliance_tickets": "int: open tickets whose category is compliance/legal/security",
    "wau_trend": "float: active users last 7 days / 90-day average - 1 (e.g. -0.38)",
    "top_reason": "str: the first risk driver in words",
    "drivers": "list[dict]: top signed drivers {feature, phrase, contribution}",
    "movers": "list[dict]: since the previous snapshot, the features whose contribution moved most {feature, delta}",
    "model_version": "str: version of the champion model that scored the account",
    "snapshot_date": "datetime: the observation date",
}

#: Output of the policy engine, input to QueueStore.apply_decisions: one row per candidate. The
#: headline reason of a case is structured: rule_id, rule_description and reason_driver.
DECISION_COLUMNS: dict[str, str] = {
    "account_id": "str",
    "action": "str: route (new case) | update (open case re-confirmed) | holdout | overflow | cooldown | not_eligible",
    "priority": "str: P1..P4 (null when not eligible)",
    "team": "str: team key from the policy",
    "required_skills": "list[str]",
    "rule_id": "str: id of the severity rule that matched (null when not eligible)",
    "rule_description": "str: that rule's description (null when not eligible)",
    "reason_driver": "str: the strongest risk driver in words, the candidate's top_reason (null when not eligible or none)",
    "reasons": "list[str]: human-readable, for display: why this action, then 'rule_id: rule_description' and 'top driver: reason_driver'",
    "expected_arr_at_risk": "float",
    "rank": "int: rank within the team's daily budget (1 = most ARR at risk)",
    "assignee": "str: member id chosen by skills, capacity and load (routed rows)",
    "sla_first_touch_due": "datetime (naive UTC): first-touch deadline on the team's business calendar",
    "sla_resolution_due": "datetime (naive UTC): resolution deadline on the team's business calendar",
    "case_id": "str: the open case an update applies to",
    "previous_priority": "str: the open case's priority before this snapshot (updates)",
}


def describe_contracts_markdown() -> str:
    """All contracts and stage frames as one Markdown document (`rescue demo contracts`)."""
    lines: list[str] = [
        "# Data contracts",
        "",
        "Generated from `models/contracts.py`, the single source of truth: regenerate with",
        "`rescue demo contracts > docs/contracts.md` after changing it.",
        "",
    ]
    for contract in CONTRACTS.values():
        lines.append(f"### `{contract.name}`\n\n{contract.description} Primary key: "
                     f"`{', '.join(contract.primary_key)}`.\n")
        lines.append("| column | type | nullable | notes |")
        lines.append("|---|---|---|---|")
        for c in contract.columns:
            notes = c.description
            if c.allowed:
                notes = (notes + " One of: " + ", ".join(c.allowed) + ".").strip()
            if c.min_value is not None:
                notes = (notes + f" >= {c.min_value:g}.").strip()
            lines.append(f"| {c.name} | {c.kind} | {'yes' if c.nullable else 'no'} | {notes} |")
        lines.append("")
    for title, columns in (("rescue candidates (policy input)", CANDIDATE_COLUMNS),
                           ("routing decisions (policy output)", DECISION_COLUMNS)):
        lines += [f"### {title}", "", "| column | meaning |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in columns.items()]
        lines.append("")
    return "\n".join(lines)
