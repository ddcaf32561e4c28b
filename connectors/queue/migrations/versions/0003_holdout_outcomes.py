"""Holdout outcomes: the renewal outcome of each account held out of the queue (the control group).

Revision ID: 0003
Revises: 0002
Create Date: 2025-02-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "holdout_outcomes",
        sa.Column("account_id", sa.String(128), primary_key=True),
        sa.Column("renewal_date", sa.DateTime, primary_key=True),
        sa.Column("held_out_at", sa.DateTime, nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("arr", sa.Float),
        sa.Column("recorded_at", sa.DateTime, nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("holdout_outcomes")
