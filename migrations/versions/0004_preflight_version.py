"""decisions record the preflight version they were made under

An ``error`` or ``skipped`` decision depends on what preflight and its
pre-fixes could repair, not on the selection policy; a newer preflight makes
such decisions stale. Rows made before this column are NULL: older than any
version, so their errors and skips are re-queued once.

Revision ID: 0004_preflight_version
Revises: 0003_decision_path
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_preflight_version"
down_revision: str | None = "0003_decision_path"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("preflight_version", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_column("preflight_version")
