"""jobs count the leases their workers lost apart from their attempts

A lease that expires means the dqd process running the job died or hung (its
model runs in a child, whose crash is recorded as the model's error), so it no
longer uses up one of the job's attempts; it is counted here, and a job whose
workers were lost this often ends failed (dqd.catalog.jobs.LOST_LEASES_MAX).

Revision ID: 0007_lost_leases
Revises: 0006_name_escapes
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_lost_leases"
down_revision: str | None = "0006_name_escapes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lost_leases", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("lost_leases")
