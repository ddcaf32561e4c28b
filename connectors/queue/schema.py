"""The rescue queue's tables and the constants that go with them.

The alembic revisions in `connectors/queue/migrations` create exactly this schema; a test compares
the two so they cannot drift apart.

Sizes. Account ids are `models.contracts.ACCOUNT_ID_CHARS` long at most: the source checks refuse
a longer one, so it never reaches a write. Display text (account names, reasons, notification
text) is never refused: it is cut to fit, ending in a visible marker, before it is stored or
enqueued (`connectors.queue.values.fit_row`, `models.text.fit_text`), so the same row is stored
alike on SQLite (which would keep any length) and PostgreSQL (which refuses an over-long value
and would fail the whole write). A display column is marked with `display()`: a String column
holds its length; a Text or JSON column declares `max_chars` (for JSON, each string in the
document). `text_limit` reads the size; nothing else repeats the numbers.

| table                      | what                                                           |
|----------------------------|----------------------------------------------------------------|
| `rescue_cases`             | one row per case; at most one active case per account          |
| `case_events`              | append-only audit trail: who did what to a case, when and why  |
| `rescue_actions`           | plays the rescue team logged (flow back to the CRM)            |
| `routing_log`              | decisions not routed (holdout, overflow, cooldown) per snapshot, with the account's figures and context package |
| `account_states`           | hysteresis state per account                                   |
| `escalation_steps_applied` | SLA ladder steps already applied (makes the SLA sensor idempotent) |
| `outbox`                   | every notification and external write, delivered later         |
| `desk_users`               | people who may use the rescue desk (`connectors.queue.users`)  |
| `holdout_outcomes`         | renewal outcomes of held-out accounts (the control group)      |
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from models.cases.lifecycle import TERMINAL_STATUSES
from models.contracts import ACCOUNT_ID_CHARS

#: Actor recorded on changes made by the pipeline (routing).
PIPELINE_ACTOR = "rescue-pipeline"

#: Decision actions that open or re-confirm a case, and those recorded in the routing log.
CASE_ACTIONS = frozenset({"route", "update"})
LOGGED_ACTIONS = frozenset({"holdout", "overflow", "cooldown"})
KNOWN_ACTIONS = CASE_ACTIONS | LOGGED_ACTIONS | {"not_eligible"}

#: Outbox channel of external writes to the CRM (consumed by the CRM write-back, not notifiers).
CRM_CHANNEL = "crm"
#: Outbox channel of notes on the account's open ticket in the ticketing system (`connectors.ticket_notes`).
TICKETING_CHANNEL = "ticketing"

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"



class JSONType(sa.types.TypeDecorator):
    """JSON, stored as JSONB on PostgreSQL (what the migrations create there) and as the
    dialect's JSON elsewhere. The PostgreSQL type is looked up only when a PostgreSQL engine
    compiles it: importing its dialect costs as much as the rest of SQLAlchemy, and commands
    on a SQLite or DuckDB queue (`rescue queue list`) would pay it at start-up."""

    impl = sa.JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(sa.JSON())



class NullableJSON(JSONType):
    """`JSONType` whose Python None is SQL NULL (not the JSON value null), so `IS NULL` finds it."""

    impl = sa.JSON(none_as_null=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB(none_as_null=True))
        return dialect.type_descriptor(sa.JSON(none_as_null=True))

_TERMINAL_SQL = ", ".join(f"'{s}'" for s in sorted(TERMINAL_STATUSES))
ACTIVE_CASE_PREDICATE = f"status NOT IN ({_TERMINAL_SQL})"

METADATA = sa.MetaData()

#: `Column.info` key marking a display column (see the module docstring).
DISPLAY = "display"


def display(max_chars: int | None = None) -> dict[str, object]:
    """`info` of a display column: its text is cut to fit, never refused. A Text or JSON column
    says how many characters (per string, for JSON) it keeps."""
    return {DISPLAY: True, **({"max_chars": max_chars} if max_chars is not None else {})}


def text_limit(column: sa.Column) -> int:
    """How many characters a display column keeps (each string of the document, for JSON)."""
    if not column.info.get(DISPLAY):
        raise ValueError(f"{column.table.name}.{column.name} is not a display column")
    limit = column.info.get("max_chars") or getattr(column.type, "length", None)
    if not limit:
        raise ValueError(f"display column {column.table.name}.{column.name} declares no size")
    return int(limit)


rescue_cases = sa.Table(
    "rescue_cases",
    METADATA,
    sa.Column("case_id", sa.String(32), primary_key=True),
    sa.Column("account_id", sa.String(ACCOUNT_ID_CHARS), nullable=False),
    sa.Column("account_name", sa.String(256), info=display()),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("priority", sa.String(8), nullable=False),
    sa.Column("team", sa.String(64), nullable=False),
    sa.Column("assignee", sa.String(128)),
    sa.Column("required_skills", JSONType, nullable=False),
    sa.Column("rule_id", sa.String(128)),
    sa.Column("reason", sa.Text, info=display(1000)),
    sa.Column("evidence", JSONType, nullable=False, info=display(1000)),
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
    sa.Column("context", JSONType, nullable=False, info=display(1000)),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Index(
        "uq_rescue_cases_active_account",
        "account_id",
        unique=True,
        sqlite_where=sa.text(ACTIVE_CASE_PREDICATE),  # PostgreSQL's: `for_dialect`
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
    sa.Column("account_id", sa.String(ACCOUNT_ID_CHARS), nullable=False),
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
    sa.Column("account_id", sa.String(ACCOUNT_ID_CHARS), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("priority", sa.String(8)),
    sa.Column("team", sa.String(64)),
    sa.Column("rule_id", sa.String(128)),
    sa.Column("reasons", JSONType, nullable=False, info=display(1000)),
    sa.Column("churn_risk", sa.Float),
    sa.Column("expected_arr_at_risk", sa.Float),
    sa.Column("rank", sa.Integer),
    sa.Column("policy_version", sa.String(64)),
    sa.Column("policy_hash", sa.String(128)),
    sa.Column("model_version", sa.String(128)),
    sa.Column("logged_at", sa.DateTime, nullable=False),
    # revision 0004: what a manager needs to see an overflow account and open its case by hand
    sa.Column("account_name", sa.String(256), info=display()),
    sa.Column("arr", sa.Float),
    sa.Column("health_score", sa.Float),
    sa.Column("required_skills", NullableJSON),
    sa.Column("context", NullableJSON, info=display(1000)),
    sa.UniqueConstraint("snapshot_date", "account_id", name="uq_routing_log_snapshot_account"),
)

account_states = sa.Table(
    "account_states",
    METADATA,
    sa.Column("account_id", sa.String(ACCOUNT_ID_CHARS), primary_key=True),
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
    sa.Column("payload", JSONType, nullable=False, info=display(4000)),
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
    sa.Column("account_id", sa.String(ACCOUNT_ID_CHARS), primary_key=True),
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


def for_dialect(dialect_name: str) -> None:
    """Give the schema its options for `dialect_name` before an engine of that kind uses it
    (`connectors.queue.database.make_engine` calls it; idempotent).

    PostgreSQL's options (the active-case index's ``WHERE``) are set here rather than in the
    table definitions because naming them there imports SQLAlchemy's PostgreSQL dialect, which
    costs as much as the rest of SQLAlchemy, in every command on a SQLite or DuckDB queue."""
    if dialect_name == "postgresql":
        for index in rescue_cases.indexes:
            if index.name == "uq_rescue_cases_active_account":
                index.dialect_options["postgresql"]["where"] = sa.text(ACTIVE_CASE_PREDICATE)
