"""Schema migrations, run from the migrations shipped inside the installed package.

Alembic is imported inside the functions: importing this module (every CLI
command does, through ``dqd.cli.admin``) must not cost Alembic's quarter of a
second; :mod:`dqd.catalog.revision` answers "is it current?" without it.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from dqd.catalog.db import Transactions
from dqd.errors import SchemaMismatch

if TYPE_CHECKING:
    from alembic.config import Config


def migrations_dir() -> Path:
    """The Alembic scripts: shipped as ``dqd.migrations`` in the wheel, ``migrations/`` in a checkout."""
    try:
        return Path(str(files("dqd.migrations")))
    except ModuleNotFoundError:
        # A checkout imported ahead of the installed package (e.g. tests run from the repo root).
        return Path(__file__).resolve().parents[2] / "migrations"


def _config(engine: Engine | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if engine is not None:
        config.set_main_option(
            "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
        )
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "no migrations shipped"
    return head


def known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    return {script.revision for script in ScriptDirectory.from_config(_config()).walk_revisions()}


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with Transactions(engine).read() as session:
        return MigrationContext.configure(session.connection()).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> str:
    """Apply pending migrations; returns the revision the catalog is now at."""
    from alembic import command

    current = current_revision(engine)
    if current is not None and current not in known_revisions():
        raise SchemaMismatch(current, head_revision(), "the catalog is newer than this dqd; upgrade dqd")
    config = _config(engine)
    with Transactions(engine).write() as session:
        config.attributes["connection"] = session.connection()
        command.upgrade(config, revision)
    return current_revision(engine) or ""


def ensure_current(engine: Engine) -> None:
    """Refuse to run on a catalog that is behind or ahead of the code."""
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return
    if current is not None and current not in known_revisions():
        raise SchemaMismatch(current, head, "the catalog is newer than this dqd; upgrade dqd")
    raise SchemaMismatch(current, head, "run `dqd db upgrade`")
