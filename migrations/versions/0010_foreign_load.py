"""benchmarks record the foreign load measured while they ran

``foreign_load`` is a fraction of the benchmark's wall time (see dqd.hostload:
CPU pressure, or other processes' CPU time), ``load_source`` says which. Older
benchmarks have neither.

Revision ID: 0010_foreign_load
Revises: 0009_after_decision
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_foreign_load"
down_revision: str | None = "0009_after_decision"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("benchmark_runs", sa.Column("foreign_load", sa.Float(), nullable=True))
    op.add_column("benchmark_runs", sa.Column("load_source", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("benchmark_runs", schema=None) as batch_op:
        batch_op.drop_column("load_source")
        batch_op.drop_column("foreign_load")
