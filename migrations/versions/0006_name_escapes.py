"""file names that are not valid UTF-8 get a reversible escaped form in text columns

Columns that hold file names (paths, and messages that may name a file) store
dqd.pathtext.to_text's form from now on: a byte that is not UTF-8 as ``\\xNN``
and a backslash as ``\\\\``. Rows written before hold no such bytes (they could
not be inserted: the bug this fixes), so only their backslashes are doubled.

Revision ID: 0006_name_escapes
Revises: 0005_source_precision
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_name_escapes"
down_revision: str | None = "0005_source_precision"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The columns typed NameString/NameText in dqd.catalog.tables.
COLUMNS: dict[str, tuple[str, ...]] = {
    "model_paths": ("path", "refused_reason"),
    "jobs": ("source_path", "last_error", "stage"),
    "variants": ("output_path", "error"),
    "decisions": ("error", "path"),
    "accuracy_evaluations": ("reason",),
    "removal_blocks": ("root", "reason"),
}


def _replace(old: str, new: str) -> None:
    for table_name, names in COLUMNS.items():
        table = sa.table(table_name, *(sa.column(name, sa.Text) for name in names))
        for name in names:
            column = table.c[name]
            op.execute(
                table.update()
                .where(column.contains(old, autoescape=True))
                .values({name: sa.func.replace(column, old, new)})
            )


def upgrade() -> None:
    _replace("\\", "\\\\")


def downgrade() -> None:
    _replace("\\\\", "\\")
