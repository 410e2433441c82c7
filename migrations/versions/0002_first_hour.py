"""decision threads, job stage, superseded path versions, removal blocks

Revision ID: 0002_first_hour
Revises: 0001_initial
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_first_hour"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("threads", sa.Integer(), nullable=True))
    # Decisions made before this column: the thread count their benchmarks recorded.
    op.execute(
        "UPDATE decisions SET threads = (SELECT MAX(b.threads) FROM benchmark_runs b "
        "WHERE b.decision_id = decisions.id)"
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stage", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("stage_started_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("path_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "removal_blocks",
        sa.Column("root", sa.String(length=1024), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("known", sa.Integer(), nullable=False),
        sa.Column("missing", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.String(length=32), nullable=True),
        sa.Column("blocked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("root", name=op.f("pk_removal_blocks")),
    )


def downgrade() -> None:
    op.drop_table("removal_blocks")
    with op.batch_alter_table("path_versions", schema=None) as batch_op:
        batch_op.drop_column("superseded_at")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("stage_started_at")
        batch_op.drop_column("stage")
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_column("threads")
