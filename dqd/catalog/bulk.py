"""Bulk loading for benchmarks and imports: plain multi-row INSERTs, no ORM objects."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import insert

from dqd.catalog.db import Transactions
from dqd.catalog.tables import Base

_BATCH = 2000


def bulk_insert(tx: Transactions, table: type[Base], rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (column → value) into ``table`` in one write transaction."""
    with tx.write() as session:
        for start in range(0, len(rows), _BATCH):
            session.execute(insert(table), list(rows[start : start + _BATCH]))
