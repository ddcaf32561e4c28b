"""Canonical data contracts: the one place where the product's tables are defined.

Every source system (the embedded demo world, Salesforce, Freshdesk, Zendesk, any SQL
warehouse) is mapped into these tables before anything downstream sees it. Each contract names
its columns, their kind, whether they may be null, the range of every number, the length of
every identifier, the primary key and the references to other tables. `conform()` turns a raw
frame into the contract's dtypes and raises `ContractError` naming the problem; the Great
Expectations suites in `models.quality` check the rest (empty tables, duplicate ids, unknown
references, impossible dates, numbers out of range, over-long ids).

Every number has a finite range (`Column.min_value`, `Column.max_value`): a value outside it
(infinite, negative, absurdly large) is a fault of the source, never something to route on. The
ranges are generic ceilings for a B2B customer base, not fitted to one data set: money per
account up to `MAX_ARR`, people per account up to `MAX_PEOPLE`, events per account and day up
to `MAX_DAILY_EVENTS`, CSAT 1 to 5. Account ids are at most `ACCOUNT_ID_CHARS` characters, the
length of the rescue queue's account_id columns (`connectors/queue/schema.py` declares them from
this constant), so a longer id is refused at the source instead of failing the queue write. A
source table may not be empty (`TableContract.may_be_empty`): an empty pull is an outage, not a
quiet day. The frames passed to routing have their own ranges (`CANDIDATE_BOUNDS`).

Timestamps are timezone-naive UTC (`datetime64[ns]`), dates are midnight timestamps. Text
dates are read as ISO 8601 (or any unambiguous form); a text date with two numbers before the
year (``03/04/2024``, ``3-4-24``, ``03.04.2024``) has no order of its own, day first or month
first, so `conform` refuses it unless the caller declares the column's ``format`` or
``day_first`` (`date_formats`, `day_first`): it is never silently read month-first.

| table          | grain                          | primary key         |
|----------------|--------------------------------|---------------------|
| accounts       | one row per customer account   | account_id          |
| renewals       | one row per renewal (contract) | renewal_id          |
| tickets        | one row per support ticket     | ticket_id           |
| usage_daily    | one row per account per day    | account_id, date    |
| churn_outcomes | one row per churn event        | account_id, churned_at |
| account_history | one row per account per change | account_id, valid_from |

`account_history` is an optional source: where it is landed, features read ARR, plan, seats,
segment and CSM owner as they were at each observation date (`models.churn.attributes`); where it
is not, those attributes are assumed constant (the accounts table's current values).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from models.text import preview

Kind = Literal["str", "float", "int", "datetime", "bool"]

SEGMENTS = ("enterprise", "mid_market", "smb")
RENEWAL_OUTCOMES = ("renewed", "churned", "open")
TICKET_PRIORITIES = ("urgent", "high", "normal", "low")
TICKET_STATUSES = ("new", "open", "pending", "solved", "closed")

#: Ceiling of money per account (ARR, a renewal's amount, ARR lost), in currency units. Generous
#: for any currency with cents-sized units; a currency of much smaller units needs a higher one.
MAX_ARR = 1e10
#: Ceiling of people per account: licensed seats, active users on one day.
MAX_PEOPLE = 10_000_000
#: Ceiling of product events per account per day (about 115,000 a second, all day).
MAX_DAILY_EVENTS = 10_000_000_000
#: Longest account id, in characters: the length of the rescue queue's account_id columns.
ACCOUNT_ID_CHARS = 128


class ContractError(ValueError):
    """A frame does not satisfy its contract. The message names the table and the column."""


def _number(value: float) -> str:
    value = float(value)
    return f"{int(value):,}" if value.is_integer() and abs(value) < 1e16 else f"{value:g}"


def bounds_text(min_value: float | None, max_value: float | None) -> str:
    """A range in words: "0 to 1", "at least 0", "at most 5", "any finite number"."""
    if min_value is not None and max_value is not None:
        return f"{_number(min_value)} to {_number(max_value)}"
    if min_value is not None:
        return f"at least {_number(min_value)}"
    if max_value is not None:
        return f"at most {_number(max_value)}"
    return "any finite number"


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    nullable: bool = False
    description: str = ""
    allowed: tuple[str, ...] | None = None
    min_value: float | None = None
    max_value: float | None = None  # numbers: every value lies in [min_value, max_value]
    may_be_future: bool = False  # datetimes only: scheduled dates (e.g. a renewal) may lie ahead
    max_length: int | None = None  # strings: longest value, in characters (longer is refused)

    @property
    def numeric(self) -> bool:
        return self.kind in ("float", "int")

    def range_text(self) -> str:
        """The declared range in words ("0 to 10,000,000,000"), empty when there is none."""
        if self.min_value is None and self.max_value is None:
            return ""
        return bounds_text(self.min_value, self.max_value)


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
    may_be_empty: bool = False  # source tables may not: an empty pull is an outage

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
        Column("account_id", "str", max_length=ACCOUNT_ID_CHARS, description="Stable account identifier (CRM id)."),
        Column("name", "str", description="Account name, any length (the rescue queue stores and shows it cut to its column's size, marked as cut)."),
        Column("segment", "str", allowed=SEGMENTS, description="enterprise / mid_market / smb."),
        Column("industry", "str", nullable=True),
        Column("region", "str", nullable=True),
        Column("arr", "float", min_value=0, max_value=MAX_ARR, description="Annual recurring revenue, in currency units."),
        Column("plan", "str", nullable=True, description="Commercial plan / edition."),
        Column("seats", "int", min_value=0, max_value=MAX_PEOPLE, description="Licensed seats."),
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
        Column("account_id", "str", max_length=ACCOUNT_ID_CHARS),
        Column("renewal_date", "datetime", may_be_future=True, description="End of the contract term being renewed."),
        Column("amount", "float", min_value=0, max_value=MAX_ARR, description="ARR up for renewal."),
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
        Column("account_id", "str", max_length=ACCOUNT_ID_CHARS),
        Column("created_at", "datetime"),
        Column("first_response_at", "datetime", nullable=True),
        Column("solved_at", "datetime", nullable=True),
        Column("priority", "str", allowed=TICKET_PRIORITIES),
        Column("category", "str", nullable=True),
        Column("status", "str", allowed=TICKET_STATUSES),
        Column("csat", "float", nullable=True, min_value=1, max_value=5, description="Given when solved."),
        Column("escalated", "bool"),
    ),
)

USAGE_DAILY = TableContract(
    name="usage_daily",
    description="Product usage aggregated in the warehouse to one row per account per day.",
    primary_key=("account_id", "date"),
    references=(Reference("account_id", "accounts"),),
    columns=(
        Column("account_id", "str", max_length=ACCOUNT_ID_CHARS),
        Column("date", "datetime"),
        Column("active_users", "int", min_value=0, max_value=MAX_PEOPLE),
        Column("events", "int", min_value=0, max_value=MAX_DAILY_EVENTS),
        Column("core_events", "int", min_value=0, max_value=MAX_DAILY_EVENTS, description="Events on the product's core workflow."),
        Column("advanced_events", "int", min_value=0, max_value=MAX_DAILY_EVENTS, description="Events on advanced / sticky features."),
    ),
)

CHURN_OUTCOMES = TableContract(
    name="churn_outcomes",
    description="Churn events derived from renewals: the labels of the churn model.",
    primary_key=("account_id", "churned_at"),
    references=(Reference("account_id", "accounts"),),
    may_be_empty=True,  # derived: no account may have churned yet
    columns=(
        Column("account_id", "str", max_length=ACCOUNT_ID_CHARS),
        Column("churned_at", "datetime", description="When the churn became known (renewal closed lost)."),
        Column("arr_lost", "float", min_value=0, max_value=MAX_ARR),
    ),
)

ACCOUNT_HISTORY = TableContract(
    name="account_history",
    description="Account attributes as they changed (ARR, plan, seats, segment, owner); features read them as of each observation date.",
    primary_key=("account_id", "valid_from"),
    references=(Reference("account_id", "accounts"),),
    columns=(
        Column("account_id", "str", max_length=ACCOUNT_ID_CHARS),
        Column("valid_from", "datetime", description="From when the row's values hold, until the account's next row. Each row carries every attribute as it then stood (a null is not known, not unchanged)."),
        Column("arr", "float", min_value=0, max_value=MAX_ARR, description="Annual recurring revenue in force, in currency units."),
        Column("plan", "str", nullable=True),
        Column("seats", "int", nullable=True, min_value=0, max_value=MAX_PEOPLE),
        Column("segment", "str", nullable=True, allowed=SEGMENTS),
        Column("csm_owner", "str", nullable=True),
    ),
)

CONTRACTS: dict[str, TableContract] = {
    c.name: c for c in (ACCOUNTS, RENEWALS, TICKETS, USAGE_DAILY, CHURN_OUTCOMES, ACCOUNT_HISTORY)
}


#: Text read as a boolean (case and surrounding spaces ignored).
BOOLEAN_TEXT = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


#: A text date with two numbers before the year: 03/04/2024, 3-4-24, 03.04.2024 10:00.
_DAY_MONTH_TEXT = re.compile(r"^\s*\d{1,2}[/.\-]\d{1,2}[/.\-]\d{2,4}(?![\d/.\-])")


def series_kind(series: pd.Series) -> str:
    """The contract kind a frame column holds by its dtype: bool, int, float, datetime or str
    (anything else). The one reading of a dtype that writers and displays map to their types."""
    if pd.api.types.is_bool_dtype(series):
        return "bool"
    if pd.api.types.is_integer_dtype(series):
        return "int"
    if pd.api.types.is_float_dtype(series):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    return "str"


def day_month_text(series: pd.Series) -> pd.Series:
    """Which values of `series` are text dates with two numbers before the year, whose order
    (day first or month first) the text does not tell."""
    if not (pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)):
        return pd.Series(False, index=series.index)
    text = series.map(lambda v: v if isinstance(v, str) else None)
    return text.str.match(_DAY_MONTH_TEXT).fillna(False).astype(bool)


def ambiguous_dates_message(example: object) -> str:
    """Why a day/month text date is refused, naming an example."""
    return (f"the day/month order of {preview(example)} is ambiguous (day first or month first): "
            "declare the column's date format or day_first")


def _parse_datetimes(series: pd.Series, *, date_format: str | None, day_first: bool | None) -> pd.Series:
    if date_format:
        return pd.to_datetime(series, errors="raise", utc=True, format=date_format)
    day_month = day_month_text(series)
    if day_month.any() and day_first is None:
        raise ValueError(ambiguous_dates_message(series[day_month].iloc[0]))
    out = pd.to_datetime(series.where(~day_month), errors="raise", utc=True, format="mixed")
    if day_month.any():
        # only the day/month values are read with the declared order: dayfirst would also turn
        # an ISO 2024-01-05 into May 1st
        text = series[day_month]
        parsed = pd.to_datetime(text, errors="raise", utc=True, format="mixed", dayfirst=bool(day_first))
        # ... and a value the declared order cannot read (13/04/2024 month first) is refused,
        # where the parser would quietly swap it
        numbers = text.str.extract(r"^\s*(\d{1,2})[/.\-](\d{1,2})").astype(int)
        day, month = (numbers[0], numbers[1]) if day_first else (numbers[1], numbers[0])
        wrong = (parsed.dt.day != day) | (parsed.dt.month != month)
        if wrong.any():
            order = "day first" if day_first else "month first"
            raise ValueError(f"{preview(text[wrong].iloc[0])} is not a date {order}, the declared order")
        out[day_month] = parsed
    return out


def _coerce(series: pd.Series, col: Column, table: str, *, date_format: str | None = None,
            day_first: bool | None = None) -> pd.Series:
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
                values = num.to_numpy(dtype="float64")
                if not np.all(np.isfinite(values)) or not np.all(np.mod(values, 1) == 0):
                    raise ValueError("non-integer values")
                out = num.astype("int64")
        elif col.kind == "datetime":
            out = _parse_datetimes(series, date_format=date_format, day_first=day_first).dt.tz_localize(None)
            out = out.astype("datetime64[ns]")
        elif col.kind == "bool":
            if pd.api.types.is_bool_dtype(series):
                out = series.astype("bool")
            else:
                lowered = series.astype("string").str.strip().str.lower()
                bad = ~lowered.isin(list(BOOLEAN_TEXT)) & lowered.notna()
                if bad.any():
                    raise ValueError(f"not a boolean: {lowered[bad].iloc[0]!r}")
                out = lowered.map(BOOLEAN_TEXT).astype("boolean").fillna(False).astype("bool")
        else:  # pragma: no cover - Kind is closed
            raise ValueError(f"unknown kind {col.kind}")
    except (ValueError, TypeError) as exc:
        raise ContractError(
            f"{table}.{col.name}: cannot read as {col.kind} ({exc})"
        ) from exc
    return out


def conform(df: pd.DataFrame, contract: TableContract, *, lenient: bool = False,
            date_formats: Mapping[str, str] | None = None, day_first: bool | None = None) -> pd.DataFrame:
    """Return `df` restricted to the contract's columns, in order, with the contract's dtypes.

    Values are coerced (numbers stored as text become numbers). Strict (the default): raises
    `ContractError` naming every missing column, or the first column that cannot be read as its
    kind. Lenient (used when pulling sources, before the quality checks): missing columns stay
    missing and a column that cannot be coerced keeps its raw values, so the Great Expectations
    suite can count and name every problem instead of the pull failing on the first one. Rows
    are never dropped or reordered here.

    Text dates: `date_formats` declares a column's format (``{"created_at": "%d-%m-%Y"}``);
    `day_first` the order of every day/month text date (``03/04/2024``) of the other columns.
    Without either, a day/month text date cannot be read (see the module docs).
    """
    missing = [c for c in contract.column_names if c not in df.columns]
    if missing and not lenient:
        raise ContractError(f"{contract.name}: missing column(s) {', '.join(missing)}")
    out = pd.DataFrame(index=df.index)
    for col in contract.columns:
        if col.name not in df.columns:
            continue
        try:
            out[col.name] = _coerce(df[col.name], col, contract.name,
                                    date_format=(date_formats or {}).get(col.name), day_first=day_first)
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
    "churn_risk_percentile": "float 0-1: share of the scored book at or below this account's churn risk (1 = the riskiest); a threshold on it transfers between companies with different base rates",
    "arr_percentile": "float 0-1: share of the scored book at or below this account's ARR (1 = the largest)",
    "renewal_date": "datetime: next open renewal (NaT if none)",
    "days_to_renewal": "float: days from snapshot to renewal_date (NaN if none)",
    "open_urgent_tickets": "int: urgent tickets open at the snapshot",
    "oldest_open_urgent_hours": "float: age in hours of the oldest open urgent ticket (0 if none)",
    "open_compliance_tickets": "int: open tickets whose category is compliance/legal/security",
    "wau_trend": "float: active users last 7 days / 90-day average - 1 (e.g. -0.38)",
    "top_reason": "str: the headline driver in words: the strongest changeable warning sign raising risk, or a plain statement that the risk comes from the account profile",
    "drivers": "list[dict]: top signed drivers {feature, phrase, contribution, kind, warning}; kind is fixed (an account attribute: context, never a headline) or changeable",
    "movers": "list[dict]: since the previous snapshot, the features whose contribution moved most {feature, delta}",
    "model_version": "str: version of the champion model that scored the account",
    "snapshot_date": "datetime: the observation date",
}



@dataclass(frozen=True)
class Bounds:
    """The range of a number in a stage frame: finite, within [min_value, max_value], and
    missing (NaN) only when `nullable`."""

    min_value: float | None = None
    max_value: float | None = None
    nullable: bool = False

    def text(self) -> str:
        return bounds_text(self.min_value, self.max_value) + ("; may be missing" if self.nullable else "")


#: The range of every number of the candidate frame. `models.routing.inputs` refuses a frame
#: with a value outside them (whatever produced it), so an infinite ARR or a risk above 1 never
#: decides a priority.
#: Candidate columns derived from the others over the whole scored book (`book_percentiles`):
#: not kept in the candidate history, recomputed wherever a frame lacks them (a replay of an older
#: history), so one definition serves the daily run and every simulation.
BOOK_PERCENTILES: dict[str, str] = {"churn_risk_percentile": "churn_risk", "arr_percentile": "arr"}


def book_percentiles(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with each `BOOK_PERCENTILES` column filled where missing: the share of the frame's
    rows whose value is at or below the row's own (ties share the higher rank, so the riskiest
    account of a book is 1.0 and "churn_risk_percentile >= 0.95" is the riskiest 5%). A row with
    no value has none. The frame must be the whole book of one snapshot: a percentile of a
    subset means something else."""
    missing = {c: src for c, src in BOOK_PERCENTILES.items() if c not in frame.columns and src in frame.columns}
    if not missing:
        return frame
    out = frame.copy(deep=False)  # copy-on-write: the caller's frame is never changed
    for column, source in missing.items():
        out[column] = pd.to_numeric(out[source], errors="coerce").rank(method="max", pct=True).astype("float64")
    return out


