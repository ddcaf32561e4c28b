"""The rescue queue: cases, their audit trail, the routing log and the outbox, in any SQL database.

`QueueStore` is a plain SQLAlchemy 2 client (SQLite by default, PostgreSQL in production and CI,
any SQLAlchemy URL in principle); `QueueStoreResource` hands one to Dagster assets and sensors.
The schema is managed by alembic (`connectors/queue/migrations`); `QueueStore.migrate()` upgrades a
database to the latest revision and needs no `alembic.ini`.

Tables:

| table                      | what                                                           |
|----------------------------|----------------------------------------------------------------|
| `rescue_cases`             | one row per case; at most one active case per account          |
| `case_events`              | append-only audit trail: who did what to a case, when and why  |
| `rescue_actions`           | plays the rescue team logged (flow back to the CRM)            |
| `routing_log`              | decisions not routed (holdout, overflow, cooldown) per snapshot |
| `account_states`           | hysteresis state per account                                   |
| `escalation_steps_applied` | SLA ladder steps already applied (makes the SLA sensor idempotent) |
| `outbox`                   | every notification and external write, delivered later         |
| `holdout_outcomes`         | renewal outcomes of held-out accounts (the control group)      |

Guarantees:

- **One active case per account**, enforced by a partial unique index on `account_id` (for
  statuses that are not terminal) as well as in code. A snapshot that re-confirms an account's
  case grows the case's evidence list instead of opening another case.
- **Idempotent writes**: applying the same snapshot twice, or the same escalation step twice,
  changes nothing and enqueues nothing (evidence entries are keyed by snapshot date, steps by
  their key, outbox rows by a unique `dedupe_key`).
- **Transactional outbox**: a notification is inserted in the same transaction as the change that
  causes it, so a crash never loses a notification nor sends one for a change that rolled back.
- **Concurrency-safe claims**: every change to a case runs in a transaction that locks the row
  (`SELECT ... FOR UPDATE` on PostgreSQL, `BEGIN IMMEDIATE` on SQLite) and updates it only if
  its `version` is unchanged; of many people claiming one case at once, exactly one wins and the
  others get `CaseConflict("... already claimed by X")`.

All timestamps are timezone-naive UTC, like the rest of the product; aware datetimes passed in
are converted to UTC.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from pydantic import PrivateAttr
from sqlalchemy.dialects import postgresql

from connectors.settings import default_queue_url
from models.contracts import DECISION_COLUMNS
from models.cases.context import refresh_context
from models.cases.lifecycle import (
    ACTIVE_STATUSES,
    OPEN,
    PAUSED_STATUSES,
    SNOOZED,
    TERMINAL_STATUSES,
    CaseConflict,
    CaseError,
    CaseNotFound,
    InvalidTransition,
    check_transition,
    decide_claim,
    resolution_status,
    status_after_play,
    validate_status,
)

__all__ = [
    "ApplySummary",
    "CaseConflict",
    "CaseError",
    "CaseNotFound",
    "InvalidTransition",
    "METADATA",
    "PIPELINE_ACTOR",
    "QueueStore",
    "QueueStoreResource",
    "RoutingState",
    "SlaInputs",
    "channel_for",
]

#: Actor recorded on changes made by the pipeline (routing) and by the SLA clock.
PIPELINE_ACTOR = "rescue-pipeline"
SLA_ACTOR = "sla-clock"

#: Decision actions that open or re-confirm a case, and those recorded in the routing log.
CASE_ACTIONS = frozenset({"route", "update"})
LOGGED_ACTIONS = frozenset({"holdout", "overflow", "cooldown"})
KNOWN_ACTIONS = CASE_ACTIONS | LOGGED_ACTIONS | {"not_eligible"}

#: Outbox channel of external writes to the CRM (consumed by the CRM write-back, not notifiers).
CRM_CHANNEL = "crm"

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# ---------------------------------------------------------------------------------------------
# Schema. The alembic revisions in connectors/queue/migrations create exactly this; a test compares
# the two so they cannot drift apart.
# ---------------------------------------------------------------------------------------------

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_TERMINAL_SQL = ", ".join(f"'{s}'" for s in sorted(TERMINAL_STATUSES))
ACTIVE_CASE_PREDICATE = f"status NOT IN ({_TERMINAL_SQL})"

METADATA = sa.MetaData()

rescue_cases = sa.Table(
    "rescue_cases",
    METADATA,
    sa.Column("case_id", sa.String(32), primary_key=True),
    sa.Column("account_id", sa.String(128), nullable=False),
    sa.Column("account_name", sa.String(256)),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("priority", sa.String(8), nullable=False),
    sa.Column("team", sa.String(64), nullable=False),
    sa.Column("assignee", sa.String(128)),
    sa.Column("required_skills", JSONType, nullable=False),
    sa.Column("rule_id", sa.String(128)),
    sa.Column("reason", sa.Text),
    sa.Column("evidence", JSONType, nullable=False),
    sa.Column("churn_risk", sa.Float),
    sa.Column("health_score", sa.Float),
    sa.Column("arr", sa.Float),
    sa.Column("expected_arr_at_risk", sa.Float),
    sa.Column("policy_version", sa.String(64)),
    sa.Column("policy_hash", sa.String(128)),
    sa.Column("model_version", sa.String(128)),
    sa.Column("snapshot_date", sa.DateTime, nullable=False),
    sa.Column("opened_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Column("acknowledged_at", sa.DateTime),
    sa.Column("resolved_at", sa.DateTime),
    sa.Column("outcome", sa.String(32)),
    sa.Column("sla_first_touch_due", sa.DateTime),
    sa.Column("sla_resolution_due", sa.DateTime),
    sa.Column("escalation_level", sa.Integer, nullable=False),
    sa.Column("snoozed_until", sa.DateTime),
    sa.Column("context", JSONType, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Index(
        "uq_rescue_cases_active_account",
        "account_id",
        unique=True,
        sqlite_where=sa.text(ACTIVE_CASE_PREDICATE),
        postgresql_where=sa.text(ACTIVE_CASE_PREDICATE),
    ),
    sa.Index("ix_rescue_cases_status", "status"),
    sa.Index("ix_rescue_cases_team", "team"),
    sa.Index("ix_rescue_cases_assignee", "assignee"),
)

case_events = sa.Table(
    "case_events",
    METADATA,
    sa.Column("event_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("case_id", sa.String(32), sa.ForeignKey("rescue_cases.case_id"), nullable=False),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("from_status", sa.String(32)),
    sa.Column("to_status", sa.String(32)),
    sa.Column("reason", sa.Text),
    sa.Column("payload", JSONType, nullable=False),
    sa.Index("ix_case_events_case_id", "case_id"),
)

rescue_actions = sa.Table(
    "rescue_actions",
    METADATA,
    sa.Column("action_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("case_id", sa.String(32), sa.ForeignKey("rescue_cases.case_id"), nullable=False),
    sa.Column("account_id", sa.String(128), nullable=False),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("play", sa.String(128), nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("outcome", sa.String(32)),
    sa.Index("ix_rescue_actions_case_id", "case_id"),
    sa.Index("ix_rescue_actions_account_id", "account_id"),
)

routing_log = sa.Table(
    "routing_log",
    METADATA,
    sa.Column("log_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("snapshot_date", sa.DateTime, nullable=False),
    sa.Column("account_id", sa.String(128), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("priority", sa.String(8)),
    sa.Column("team", sa.String(64)),
    sa.Column("rule_id", sa.String(128)),
    sa.Column("reasons", JSONType, nullable=False),
    sa.Column("churn_risk", sa.Float),
    sa.Column("expected_arr_at_risk", sa.Float),
    sa.Column("rank", sa.Integer),
    sa.Column("policy_version", sa.String(64)),
    sa.Column("policy_hash", sa.String(128)),
    sa.Column("model_version", sa.String(128)),
    sa.Column("logged_at", sa.DateTime, nullable=False),
    sa.UniqueConstraint("snapshot_date", "account_id", name="uq_routing_log_snapshot_account"),
)

account_states = sa.Table(
    "account_states",
    METADATA,
    sa.Column("account_id", sa.String(128), primary_key=True),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("since", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

escalation_steps_applied = sa.Table(
    "escalation_steps_applied",
    METADATA,
    sa.Column("step_key", sa.String(256), primary_key=True),
    sa.Column("case_id", sa.String(32), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("applied_at", sa.DateTime, nullable=False),
)

outbox = sa.Table(
    "outbox",
    METADATA,
    sa.Column("outbox_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("case_id", sa.String(32)),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("destination", sa.String(256), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("dedupe_key", sa.String(512), nullable=False, unique=True),
    sa.Column("payload", JSONType, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("next_attempt_at", sa.DateTime, nullable=False),
    sa.Column("delivered_at", sa.DateTime),
    sa.Index("ix_outbox_status_next_attempt", "status", "next_attempt_at"),
)

#: People who may use the rescue desk (revision 0002; logic in connectors/queue/users.py).
desk_users = sa.Table(
    "desk_users",
    METADATA,
    sa.Column("user_id", sa.String(128), primary_key=True),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("team", sa.String(64), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False),
    sa.Index("uq_desk_users_token_hash", "token_hash", unique=True),
)

#: Renewal outcomes of accounts held out of the queue (revision 0003): the control group that
#: `models.experiment.effectiveness` compares treated accounts with. One row per account and renewal.
holdout_outcomes = sa.Table(
    "holdout_outcomes",
    METADATA,
    sa.Column("account_id", sa.String(128), primary_key=True),
    sa.Column("renewal_date", sa.DateTime, primary_key=True),
    sa.Column("held_out_at", sa.DateTime, nullable=False),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("arr", sa.Float),
    sa.Column("recorded_at", sa.DateTime, nullable=False),
    sa.Column("source", sa.String(64), nullable=False),
)

OUTBOX_STATUSES = ("pending", "delivered", "dead")
HOLDOUT_OUTCOMES = ("saved", "churned")
CASE_COLUMNS = [c.name for c in rescue_cases.columns]


# ---------------------------------------------------------------------------------------------
# Value helpers
# ---------------------------------------------------------------------------------------------


def utc_naive(value: Any) -> datetime | None:
    """A timezone-naive UTC datetime from a datetime, date, pandas Timestamp or ISO string."""
    if value is None:
        return None
    if isinstance(value, str):
        value = pd.Timestamp(value)
    if isinstance(value, pd.Timestamp):
        if pd.isna(value):
            return None
        value = value.to_pydatetime()
    elif not isinstance(value, datetime) and isinstance(value, date):
        value = datetime(value.year, value.month, value.day)
    elif not isinstance(value, datetime):
        if pd.isna(value):
            return None
        raise TypeError(f"expected a datetime, got {type(value).__name__}: {value!r}")
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def _now(now: datetime | None) -> datetime:
    return utc_naive(now) if now is not None else datetime.now(timezone.utc).replace(tzinfo=None)


def _jsonable(value: Any) -> Any:
    """Turn numpy/pandas scalars, timestamps and containers into JSON-ready Python values."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset, np.ndarray, pd.Series)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (pd.Timestamp, datetime)):
        return None if pd.isna(value) else utc_naive(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def _scalar(value: Any) -> Any:
    """A plain Python scalar for a column value (None for NaN/NA/NaT)."""
    if isinstance(value, (list, tuple, dict, np.ndarray)):
        return value
    if value is None or pd.isna(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def _float(value: Any) -> float | None:
    v = _scalar(value)
    return None if v is None else float(v)


def _str_list(value: Any) -> list[str]:
    if value is None or (not isinstance(value, (list, tuple, np.ndarray, set, frozenset)) and pd.isna(value)):
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def case_id_for(account_id: str, snapshot_date: datetime) -> str:
    """The stable id of the case opened for `account_id` at `snapshot_date` ("RC-" + 10 hex)."""
    digest = hashlib.sha1(f"{account_id}|{snapshot_date.date().isoformat()}".encode()).hexdigest()
    return "RC-" + digest[:10].upper()


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def channel_for(destination: str) -> tuple[str, str]:
    """The outbox (channel, destination) of a RACI recipient.

    `slack:#x` or `#x` -> Slack; `email:a@b.c` or `a@b.c` -> e-mail; `log:x` or anything else
    (a person's handle, a team key) -> the log channel, which the embedded notifier writes to the
    log. Deployments reach people by declaring Slack channels or addresses in the policy's RACI.
    """
    dest = destination.strip()
    if not dest:
        raise ValueError("empty notification destination")
    scheme, sep, rest = dest.partition(":")
    if sep and scheme in ("slack", "email", "log") and rest:
        return scheme, rest
    if dest.startswith("#"):
        return "slack", dest
    if _EMAIL.match(dest):
        return "email", dest
    return "log", dest


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApplySummary:
    """What `apply_decisions` did: cases opened and updated, decisions logged, rows unchanged."""

    opened: int
    updated: int
    logged: int
    unchanged: int


@dataclass(frozen=True)
class RoutingState:
    """What the policy engine needs to know about the queue before routing a snapshot.

    - `open_cases`: every active case (case_id, account_id, status, priority, team, assignee,
      required_skills, opened_at, snapshot_date, escalation_level, acknowledged_at,
      sla_first_touch_due, sla_resolution_due, snoozed_until);
    - `recent_resolutions`: the latest resolution per account (account_id, resolved_at, outcome);
    - `account_states`: hysteresis state per account (account_id, state, since);
    - `member_load`: number of active cases per assignee.
    """

    open_cases: pd.DataFrame
    recent_resolutions: pd.DataFrame
    account_states: pd.DataFrame
    member_load: dict[str, int]


@dataclass(frozen=True)
class SlaInputs:
    """The SLA clock's view of the queue (the arguments of `models.cases.ladder.due_escalations`).

    - `open_cases`: active cases with case_id, account_id, status, team, priority, opened_at,
      first_touch_at (= acknowledged_at), assignee, csm_owner (from the context package),
      required_skills, escalation_level, snoozed_until; timestamps naive UTC;
    - `pauses`: case_id -> [(paused_at, resumed_at or None)] from the audit trail (snoozed and
      waiting on the customer); a snooze whose wake-up time has passed ends at that time;
    - `applied_step_keys`: ladder steps already applied to these cases;
    - `member_load`: number of active cases per assignee.
    """

    open_cases: pd.DataFrame
    pauses: dict[str, list[tuple[datetime, datetime | None]]]
    applied_step_keys: frozenset[str]
    member_load: dict[str, int]


# ---------------------------------------------------------------------------------------------
# Store
# ---------------------------------------------------------------------------------------------


class QueueStore:
    """Plain-Python client of the rescue queue database (see the module docstring)."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.engine = sa.create_engine(url, echo=echo)
        if self.engine.dialect.name == "sqlite":
            _configure_sqlite(self.engine)

    def __repr__(self) -> str:
        return f"QueueStore({self.display_url!r})"

    @property
    def display_url(self) -> str:
        """The URL with any password masked, for messages and logs."""
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()

    # -- transactions --------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        """A read-write transaction (SQLite: BEGIN IMMEDIATE, so writers queue instead of failing)."""
        with self.engine.connect() as conn:
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with self.engine.connect() as conn:
            conn.execution_options(sqlite_begin="DEFERRED")
            yield conn

    # -- schema --------------------------------------------------------------------------------

    def alembic_config(self) -> AlembicConfig:
        """An alembic configuration for this database, built in code (no alembic.ini)."""
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.set_main_option("sqlalchemy.url", self.engine.url.render_as_string(hide_password=False).replace("%", "%%"))
        return cfg

    def migrate(self) -> None:
        """Upgrade the database to the latest schema revision (a no-op when it is current)."""
        cfg = self.alembic_config()
        with self.engine.connect() as conn:
            with conn.begin():
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")

    def current_revision(self) -> str | None:
        """The schema revision of the database, or None when it was never migrated."""
        with self._read() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def head_revision(self) -> str:
        return ScriptDirectory.from_config(self.alembic_config()).get_current_head()

    # -- routing -------------------------------------------------------------------------------

    def routing_state(self) -> RoutingState:
        """The queue as the policy engine sees it before routing a snapshot."""
        cols = [
            "case_id", "account_id", "status", "priority", "team", "assignee", "required_skills",
            "opened_at", "snapshot_date", "escalation_level", "acknowledged_at",
            "sla_first_touch_due", "sla_resolution_due", "snoozed_until",
        ]
        with self._read() as conn:
            open_rows = conn.execute(
                sa.select(*[rescue_cases.c[c] for c in cols]).where(rescue_cases.c.status.in_(ACTIVE_STATUSES))
            ).mappings().all()
            latest = (
                sa.select(rescue_cases.c.account_id, sa.func.max(rescue_cases.c.resolved_at).label("resolved_at"))
                .where(rescue_cases.c.resolved_at.is_not(None))
                .group_by(rescue_cases.c.account_id)
                .subquery()
            )
            resolved_rows = conn.execute(
                sa.select(latest.c.account_id, latest.c.resolved_at, sa.func.max(rescue_cases.c.outcome).label("outcome"))
                .select_from(
                    latest.join(
                        rescue_cases,
                        sa.and_(
                            rescue_cases.c.account_id == latest.c.account_id,
                            rescue_cases.c.resolved_at == latest.c.resolved_at,
                        ),
                    )
                )
                .group_by(latest.c.account_id, latest.c.resolved_at)
            ).mappings().all()
            state_rows = conn.execute(
                sa.select(account_states.c.account_id, account_states.c.state, account_states.c.since)
            ).mappings().all()
        open_cases = _frame(open_rows, cols)
        load = open_cases["assignee"].dropna().value_counts()
        return RoutingState(
            open_cases=open_cases,
            recent_resolutions=_frame(resolved_rows, ["account_id", "resolved_at", "outcome"]),
            account_states=_frame(state_rows, ["account_id", "state", "since"]),
            member_load={str(k): int(v) for k, v in load.items()},
        )

    def apply_decisions(
        self,
        decisions: pd.DataFrame,
        candidates: pd.DataFrame,
        *,
        contexts: Mapping[str, Mapping[str, Any]] | None = None,
        policy_version: str,
        policy_hash: str,
        model_version: str | None,
        snapshot_date: Any,
        now: datetime | None = None,
        account_states: pd.DataFrame | None = None,
        notify: Mapping[str, Sequence[str]] | None = None,
    ) -> ApplySummary:
        """Write one snapshot's routing decisions to the queue, in one transaction.

        `decisions` follows `models.contracts.DECISION_COLUMNS`; it may also carry `assignee`,
        `sla_first_touch_due` and `sla_resolution_due` (set on new cases). `candidates` follows
        `CANDIDATE_COLUMNS` (at least account_id, churn_risk, health_score, arr). `contexts`
        maps account_id to its context package. `account_states` (account_id, state, since) are
        the policy's hysteresis states after this snapshot; rows that differ from the stored
        ones are written. `notify` maps a team key to the destinations told about a new case of
        that team (`slack:...`, `email:...`, people); the case's assignee is always told.

        - `route` / `update`: an account without an active case gets a new case (status open);
          an account with one gets an evidence entry for this snapshot and its figures
          refreshed. Evidence is keyed by snapshot date, so a rerun adds nothing.
        - `holdout` / `overflow` / `cooldown`: one `routing_log` row per snapshot and account.
        - `not_eligible`: nothing but its hysteresis state.
        """
        now = _now(now)
        snapshot = utc_naive(snapshot_date)
        if snapshot is None:
            raise ValueError("apply_decisions needs a snapshot_date")
        decided = _checked_decisions(decisions)
        facts = _checked_candidates(candidates)
        contexts = contexts or {}
        notify = notify or {}
        meta = {"policy_version": policy_version, "policy_hash": policy_hash, "model_version": model_version}

        frame = decided.merge(facts, on="account_id", how="left", suffixes=("", "_candidate"), indicator=True)
        missing = frame.loc[frame["_merge"] == "left_only", "account_id"]
        if len(missing) and frame["action"].isin(CASE_ACTIONS).loc[missing.index].any():
            examples = ", ".join(map(str, missing.head(5)))
            raise ValueError(f"decisions route {len(missing)} account(s) absent from candidates, e.g. {examples}")
        frame = frame.drop(columns="_merge")

        opened = updated = logged = unchanged = 0
        with self._write() as conn:
            active = {
                r["account_id"]: dict(r)
                for r in conn.execute(
                    sa.select(rescue_cases).where(rescue_cases.c.status.in_(ACTIVE_STATUSES))
                ).mappings()
            }
            routed = frame[frame["action"].isin(CASE_ACTIONS)]
            new_cases: list[dict[str, Any]] = []
            events: list[dict[str, Any]] = []
            messages: list[dict[str, Any]] = []
            for row in routed.to_dict("records"):
                account_id = str(row["account_id"])
                entry = _evidence_entry(row, snapshot)
                case = active.get(account_id)
                if case is None:
                    case_id = case_id_for(account_id, snapshot)
                    if conn.execute(sa.select(rescue_cases.c.case_id).where(rescue_cases.c.case_id == case_id)).first():
                        unchanged += 1  # opened by this snapshot before and closed since
                        continue
                    new = _new_case(case_id, row, entry, contexts.get(account_id), snapshot, now, meta)
                    new_cases.append(new)
                    events.append(_event(case_id, now, PIPELINE_ACTOR, "opened", None, OPEN, new["reason"],
                                         {"snapshot_date": entry["snapshot_date"], "priority": new["priority"],
                                          "team": new["team"], "assignee": new["assignee"], "rule_id": new["rule_id"]}))
                    recipients = list(notify.get(new["team"], ()))
                    if new["assignee"]:
                        recipients.append(new["assignee"])
                    messages += _notifications(new, "case_opened", f"case_opened:{case_id}", recipients or [f"log:{new['team']}"], now)
                    active[account_id] = new
                    opened += 1
                    continue
                evidence = list(case["evidence"] or [])
                if any(e.get("snapshot_date") == entry["snapshot_date"] for e in evidence):
                    unchanged += 1
                    continue
                evidence = sorted([*evidence, entry], key=lambda e: e["snapshot_date"])
                values: dict[str, Any] = {"evidence": evidence, "updated_at": now, "version": case["version"] + 1}
                if snapshot >= case["snapshot_date"]:
                    values.update(_refreshed_fields(row, snapshot, meta))
                    if account_id in contexts:
                        values["context"] = _jsonable(contexts[account_id])
                result = conn.execute(
                    rescue_cases.update()
                    .where(rescue_cases.c.case_id == case["case_id"], rescue_cases.c.version == case["version"])
                    .values(**values)
                )
                if result.rowcount != 1:
                    raise CaseConflict(f"case {case['case_id']} changed while the snapshot was being applied; rerun")
                events.append(_event(case["case_id"], now, PIPELINE_ACTOR, "evidence_added", case["status"], case["status"],
                                     None, {**entry, "previous_priority": case["priority"]}))
                updated += 1
            if new_cases:
                conn.execute(rescue_cases.insert(), new_cases)
            if events:
                conn.execute(case_events.insert(), events)
            _enqueue(conn, messages)

            log_rows = frame[frame["action"].isin(LOGGED_ACTIONS)]
            written = _upsert_routing_log(conn, log_rows, snapshot, now, meta)
            logged += written
            unchanged += len(log_rows) - written
            if account_states is not None:
                _upsert_account_states(conn, account_states, now)
        return ApplySummary(opened=opened, updated=updated, logged=logged, unchanged=unchanged)

    def routing_log(self, snapshot_date: Any | None = None) -> pd.DataFrame:
        """Decisions that did not open or update a case (holdout, overflow, cooldown)."""
        query = sa.select(routing_log).order_by(routing_log.c.snapshot_date, routing_log.c.account_id)
        if snapshot_date is not None:
            query = query.where(routing_log.c.snapshot_date == utc_naive(snapshot_date))
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return _frame(rows, [c.name for c in routing_log.columns])

    # -- reading cases -------------------------------------------------------------------------

    def list_cases(
        self,
        *,
        team: str | None = None,
        assignee: str | None = None,
        priority: str | None = None,
        status: str | Sequence[str] | None = None,
        breaching: bool | None = None,
        now: datetime | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """Cases matching every filter given, most urgent first (priority, then ARR at risk).

        `status` is one status, several, or "active" (every status that is not terminal); None
        means all. `breaching=True` keeps active cases past
        an SLA due time at `now` (first touch due and not yet acknowledged, or resolution due);
        `breaching=False` keeps the others.
        """
        query = sa.select(rescue_cases)
        if team is not None:
            query = query.where(rescue_cases.c.team == team)
        if assignee is not None:
            query = query.where(rescue_cases.c.assignee == assignee)
        if priority is not None:
            query = query.where(rescue_cases.c.priority == priority)
        if status is not None:
            statuses = ([*ACTIVE_STATUSES] if status == "active" else [status]) if isinstance(status, str) else list(status)
            for s in statuses:
                validate_status(s)
            query = query.where(rescue_cases.c.status.in_(statuses))
        if breaching is not None:
            at = _now(now)
            c = rescue_cases.c
            late = sa.and_(
                c.status.in_(ACTIVE_STATUSES),
                sa.or_(
                    sa.and_(c.acknowledged_at.is_(None), c.sla_first_touch_due <= at),
                    c.sla_resolution_due <= at,
                ),
            )
            query = query.where(late if breaching else sa.not_(sa.func.coalesce(late, False)))
        query = query.order_by(
            rescue_cases.c.priority, rescue_cases.c.expected_arr_at_risk.desc(), rescue_cases.c.opened_at,
            rescue_cases.c.case_id,
        )
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return _frame(rows, CASE_COLUMNS)

    def get_case(self, case_id: str) -> dict[str, Any]:
        """One case with its rescue actions (`actions`). Raises CaseNotFound."""
        case_id = _normalize_case_id(case_id)
        with self._read() as conn:
            row = conn.execute(sa.select(rescue_cases).where(rescue_cases.c.case_id == case_id)).mappings().first()
            if row is None:
                raise CaseNotFound(f"no rescue case {case_id!r} in the queue at {self.display_url}")
            actions = conn.execute(
                sa.select(rescue_actions).where(rescue_actions.c.case_id == case_id).order_by(rescue_actions.c.action_id)
            ).mappings().all()
        case = dict(row)
        case["actions"] = [dict(a) for a in actions]
        return case

    def case_events(self, case_id: str) -> pd.DataFrame:
        """The audit trail of a case, oldest first. Raises CaseNotFound."""
        case_id = _normalize_case_id(case_id)
        with self._read() as conn:
            if conn.execute(sa.select(rescue_cases.c.case_id).where(rescue_cases.c.case_id == case_id)).first() is None:
                raise CaseNotFound(f"no rescue case {case_id!r} in the queue at {self.display_url}")
            rows = conn.execute(
                sa.select(case_events).where(case_events.c.case_id == case_id).order_by(case_events.c.event_id)
            ).mappings().all()
        return _frame(rows, [c.name for c in case_events.columns])

    def audit_events(self) -> pd.DataFrame:
        """Every case's audit trail (all `case_events` rows), oldest first: the input of the
        queue-operations metrics."""
        with self._read() as conn:
            rows = conn.execute(sa.select(case_events).order_by(case_events.c.event_id)).mappings().all()
        return _frame(rows, [c.name for c in case_events.columns])

    def plays(self, account_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """Plays logged by the rescue team (action_id, case_id, account_id, at, actor, play, note,
        outcome), oldest first; the input of the context package's "plays tried"."""
        query = sa.select(rescue_actions).order_by(rescue_actions.c.action_id)
        if account_ids is not None:
            query = query.where(rescue_actions.c.account_id.in_(list(account_ids)))
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return _frame(rows, [c.name for c in rescue_actions.columns])

    # -- working cases -------------------------------------------------------------------------

    @contextmanager
    def _locked_case(self, case_id: str) -> Iterator[tuple[sa.Connection, dict[str, Any]]]:
        """A write transaction holding the case row (FOR UPDATE where the database supports it)."""
        case_id = _normalize_case_id(case_id)
        with self._write() as conn:
            row = conn.execute(
                sa.select(rescue_cases).where(rescue_cases.c.case_id == case_id).with_for_update()
            ).mappings().first()
            if row is None:
                raise CaseNotFound(f"no rescue case {case_id!r} in the queue at {self.display_url}")
            yield conn, dict(row)

    @staticmethod
    def _update_case(conn: sa.Connection, case: Mapping[str, Any], values: dict[str, Any], now: datetime) -> None:
        """Optimistic update: applies only if nobody changed the case since it was read."""
        result = conn.execute(
            rescue_cases.update()
            .where(rescue_cases.c.case_id == case["case_id"], rescue_cases.c.version == case["version"])
            .values(**values, updated_at=now, version=case["version"] + 1)
        )
        if result.rowcount != 1:
            current = conn.execute(
                sa.select(rescue_cases.c.assignee, rescue_cases.c.status).where(rescue_cases.c.case_id == case["case_id"])
            ).first()
            who = f"; now {current.status}, assigned to {current.assignee or 'nobody'}" if current else ""
            raise CaseConflict(f"case {case['case_id']} was changed by someone else{who}")

    def claim(self, case_id: str, actor: str, *, now: datetime | None = None) -> dict[str, Any]:
        """Make `actor` the case's owner. Exactly one of many concurrent claimers wins; the others
        get CaseConflict naming the winner. Claiming a case already yours changes nothing."""
        now = _now(now)
        with self._locked_case(case_id) as (conn, case):
            decision = decide_claim(case["status"], case["assignee"], actor, case_id=case["case_id"])
            if decision.changed:
                values: dict[str, Any] = {"assignee": decision.assignee, "status": decision.status}
                if decision.first_touch and case["acknowledged_at"] is None:
                    values["acknowledged_at"] = now
                self._update_case(conn, case, values, now)
                conn.execute(case_events.insert(), [_event(
                    case["case_id"], now, actor, "claimed", case["status"], decision.status, None,
                    {"previous_assignee": case["assignee"]},
                )])
        return self.get_case(case_id)

    def transition(
        self,
        case_id: str,
        to_status: str,
        *,
        actor: str,
        reason: str | None = None,
        snooze_until: datetime | None = None,
        now: datetime | None = None,
        expected_version: int | None = None,
    ) -> dict[str, Any]:
        """Move a case to `to_status` (validated by models.cases.lifecycle) and audit it.

        Snoozing needs `snooze_until` in the future. Terminal statuses record the outcome; use
        `resolve()` to also close the case's plays. `expected_version` guards against acting on a
        stale view (CaseConflict when the case changed since).
        """
        now = _now(now)
        with self._locked_case(case_id) as (conn, case):
            self._apply_transition(conn, case, to_status, actor=actor, reason=reason,
                                   snooze_until=snooze_until, now=now, expected_version=expected_version)
        return self.get_case(case_id)

    def _apply_transition(
        self,
        conn: sa.Connection,
        case: Mapping[str, Any],
        to_status: str,
        *,
        actor: str,
        reason: str | None,
        now: datetime,
        snooze_until: datetime | None = None,
        expected_version: int | None = None,
        kind: str = "status_changed",
        payload: Mapping[str, Any] | None = None,
    ) -> None:
        _require_actor(actor)
        if expected_version is not None and expected_version != case["version"]:
            raise CaseConflict(
                f"case {case['case_id']} is at version {case['version']}, not {expected_version}: "
                "it changed since you looked; reload it"
            )
        from_status = case["status"]
        check_transition(from_status, to_status, case_id=case["case_id"])
        values: dict[str, Any] = {"status": to_status, "snoozed_until": None}
        if to_status == SNOOZED:
            until = utc_naive(snooze_until)
            if until is None or until <= now:
                raise InvalidTransition(case["case_id"], from_status, to_status,
                                        "snoozing needs a wake-up time in the future")
            values["snoozed_until"] = until
        if from_status == OPEN and case["acknowledged_at"] is None:
            values["acknowledged_at"] = now
        if to_status in TERMINAL_STATUSES:
            values["resolved_at"] = now
            values["outcome"] = to_status
        self._update_case(conn, case, values, now)
        conn.execute(case_events.insert(), [_event(
            case["case_id"], now, actor, kind, from_status, to_status, reason,
            {**(payload or {}), **({"snoozed_until": values["snoozed_until"].isoformat()} if values["snoozed_until"] else {})},
        )])

    def log_play(self, case_id: str, *, actor: str, play: str, note: str | None = None,
                 now: datetime | None = None) -> dict[str, Any]:
        """Record a rescue play on a case (a `rescue_actions` row, an audit event and a CRM
        write-back in the outbox). A play on an acknowledged or paused case resumes work
        (in_progress). Returns the action row with the case's new status."""
        now = _now(now)
        _require_actor(actor)
        if not play or not play.strip():
            raise ValueError("a play needs a name (e.g. exec_sponsor_call)")
        with self._locked_case(case_id) as (conn, case):
            new_status = status_after_play(case["status"], case_id=case["case_id"])
            if new_status != case["status"]:
                self._apply_transition(conn, case, new_status, actor=actor, reason=f"play {play}", now=now)
            else:
                self._update_case(conn, case, {}, now)
            action_id = conn.execute(
                rescue_actions.insert().values(case_id=case["case_id"], account_id=case["account_id"], at=now,
                                               actor=actor, play=play.strip(), note=note, outcome=None)
            ).inserted_primary_key[0]
            action = {"action_id": action_id, "case_id": case["case_id"], "account_id": case["account_id"],
                      "at": now, "actor": actor, "play": play.strip(), "note": note, "outcome": None}
            conn.execute(case_events.insert(), [_event(case["case_id"], now, actor, "play_logged", new_status, new_status,
                                                       note, {"action_id": action_id, "play": play.strip()})])
            _enqueue(conn, [_outbox_row(
                now, case["case_id"], CRM_CHANNEL, case["account_id"], "rescue_action", f"rescue_action:{action_id}",
                {**_jsonable(action), "account_name": case["account_name"], "priority": case["priority"]},
            )])
        return {**action, "status": new_status}

    def resolve(self, case_id: str, *, actor: str, outcome: str, note: str | None = None,
                now: datetime | None = None) -> dict[str, Any]:
        """Close a case as saved, churned or no_action. Its plays get the case's outcome, and the
        outcome is queued for the CRM write-back."""
        now = _now(now)
        to_status = resolution_status(outcome)
        with self._locked_case(case_id) as (conn, case):
            self._apply_transition(conn, case, to_status, actor=actor, reason=note, now=now, kind="resolved",
                                   payload={"outcome": outcome})
            conn.execute(
                rescue_actions.update()
                .where(rescue_actions.c.case_id == case["case_id"], rescue_actions.c.outcome.is_(None))
                .values(outcome=outcome)
            )
            _enqueue(conn, [_outbox_row(
                now, case["case_id"], CRM_CHANNEL, case["account_id"], "case_outcome", f"case_outcome:{case['case_id']}",
                {"case_id": case["case_id"], "account_id": case["account_id"], "account_name": case["account_name"],
                 "outcome": outcome, "status": to_status, "resolved_at": now.isoformat(), "actor": actor, "note": note},
            )])
        return self.get_case(case_id)

    # -- SLA escalations -----------------------------------------------------------------------

    def sla_inputs(self, *, now: datetime | None = None) -> SlaInputs:
        """What `models.cases.ladder.due_escalations` needs, read in one transaction (see SlaInputs)."""
        now = _now(now)
        with self._read() as conn:
            cases = conn.execute(
                sa.select(rescue_cases).where(rescue_cases.c.status.in_(ACTIVE_STATUSES)).order_by(rescue_cases.c.case_id)
            ).mappings().all()
            ids = [c["case_id"] for c in cases]
            events: list[Mapping[str, Any]] = []
            applied: set[str] = set()
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                events += conn.execute(
                    sa.select(case_events.c.case_id, case_events.c.at, case_events.c.from_status,
                              case_events.c.to_status)
                    .where(case_events.c.case_id.in_(chunk), case_events.c.from_status.is_distinct_from(case_events.c.to_status))
                    .order_by(case_events.c.event_id)
                ).mappings().all()
                applied.update(conn.execute(
                    sa.select(escalation_steps_applied.c.step_key).where(escalation_steps_applied.c.case_id.in_(chunk))
                ).scalars())
        by_case: dict[str, list[Mapping[str, Any]]] = {}
        for event in events:
            by_case.setdefault(event["case_id"], []).append(event)
        pauses: dict[str, list[tuple[datetime, datetime | None]]] = {}
        for case in cases:
            intervals = _paused_intervals(by_case.get(case["case_id"], []))
            wake = case["snoozed_until"]
            if intervals and intervals[-1][1] is None and case["status"] == SNOOZED and wake is not None and wake <= now:
                intervals[-1] = (intervals[-1][0], wake)  # the snooze is over: the clocks run again
            if intervals:
                pauses[case["case_id"]] = intervals
        rows = [
            {
                "case_id": c["case_id"], "account_id": c["account_id"], "status": c["status"], "team": c["team"],
                "priority": c["priority"], "opened_at": c["opened_at"], "first_touch_at": c["acknowledged_at"],
                "assignee": c["assignee"], "csm_owner": ((c["context"] or {}).get("account") or {}).get("csm_owner"),
                "required_skills": c["required_skills"], "escalation_level": c["escalation_level"],
                "snoozed_until": c["snoozed_until"],
            }
            for c in cases
        ]
        columns = ["case_id", "account_id", "status", "team", "priority", "opened_at", "first_touch_at", "assignee",
                   "csm_owner", "required_skills", "escalation_level", "snoozed_until"]
        open_cases = _frame(rows, columns)
        load = open_cases["assignee"].dropna().value_counts()
        return SlaInputs(open_cases=open_cases, pauses=pauses, applied_step_keys=frozenset(applied),
                         member_load={str(k): int(v) for k, v in load.items()})

    def apply_escalations(self, steps: Iterable[Any], *, now: datetime | None = None,
                          actor: str = SLA_ACTOR) -> int:
        """Apply SLA ladder steps once each; returns how many were applied now.

        A step (an object or a mapping) has `step_key`, `case_id`, `action` (warn | reassign |
        notify), `to_team`, `to_assignee`, `raci` (role -> destinations), `message` and, for a
        reassignment, optionally the regenerated `context` package. Each step is recorded in
        `escalation_steps_applied` in the same transaction as its effects, so applying the same
        steps again (the next sensor tick) does nothing. `warn` audits and notifies; `reassign`
        moves the case to another team / person; both `reassign` and `notify` raise the case's
        escalation level. Steps for closed or unknown cases are skipped.
        """
        now = _now(now)
        applied = 0
        with self._write() as conn:
            for step in steps:
                key = str(_step_field(step, "step_key"))
                action = str(_step_field(step, "action"))
                if action not in ("warn", "reassign", "notify"):
                    raise ValueError(f"escalation step {key}: unknown action {action!r}; expected warn, reassign or notify")
                if conn.execute(sa.select(escalation_steps_applied.c.step_key)
                                .where(escalation_steps_applied.c.step_key == key)).first():
                    continue
                case = conn.execute(
                    sa.select(rescue_cases).where(rescue_cases.c.case_id == str(_step_field(step, "case_id"))).with_for_update()
                ).mappings().first()
                if case is None or case["status"] in TERMINAL_STATUSES:
                    continue
                conn.execute(escalation_steps_applied.insert().values(step_key=key, case_id=case["case_id"],
                                                                      action=action, applied_at=now))
                message = _step_field(step, "message", "") or ""
                values: dict[str, Any] = {}
                payload: dict[str, Any] = {"step_key": key, "action": action, "message": message}
                if action in ("reassign", "notify"):
                    values["escalation_level"] = case["escalation_level"] + 1
                if action == "reassign":
                    to_team = _step_field(step, "to_team", None) or case["team"]
                    to_assignee = _step_field(step, "to_assignee", None)
                    values.update(team=to_team, assignee=to_assignee)
                    payload.update(from_team=case["team"], to_team=to_team,
                                   from_assignee=case["assignee"], to_assignee=to_assignee)
                    context = _step_field(step, "context", None)
                    if context is None:
                        context = reassigned_context(
                            conn, case, team=to_team, assignee=to_assignee,
                            escalation_level=values["escalation_level"], at=now,
                            handoff={"at": now, "actor": actor, "note": message, **payload},
                        )
                    values["context"] = _jsonable(context)
                self._update_case(conn, case, values, now)
                kind = "sla_warning" if action == "warn" else "escalated"
                conn.execute(case_events.insert(), [_event(case["case_id"], now, actor, kind, case["status"],
                                                           case["status"], message, payload)])
                raci = _step_field(step, "raci", None) or {}
                recipients: dict[str, list[str]] = {}
                for role, who in raci.items():
                    for dest in _str_list(who):
                        recipients.setdefault(dest, []).append(str(role))
                if action == "reassign" and values.get("assignee"):
                    recipients.setdefault(values["assignee"], []).append("responsible")
                notice = {**dict(case), **values}
                _enqueue(conn, _notifications(notice, kind, f"{kind}:{key}", list(recipients) or [f"log:{notice['team']}"], now,
                                              extra={"message": message, "roles": recipients, "step_key": key}))
                applied += 1
        return applied

    # -- outbox --------------------------------------------------------------------------------

    def enqueue(self, items: Iterable[Mapping[str, Any]], *, now: datetime | None = None) -> int:
        """Queue outbox rows that no case change of this store produces (e.g. CRM syncs of a
        case's current state). Each item has case_id (or None), channel, destination, kind,
        dedupe_key and payload; items whose dedupe_key is already queued are skipped, so queuing
        the same items twice queues them once. Returns how many rows were queued."""
        now = _now(now)
        rows: dict[str, dict[str, Any]] = {}
        for item in items:
            key = str(item["dedupe_key"])
            rows.setdefault(key, _outbox_row(now, item.get("case_id"), str(item["channel"]), str(item["destination"]),
                                             str(item["kind"]), key, item["payload"]))
        with self._write() as conn:
            return _enqueue(conn, list(rows.values()))

    def feedback_watermark(self) -> tuple[int, int]:
        """(latest rescue action id, latest pending outbox id of the CRM channel), 0 when none:
        what a sensor compares with its cursor to notice new work for the CRM write-back."""
        with self._read() as conn:
            action = conn.execute(sa.select(sa.func.max(rescue_actions.c.action_id))).scalar()
            pending = conn.execute(
                sa.select(sa.func.max(outbox.c.outbox_id))
                .where(outbox.c.channel == CRM_CHANNEL, outbox.c.status == "pending")
            ).scalar()
        return int(action or 0), int(pending or 0)

    def outbox(self, status: str | None = None) -> pd.DataFrame:
        """Outbox rows (all, or those in `status`: pending, delivered, dead), oldest first."""
        query = sa.select(outbox).order_by(outbox.c.outbox_id)
        if status is not None:
            if status not in OUTBOX_STATUSES:
                raise ValueError(f"unknown outbox status {status!r}; expected one of: {', '.join(OUTBOX_STATUSES)}")
            query = query.where(outbox.c.status == status)
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return _frame(rows, [c.name for c in outbox.columns])

    def pending_outbox(self, limit: int, *, now: datetime | None = None,
                       channels: Iterable[str] | None = None) -> pd.DataFrame:
        """Pending rows due at `now` (all pending rows when `now` is None), oldest first."""
        query = sa.select(outbox).where(outbox.c.status == "pending").order_by(outbox.c.outbox_id).limit(limit)
        if now is not None:
            query = query.where(outbox.c.next_attempt_at <= _now(now))
        if channels is not None:
            query = query.where(outbox.c.channel.in_(list(channels)))
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return _frame(rows, [c.name for c in outbox.columns])

    def lease_outbox(self, limit: int, *, now: datetime | None = None, channels: Iterable[str] | None = None,
                     lease: timedelta = timedelta(minutes=5)) -> list[dict[str, Any]]:
        """Take up to `limit` due rows for delivery: each row taken is pushed `lease` into the
        future, so concurrent deliverers never send the same row; a deliverer that dies before
        marking it lets it become due again when the lease ends."""
        now = _now(now)
        due = self.pending_outbox(limit, now=now, channels=channels)
        leased: list[dict[str, Any]] = []
        with self._write() as conn:
            for row in due.to_dict("records"):
                result = conn.execute(
                    outbox.update()
                    .where(outbox.c.outbox_id == row["outbox_id"], outbox.c.status == "pending",
                           outbox.c.next_attempt_at <= now)
                    .values(next_attempt_at=now + lease)
                )
                if result.rowcount == 1:
                    leased.append(row)
        return leased

    def mark_delivered(self, outbox_id: int, *, now: datetime | None = None) -> None:
        now = _now(now)
        with self._write() as conn:
            conn.execute(
                outbox.update().where(outbox.c.outbox_id == outbox_id, outbox.c.status == "pending")
                .values(status="delivered", delivered_at=now, attempts=outbox.c.attempts + 1, last_error=None)
            )

    def mark_failed(self, outbox_id: int, *, attempts: int, last_error: str, next_attempt_at: datetime,
                    dead_after: int) -> str:
        """Record a failed attempt; the row is dead once `attempts` reaches `dead_after`. Returns
        the row's new status. `last_error` must already be free of secrets."""
        status = "dead" if attempts >= dead_after else "pending"
        with self._write() as conn:
            conn.execute(
                outbox.update().where(outbox.c.outbox_id == outbox_id, outbox.c.status == "pending")
                .values(status=status, attempts=attempts, last_error=last_error[:2000],
                        next_attempt_at=utc_naive(next_attempt_at))
            )
        return status


    # -- holdout outcomes ----------------------------------------------------------------------

    def record_holdout_outcomes(self, rows: pd.DataFrame, *, source: str, now: datetime | None = None) -> int:
        """Record renewal outcomes of held-out accounts (account_id, renewal_date, held_out_at,
        outcome saved | churned, arr). A row already recorded for the same account and renewal
        is left as it is; returns how many rows were new."""
        now = _now(now)
        missing = [c for c in ("account_id", "renewal_date", "held_out_at", "outcome", "arr") if c not in rows.columns]
        if missing:
            raise ValueError(f"holdout outcomes frame is missing column(s): {', '.join(missing)}")
        bad = sorted(set(rows["outcome"].astype(str)) - set(HOLDOUT_OUTCOMES))
        if bad:
            raise ValueError(f"holdout outcomes: unknown outcome(s) {', '.join(bad)}; expected saved or churned")
        values = [
            {"account_id": str(r["account_id"]), "renewal_date": utc_naive(r["renewal_date"]),
             "held_out_at": utc_naive(r["held_out_at"]), "outcome": str(r["outcome"]), "arr": _float(r["arr"]),
             "recorded_at": now, "source": source}
            for r in rows.to_dict("records")
        ]
        with self._write() as conn:
            known = {(a, d) for a, d in conn.execute(sa.select(holdout_outcomes.c.account_id, holdout_outcomes.c.renewal_date))}
            fresh = list({(v["account_id"], v["renewal_date"]): v for v in values
                          if (v["account_id"], v["renewal_date"]) not in known}.values())
            if fresh:
                conn.execute(holdout_outcomes.insert(), fresh)
        return len(fresh)

    def holdout_outcomes(self) -> pd.DataFrame:
        """Recorded outcomes of held-out accounts, by account and renewal date."""
        query = sa.select(holdout_outcomes).order_by(holdout_outcomes.c.account_id, holdout_outcomes.c.renewal_date)
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return _frame(rows, [c.name for c in holdout_outcomes.columns])


# ---------------------------------------------------------------------------------------------
# Dagster resource
# ---------------------------------------------------------------------------------------------


class QueueStoreResource(dg.ConfigurableResource):
    """The rescue queue database as a Dagster resource.

    `url` is any SQLAlchemy URL (e.g. `dg.EnvVar("RESCUE_QUEUE_URL")`); empty means the embedded
    default, a SQLite file under the project home. The schema is migrated on first use.
    """

    url: str | None = None

    _store: QueueStore | None = PrivateAttr(default=None)

    def get_client(self) -> QueueStore:
        if self._store is None:
            store = QueueStore(self.url or default_queue_url())
            store.migrate()
            self._store = store
        return self._store

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


# ---------------------------------------------------------------------------------------------
# Internals
# ---------------------------------------------------------------------------------------------


def _configure_sqlite(engine: sa.Engine) -> None:
    """WAL, a busy timeout, foreign keys, and transactions that SQLite really begins.

    pysqlite defers BEGIN until the first write, so a read-then-write transaction can fail with
    "database is locked" instead of waiting. We emit BEGIN ourselves: IMMEDIATE for writes (the
    write lock is taken up front, and waiting writers queue behind `busy_timeout`), DEFERRED
    for reads.
    """

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")


def _frame(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
    return pd.DataFrame([dict(r) for r in rows], columns=list(columns))


def _normalize_case_id(case_id: str) -> str:
    if not isinstance(case_id, str) or not case_id.strip():
        raise CaseNotFound(f"invalid case id {case_id!r}")
    return case_id.strip().upper()


def _require_actor(actor: str) -> None:
    if not actor or not str(actor).strip():
        raise ValueError("every change to a case needs an actor (who is doing it)")


def _checked_decisions(decisions: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in DECISION_COLUMNS if c not in decisions.columns]
    if missing:
        raise ValueError(f"decisions frame is missing column(s): {', '.join(missing)}")
    dupes = decisions["account_id"][decisions["account_id"].duplicated()]
    if len(dupes):
        raise ValueError(f"decisions have {len(dupes)} duplicate account_id(s), e.g. {', '.join(map(str, dupes.head(5)))}")
    unknown = sorted(set(decisions["action"].dropna().astype(str)) - KNOWN_ACTIONS)
    if unknown or decisions["action"].isna().any():
        shown = ", ".join(unknown) if unknown else "null"
        raise ValueError(f"decisions.action has unknown value(s): {shown}; expected one of: {', '.join(sorted(KNOWN_ACTIONS))}")
    routed = decisions["action"].isin(CASE_ACTIONS)
    for column in ("priority", "team"):
        bad = decisions.loc[routed & decisions[column].isna(), "account_id"]
        if len(bad):
            raise ValueError(f"decisions.{column} is null for {len(bad)} routed account(s), e.g. {', '.join(map(str, bad.head(5)))}")
    return decisions


def _checked_candidates(candidates: pd.DataFrame) -> pd.DataFrame:
    required = ["account_id", "churn_risk", "health_score", "arr"]
    missing = [c for c in required if c not in candidates.columns]
    if missing:
        raise ValueError(f"candidates frame is missing column(s): {', '.join(missing)}")
    dupes = candidates["account_id"][candidates["account_id"].duplicated()]
    if len(dupes):
        raise ValueError(f"candidates have {len(dupes)} duplicate account_id(s), e.g. {', '.join(map(str, dupes.head(5)))}")
    keep = [c for c in ("account_id", "name", "churn_risk", "health_score", "arr", "top_reason") if c in candidates.columns]
    return candidates[keep].rename(columns={"name": "account_name"})


def _evidence_entry(row: Mapping[str, Any], snapshot: datetime) -> dict[str, Any]:
    return {
        "snapshot_date": snapshot.date().isoformat(),
        "churn_risk": _float(row.get("churn_risk")),
        "health": _float(row.get("health_score")),
        "priority": _scalar(row.get("priority")),
        "reasons": _str_list(row.get("reasons")),
    }


def _top_reason(row: Mapping[str, Any]) -> str | None:
    """The case's one-line reason: the severity rule that matched, then the top risk driver
    ("Health in the at-risk band: weekly active users down 38% vs 90-day average")."""
    top = _scalar(row.get("top_reason"))
    reasons = _str_list(row.get("reasons"))
    rule = next((r.split(": ", 1)[1] for r in reasons[1:2] if ": " in r), None)
    parts = [str(p) for p in (rule, top) if p]
    if parts:
        return ": ".join(parts)
    return reasons[0] if reasons else None


def _refreshed_fields(row: Mapping[str, Any], snapshot: datetime, meta: Mapping[str, Any]) -> dict[str, Any]:
    """Case fields that follow the latest snapshot confirming the case."""
    return {
        "priority": str(row["priority"]),
        "rule_id": _scalar(row.get("rule_id")),
        "reason": _top_reason(row),
        "required_skills": _str_list(row.get("required_skills")),
        "churn_risk": _float(row.get("churn_risk")),
        "health_score": _float(row.get("health_score")),
        "arr": _float(row.get("arr")),
        "expected_arr_at_risk": _float(row.get("expected_arr_at_risk")),
        "snapshot_date": snapshot,
        **meta,
    }


def _new_case(case_id: str, row: Mapping[str, Any], entry: dict[str, Any], context: Mapping[str, Any] | None,
              snapshot: datetime, now: datetime, meta: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "case_id": case_id,
        "account_id": str(row["account_id"]),
        "account_name": _scalar(row.get("account_name")),
        "status": OPEN,
        "team": str(row["team"]),
        "assignee": _scalar(row.get("assignee")),
        "evidence": [entry],
        "opened_at": now,
        "updated_at": now,
        "acknowledged_at": None,
        "resolved_at": None,
        "outcome": None,
        "sla_first_touch_due": utc_naive(_scalar(row.get("sla_first_touch_due"))),
        "sla_resolution_due": utc_naive(_scalar(row.get("sla_resolution_due"))),
        "escalation_level": 0,
        "snoozed_until": None,
        "context": _jsonable(context or {}),
        "version": 1,
        **_refreshed_fields(row, snapshot, meta),
    }


def _event(case_id: str, at: datetime, actor: str, kind: str, from_status: str | None, to_status: str | None,
           reason: str | None, payload: Mapping[str, Any]) -> dict[str, Any]:
    return {"case_id": case_id, "at": at, "actor": actor, "kind": kind, "from_status": from_status,
            "to_status": to_status, "reason": reason, "payload": _jsonable(payload)}


def _outbox_row(now: datetime, case_id: str | None, channel: str, destination: str, kind: str, dedupe_key: str,
                payload: Mapping[str, Any]) -> dict[str, Any]:
    return {"created_at": now, "case_id": case_id, "channel": channel, "destination": destination, "kind": kind,
            "dedupe_key": dedupe_key, "payload": _jsonable(payload), "status": "pending", "attempts": 0,
            "last_error": None, "next_attempt_at": now, "delivered_at": None}


def _case_message(case: Mapping[str, Any], kind: str, extra: Mapping[str, Any]) -> str:
    name = case.get("account_name") or case["account_id"]
    arr = case.get("arr")
    risk = case.get("churn_risk")
    figures = ", ".join(
        part for part in (
            f"ARR {arr:,.0f}" if arr is not None else "",
            f"churn risk {risk:.0%}" if risk is not None else "",
        ) if part
    )
    owner = f"team {case['team']}, assignee {case.get('assignee') or 'unassigned'}"
    head = {
        "case_opened": f"New {case['priority']} rescue case {case['case_id']} for {name}",
        "sla_warning": f"SLA warning on {case['priority']} rescue case {case['case_id']} ({name})",
        "escalated": f"Escalated {case['priority']} rescue case {case['case_id']} ({name})",
    }.get(kind, f"{kind} on rescue case {case['case_id']} ({name})")
    why = extra.get("message") or case.get("reason") or ""
    return f"{head}" + (f" ({figures})" if figures else "") + (f": {why}" if why else "") + f". {owner.capitalize()}."


def _notifications(case: Mapping[str, Any], kind: str, key_prefix: str, recipients: Sequence[str], now: datetime,
                   extra: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """One outbox row per distinct destination, deduplicated by `key_prefix` + destination."""
    extra = extra or {}
    payload = {
        "kind": kind,
        "case_id": case["case_id"],
        "account_id": case["account_id"],
        "account_name": case.get("account_name"),
        "priority": case["priority"],
        "team": case["team"],
        "assignee": case.get("assignee"),
        "reason": case.get("reason"),
        "arr": case.get("arr"),
        "churn_risk": case.get("churn_risk"),
        "expected_arr_at_risk": case.get("expected_arr_at_risk"),
        "text": _case_message(case, kind, extra),
        **extra,
    }
    rows: dict[str, dict[str, Any]] = {}
    for recipient in recipients:
        channel, destination = channel_for(recipient)
        key = f"{key_prefix}:{channel}:{destination}"
        rows.setdefault(key, _outbox_row(now, case["case_id"], channel, destination, kind, key, payload))
    return list(rows.values())


def _enqueue(conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Insert outbox rows whose dedupe_key is new; returns how many were inserted."""
    if not rows:
        return 0
    keys = [r["dedupe_key"] for r in rows]
    existing: set[str] = set()
    for start in range(0, len(keys), 500):
        chunk = keys[start:start + 500]
        existing.update(conn.execute(sa.select(outbox.c.dedupe_key).where(outbox.c.dedupe_key.in_(chunk))).scalars())
    fresh = [r for r in rows if r["dedupe_key"] not in existing]
    if fresh:
        conn.execute(outbox.insert(), fresh)
    return len(fresh)


def _upsert_routing_log(conn: sa.Connection, rows: pd.DataFrame, snapshot: datetime, now: datetime,
                        meta: Mapping[str, Any]) -> int:
    """Write one routing_log row per account for this snapshot; returns rows inserted or changed."""
    if rows.empty:
        return 0
    existing = {
        r["account_id"]: dict(r)
        for r in conn.execute(sa.select(routing_log).where(routing_log.c.snapshot_date == snapshot)).mappings()
    }
    inserts: list[dict[str, Any]] = []
    written = 0
    compared = ("action", "priority", "team", "rule_id", "rank", "policy_hash")
    for row in rows.to_dict("records"):
        values = {
            "snapshot_date": snapshot,
            "account_id": str(row["account_id"]),
            "action": str(row["action"]),
            "priority": _scalar(row.get("priority")),
            "team": _scalar(row.get("team")),
            "rule_id": _scalar(row.get("rule_id")),
            "reasons": _str_list(row.get("reasons")),
            "churn_risk": _float(row.get("churn_risk")),
            "expected_arr_at_risk": _float(row.get("expected_arr_at_risk")),
            "rank": None if _scalar(row.get("rank")) is None else int(row["rank"]),
            "logged_at": now,
            **meta,
        }
        old = existing.get(values["account_id"])
        if old is None:
            inserts.append(values)
            written += 1
        elif any(old[c] != values[c] for c in compared):
            conn.execute(routing_log.update().where(routing_log.c.log_id == old["log_id"]).values(**values))
            written += 1
    if inserts:
        conn.execute(routing_log.insert(), inserts)
    return written


def _upsert_account_states(conn: sa.Connection, states: pd.DataFrame, now: datetime) -> None:
    """Store the policy's hysteresis states, writing only rows that are new or changed."""
    missing = [c for c in ("account_id", "state", "since") if c not in states.columns]
    if missing:
        raise ValueError(f"account_states frame is missing column(s): {', '.join(missing)}")
    states = states.dropna(subset=["state"])
    if states.empty:
        return
    current = {aid: (state, since) for aid, state, since in conn.execute(
        sa.select(account_states.c.account_id, account_states.c.state, account_states.c.since))}
    inserts, changes = [], []
    for account_id, state, since in zip(states["account_id"].astype(str), states["state"].astype(str), states["since"]):
        since = utc_naive(since) or now
        if account_id not in current:
            inserts.append({"account_id": account_id, "state": state, "since": since, "updated_at": now})
        elif current[account_id] != (state, since):
            changes.append({"b_account_id": account_id, "b_state": state, "b_since": since, "b_updated_at": now})
    if inserts:
        conn.execute(account_states.insert(), inserts)
    if changes:
        conn.execute(
            account_states.update()
            .where(account_states.c.account_id == sa.bindparam("b_account_id"))
            .values(state=sa.bindparam("b_state"), since=sa.bindparam("b_since"), updated_at=sa.bindparam("b_updated_at")),
            changes,
        )


def _paused_intervals(events: Sequence[Mapping[str, Any]]) -> list[tuple[datetime, datetime | None]]:
    """Intervals a case spent paused, from its status changes in order (open-ended if still paused)."""
    intervals: list[tuple[datetime, datetime | None]] = []
    started: datetime | None = None
    for event in events:
        was, now_paused = event["from_status"] in PAUSED_STATUSES, event["to_status"] in PAUSED_STATUSES
        if now_paused and not was:
            started = event["at"]
        elif was and not now_paused and started is not None:
            intervals.append((started, event["at"]))
            started = None
    if started is not None:
        intervals.append((started, None))
    return intervals


def _step_field(step: Any, name: str, *default: Any) -> Any:
    if isinstance(step, Mapping):
        if name in step:
            return step[name]
    elif hasattr(step, name):
        return getattr(step, name)
    if default:
        return default[0]
    raise ValueError(f"escalation step {step!r} has no {name!r}")


def reassigned_context(conn: sa.Connection, case: Mapping[str, Any], *, team: str, assignee: str | None,
                        escalation_level: int, at: datetime, handoff: dict[str, Any]) -> dict[str, Any]:
    """The case's context package regenerated for its new owner, inside the reassigning
    transaction: plays tried and earlier handoffs come from this database (models.cases.context)."""
    plays = conn.execute(
        sa.select(rescue_actions).where(rescue_actions.c.case_id == case["case_id"]).order_by(rescue_actions.c.action_id)
    ).mappings().all()
    moves = conn.execute(
        sa.select(case_events).where(case_events.c.case_id == case["case_id"], case_events.c.kind.in_(("handoff", "escalated")))
        .order_by(case_events.c.event_id)
    ).mappings().all()
    handoffs = []
    for event in moves:
        payload = event["payload"] if isinstance(event["payload"], Mapping) else json.loads(event["payload"] or "{}")
        if "to_team" in payload:
            handoffs.append({"at": event["at"], "actor": event["actor"], "note": event["reason"], **payload})
    handoffs.append(handoff)
    context = case["context"] if isinstance(case["context"], Mapping) else json.loads(case["context"] or "{}")
    return _jsonable(refresh_context(context, team=team, assignee=assignee, escalation_level=escalation_level,
                                     plays=[dict(p) for p in plays], handoffs=handoffs, at=at))
