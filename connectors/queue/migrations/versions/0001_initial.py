"""Initial rescue queue schema: cases, audit events, rescue actions, routing log, account states,
applied escalation steps and the outbox.

Revision ID: 0001
Revises:
Create Date: 2025-01-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
ACTIVE_CASE = "status NOT IN ('closed_no_action', 'resolved_churned', 'resolved_saved')"


def upgrade() -> None:
    op.create_table(
        "rescue_cases",
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
    )
    # One active case per account, whatever writes to the table.
    op.create_index(
        "uq_rescue_cases_active_account",
        "rescue_cases",
        ["account_id"],
        unique=True,
        sqlite_where=sa.text(ACTIVE_CASE),
        postgresql_where=sa.text(ACTIVE_CASE),
    )
    op.create_index("ix_rescue_cases_status", "rescue_cases", ["status"])
    op.create_index("ix_rescue_cases_team", "rescue_cases", ["team"])
    op.create_index("ix_rescue_cases_assignee", "rescue_cases", ["assignee"])

    op.create_table(
        "case_events",
        sa.Column("event_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.String(32), sa.ForeignKey("rescue_cases.case_id"), nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("from_status", sa.String(32)),
        sa.Column("to_status", sa.String(32)),
        sa.Column("reason", sa.Text),
        sa.Column("payload", JSONType, nullable=False),
    )
    op.create_index("ix_case_events_case_id", "case_events", ["case_id"])

    op.create_table(
        "rescue_actions",
        sa.Column("action_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.String(32), sa.ForeignKey("rescue_cases.case_id"), nullable=False),
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("play", sa.String(128), nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("outcome", sa.String(32)),
    )
    op.create_index("ix_rescue_actions_case_id", "rescue_actions", ["case_id"])
    op.create_index("ix_rescue_actions_account_id", "rescue_actions", ["account_id"])

    op.create_table(
        "routing_log",
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

    op.create_table(
        "account_states",
        sa.Column("account_id", sa.String(128), primary_key=True),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("since", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )

    op.create_table(
        "escalation_steps_applied",
        sa.Column("step_key", sa.String(256), primary_key=True),
        sa.Column("case_id", sa.String(32), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("applied_at", sa.DateTime, nullable=False),
    )

    op.create_table(
        "outbox",
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
    )
    op.create_index("ix_outbox_status_next_attempt", "outbox", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_table("escalation_steps_applied")
    op.drop_table("account_states")
    op.drop_table("routing_log")
    op.drop_table("rescue_actions")
    op.drop_table("case_events")
    op.drop_table("rescue_cases")
