"""The catalog package: the only code that talks SQL."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url

from dqd.catalog.db import make_engine, normalize_url
from dqd.catalog.revision import is_current
from dqd.catalog.store import Catalog
from dqd.errors import CatalogUnavailable
from dqd.notifications import Outbox
from dqd.settings import Settings


def open_catalog(settings: Settings, *, migrate: bool | None = None, create: bool = True) -> Catalog:
    """Open the configured catalog.

    Pending migrations are applied on SQLite by default (a private, embedded
    file), and only when asked on Postgres (a shared database whose upgrades an
    operator schedules): ``auto_migrate`` in the configuration or ``migrate``.
    ``create=False`` (the read commands) refuses a SQLite file that does not
    exist instead of creating it and its folder: an empty catalog would read
    as "no models" when the URL is wrong.
    """
    url = settings.database_url_plain
    if not create:
        missing = missing_sqlite_file(url)
        if missing is not None:
            raise CatalogUnavailable(no_catalog_message(missing))
    publish_dir = str(settings.publish_dir.absolute()) if settings.publish_dir is not None else None
    catalog = Catalog(
        make_engine(url, create=create), Outbox(tuple(settings.notifications.webhooks), publish_dir)
    )
    if migrate is None:
        migrate = settings.auto_migrate if settings.auto_migrate is not None else catalog.is_sqlite
    if is_current(catalog.engine):
        return catalog  # the common case, without importing Alembic
    from dqd.catalog.migrate import ensure_current, upgrade

    if migrate:
        upgrade(catalog.engine)
    else:
        ensure_current(catalog.engine)
    return catalog


def no_catalog_message(missing: Path) -> str:
    return (
        f"no catalog at {missing}: check database_url (DQD_DATABASE_URL, --database-url), "
        "or create it with `dqd db upgrade` or `dqd run`"
    )


def sqlite_file(url: str) -> Path | None:
    """The SQLite file ``url`` names; None for other URLs and in-memory ones."""
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database).expanduser()


def missing_sqlite_file(url: str) -> Path | None:
    """The SQLite file ``url`` names when it does not exist; None for other URLs and in-memory ones."""
    path = sqlite_file(url)
    if path is None:
        return None
    path = path.absolute()
    return None if path.exists() else path


__all__ = ["Catalog", "missing_sqlite_file", "no_catalog_message", "open_catalog", "sqlite_file"]
