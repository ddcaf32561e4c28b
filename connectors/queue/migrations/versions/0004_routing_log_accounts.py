"""Routing log account facts: the name, ARR, health, required skills and context package of a
decision not routed, so an overflow account can be listed and opened as a case by a manager.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("routing_log") as batch:
        batch.add_column(sa.Column("account_name", sa.String(256)))
        batch.add_column(sa.Column("arr", sa.Float))
        batch.add_column(sa.Column("health_score", sa.Float))
        batch.add_column(sa.Column("required_skills", JSONType))
        batch.add_column(sa.Column("context", JSONType))


def downgrade() -> None:
    with op.batch_alter_table("routing_log") as batch:
        for column in ("context", "required_skills", "health_score", "arr", "account_name"):
            batch.drop_column(column)
