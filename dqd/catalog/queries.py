"""Read-side queries for the CLI, the HTTP API and the report."""

from __future__ import annotations

from dqd.catalog.db import Transactions


class QueryStore:
    tx: Transactions
