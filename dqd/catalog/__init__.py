"""The catalog package: the only code that talks SQL."""

from __future__ import annotations

from dqd.catalog.migrate import ensure_current, upgrade
from dqd.catalog.store import Catalog
from dqd.settings import Settings


def open_catalog(settings: Settings, *, migrate: bool | None = None) -> Catalog:
    """Open the configured catalog.

    Pending migrations are applied on SQLite by default (a private, embedded
    file), and only when asked on Postgres (a shared database whose upgrades an
    operator schedules): ``auto_migrate`` in the configuration or ``migrate``.
    """
    catalog = Catalog.from_url(settings.database_url_plain)
    if migrate is None:
        migrate = settings.auto_migrate if settings.auto_migrate is not None else catalog.is_sqlite
    if migrate:
        upgrade(catalog.engine)
    else:
        ensure_current(catalog.engine)
    return catalog


__all__ = ["Catalog", "open_catalog"]
