"""Removal blocks: a scan that would have marked too many models removed at once.

One row per watched root. While it exists nothing under the root is marked
removed and ``/readyz`` fails with its reason; it goes when the folder's
models come back (a later scan clears it) or ``dqd prune`` confirms.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select

from dqd.catalog.db import Transactions, utcnow
from dqd.catalog.rows import removal_block_from_row
from dqd.catalog.tables import RemovalBlockRow
from dqd.catalog.views import RemovalBlock


class RemovalStore:
    tx: Transactions

    def block_removals(
        self,
        root: str,
        reason: str,
        *,
        known: int,
        missing: int,
        host_id: str | None = None,
        now: datetime | None = None,
    ) -> RemovalBlock:
        """Record (or refresh) the block for ``root``; the first ``blocked_at`` is kept."""
        with self.tx.write() as session:
            row = session.get(RemovalBlockRow, root)
            if row is None:
                row = RemovalBlockRow(root=root, blocked_at=now or utcnow())
                session.add(row)
            row.reason, row.known, row.missing, row.host_id = reason, known, missing, host_id
            session.flush()
            return removal_block_from_row(row)

    def clear_removal_block(self, root: str) -> bool:
        """Lift the block for ``root``; False when there was none."""
        with self.tx.write() as session:
            result = session.execute(delete(RemovalBlockRow).where(RemovalBlockRow.root == root))
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def removal_block(self, root: str) -> RemovalBlock | None:
        with self.tx.read() as session:
            row = session.get(RemovalBlockRow, root)
            return None if row is None else removal_block_from_row(row)

    def removal_blocks(self) -> list[RemovalBlock]:
        with self.tx.read() as session:
            rows = session.scalars(select(RemovalBlockRow).order_by(RemovalBlockRow.root))
            return [removal_block_from_row(row) for row in rows]
