"""The schema revision without Alembic: start-up checks that cost a file read and one SELECT.

Importing Alembic costs about a quarter of a second; read commands run on a
current catalog need only compare the ``alembic_version`` row with the head
revision declared in the shipped scripts. Anything else (no row, a revision
that differs, scripts that do not parse) goes to :mod:`dqd.catalog.migrate`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path

from sqlalchemy import Engine, inspect, text

from dqd.catalog.db import Transactions

_REVISION = re.compile(r"^revision(?:\s*:[^=]+)?\s*=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)
_DOWN = re.compile(r"^down_revision(?:\s*:[^=]+)?\s*=\s*(?:['\"]([^'\"]+)['\"]|None)", re.MULTILINE)


def versions_dir() -> Path:
    """``dqd.migrations.versions`` in the wheel, ``migrations/versions`` in a checkout."""
    spec = find_spec("dqd.migrations") if find_spec("dqd") is not None else None
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations))) / "versions"
    return Path(__file__).resolve().parents[2] / "migrations" / "versions"


@lru_cache(maxsize=1)
def declared_head() -> str | None:
    """The one revision no script revises; None when that is not clear (Alembic will tell)."""
    revisions: set[str] = set()
    revised: set[str] = set()
    try:
        scripts = sorted(versions_dir().glob("*.py"))
        for script in scripts:
            source = script.read_text(encoding="utf-8")
            found = _REVISION.search(source)
            if found is None:
                continue
            revisions.add(found.group(1))
            down = _DOWN.search(source)
            if down is not None and down.group(1):
                revised.add(down.group(1))
    except OSError:
        return None
    heads = revisions - revised
    return next(iter(heads)) if len(heads) == 1 else None


def stored_revision(engine: Engine) -> str | None:
    """The catalog's ``alembic_version``; None when there is none.

    Raises :class:`CatalogUnavailable` when the catalog cannot be reached (once, here).
    """
    with Transactions(engine).read() as session:
        conn = session.connection()
        if not inspect(conn).has_table("alembic_version"):
            return None
        rows = list(conn.execute(text("SELECT version_num FROM alembic_version")))
    return str(rows[0][0]) if len(rows) == 1 else None


def is_current(engine: Engine) -> bool:
    """The catalog is at the head revision the shipped scripts declare."""
    head = declared_head()
    return head is not None and stored_revision(engine) == head
