"""The catalog: the only object that talks SQL. Everything else gets domain objects."""

from __future__ import annotations

from sqlalchemy import Engine, text

from dqd.catalog.daemon_queries import DaemonQueries
from dqd.catalog.db import Transactions, is_sqlite, make_engine
from dqd.catalog.freezes import FreezeStore
from dqd.catalog.jobs import JobStore
from dqd.catalog.outbox import OutboxStore
from dqd.catalog.paths import PathStore
from dqd.catalog.queries import QueryStore
from dqd.catalog.records import RecordStore
from dqd.catalog.removals import RemovalStore
from dqd.catalog.retention import RetentionStore
from dqd.notifications import Outbox


class Catalog(
    JobStore,
    PathStore,
    RecordStore,
    QueryStore,
    DaemonQueries,
    RemovalStore,
    FreezeStore,
    OutboxStore,
    RetentionStore,
):
    def __init__(self, engine: Engine, outbox: Outbox | None = None) -> None:
        self.tx = Transactions(engine)
        # Where the notifications this catalog writes go (settings' [notifications]); none by default.
        self.outbox = outbox or Outbox()

    @classmethod
    def from_url(cls, url: str) -> Catalog:
        return cls(make_engine(url))

    @property
    def engine(self) -> Engine:
        return self.tx.engine

    @property
    def is_sqlite(self) -> bool:
        return is_sqlite(self.tx.engine)

    def ping(self) -> None:
        """Raise CatalogUnavailable when the database cannot be reached."""
        with self.tx.read() as session:
            session.execute(text("SELECT 1"))

    def close(self) -> None:
        self.tx.engine.dispose()
