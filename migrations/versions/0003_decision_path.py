"""the decision's model path is a column, not a key inside details

Revision ID: 0003_decision_path
Revises: 0002_first_hour
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_decision_path"
down_revision: str | None = "0002_first_hour"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

decisions = sa.table(
    "decisions", sa.column("id", sa.Integer), sa.column("details", sa.JSON), sa.column("path", sa.String)
)


def upgrade() -> None:
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("path", sa.String(length=1024), nullable=True))
    # Row by row in Python: JSON functions differ between SQLite and Postgres.
    conn = op.get_bind()
    rows = conn.execute(sa.select(decisions.c.id, decisions.c.details)).all()
    for decision_id, details in rows:
        if isinstance(details, dict) and "path" in details:
            rest = {k: v for k, v in details.items() if k != "path"}
            conn.execute(
                decisions.update()
                .where(decisions.c.id == decision_id)
                .values(path=details["path"], details=rest)
            )


def downgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(decisions.c.id, decisions.c.details, decisions.c.path)).all()
    for decision_id, details, path in rows:
        if path is not None:
            conn.execute(
                decisions.update()
                .where(decisions.c.id == decision_id)
                .values(details={**(details or {}), "path": path})
            )
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_column("path")