CANDIDATE_BOUNDS: dict[str, Bounds] = {
    "arr": Bounds(0, MAX_ARR),
    "churn_risk": Bounds(0, 1),
    "churn_risk_delta": Bounds(-1, 1),
    "health_score": Bounds(0, 100),
    "expected_arr_at_risk": Bounds(0, MAX_ARR),
    "churn_risk_percentile": Bounds(0, 1, nullable=True),
    "arr_percentile": Bounds(0, 1, nullable=True),
    "days_to_renewal": Bounds(nullable=True),
    "open_urgent_tickets": Bounds(0),
    "oldest_open_urgent_hours": Bounds(0),
    "open_compliance_tickets": Bounds(0),
    "wau_trend": Bounds(-1, nullable=True),
}


def out_of_bounds(frame: pd.DataFrame, bounds: dict[str, Bounds], *, table: str,
                  id_column: str = "account_id") -> list[str]:
    """One line per column of `frame` with values outside its `bounds` (columns absent from the
    frame are not checked): not a number, infinite, missing where required, below the minimum or
    above the maximum. Each line names the table, the column, the number of such rows and the
    first one's id and value."""
    problems: list[str] = []
    for name, rng in bounds.items():
        if name not in frame.columns:
            continue
        raw = frame[name]
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        missing = pd.isna(raw).to_numpy()
        bad = (np.isnan(values) & ~missing) | np.isinf(values) | (missing & (not rng.nullable))
        with np.errstate(invalid="ignore"):
            if rng.min_value is not None:
                bad |= values < rng.min_value
            if rng.max_value is not None:
                bad |= values > rng.max_value
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            ident = frame[id_column].iloc[first] if id_column in frame.columns else f"row {first}"
            problems.append(
                f"{table}.{name}: {int(bad.sum())} value(s) outside its range ({rng.text()}), "
                f"e.g. {id_column} {preview(ident)} = {preview(raw.iloc[first])}"
            )
    return problems


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
    "reason_driver": "str: the candidate's top_reason: its strongest changeable risk driver in words, never a fixed attribute (null when not eligible or none)",
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
        "Each source table is validated by a blocking check before anything downstream runs: a table",
        "that must not be empty and is, a missing column, a value of the wrong type, a null in a",
        "required column, a duplicate key, an unknown account, an impossible date, a number outside",
        "its range or an id longer than its limit fails the check, which names the table, the",
        "column, the number of bad rows and an example. Ranges are generic ceilings, not fitted to",
        f"one data set: money per account up to {_number(MAX_ARR)} currency units (`MAX_ARR`), people",
        f"per account up to {_number(MAX_PEOPLE)} (`MAX_PEOPLE`), events per account and day up to",
        f"{_number(MAX_DAILY_EVENTS)} (`MAX_DAILY_EVENTS`).",
        "",
        "Text dates are read as ISO 8601 or another unambiguous form; a text date with two numbers",
        "before the year (`03/04/2024`) is refused unless its column's format or day-first order is",
        "declared, so a dd-mm-yyyy export is never read month-first.",
        "",
    ]
    for contract in CONTRACTS.values():
        empty = "May be empty." if contract.may_be_empty else "Must not be empty."
        lines.append(f"### `{contract.name}`\n\n{contract.description} Primary key: "
                     f"`{', '.join(contract.primary_key)}`. {empty}\n")
        lines.append("| column | type | nullable | notes |")
        lines.append("|---|---|---|---|")
        for c in contract.columns:
            notes = c.description
            if c.allowed:
                notes = (notes + " One of: " + ", ".join(c.allowed) + ".").strip()
            if c.numeric:
                notes = (notes + f" Range: {c.range_text() or 'any finite number'}.").strip()
            if c.max_length is not None:
                notes = (notes + f" At most {c.max_length} characters.").strip()
            lines.append(f"| {c.name} | {c.kind} | {'yes' if c.nullable else 'no'} | {notes} |")
        lines.append("")
    lines += ["### rescue candidates (policy input)", "",
              "Routing refuses a frame with a number outside its range (a missing value only where "
              "the range says so).", "", "| column | meaning | range |", "|---|---|---|"]
    lines += [f"| {k} | {v} | {CANDIDATE_BOUNDS[k].text() if k in CANDIDATE_BOUNDS else ''} |"
              for k, v in CANDIDATE_COLUMNS.items()]
    lines += ["", "### routing decisions (policy output)", "", "| column | meaning |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in DECISION_COLUMNS.items()]
    lines.append("")
    return "\n".join(lines)
