"""decisions record the precision of the model as given

A decision about an FP16 or BF16 model is made on an FP32 working copy; the
original's precision is recorded so that a kept original reads as what it is,
not as FP32. Rows made before this column are NULL (FP32 then: dqd refused
half-precision models).

Revision ID: 0005_source_precision
Revises: 0004_preflight_version
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_source_precision"
down_revision: str | None = "0004_preflight_version"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source_precision", sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_column("source_precision")
