"""Shared fixtures: real SQLite and real Postgres catalogs, the corpus location.

Postgres comes from ``DQD_TEST_POSTGRES_URL`` (``.ci/run`` starts a server and
exports it). Without it Postgres tests skip on a developer's machine and
*fail* on CI (``CI=true``), so a broken CI set-up cannot pass silently.
A template database is migrated once per session; each test gets a fresh
``CREATE DATABASE ... TEMPLATE`` copy.

The suite runs on two pytest-xdist workers (``-n 2`` in pyproject.toml). A
test marked ``serial`` (one that measures the host's load, or whose pick
rests on close timings) runs with no other test beside it: every test holds
a run-wide reader/writer lock, shared, and a serial one holds it exclusively.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dqd.catalog import Catalog
from dqd.catalog.migrate import upgrade

REPO_ROOT = Path(__file__).resolve().parent.parent
CORPUS_DIR = REPO_ROOT.parent / "shared" / "corpus"
ON_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
POSTGRES_ENV = "DQD_TEST_POSTGRES_URL"
# The suite's own processes share the machine's cores with every benchmark it runs: the busy-host
# check (benchmark.max_foreign_load) is off unless a test sets it (tests/acceptance/test_busy_host.py).
BUSY_CHECK_OFF = {"DQD_BENCHMARK__MAX_FOREIGN_LOAD": "1"}
os.environ.update(BUSY_CHECK_OFF)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Setup, call and teardown (a module fixture's too) under the run's lock: see the module doc."""
    workerinput = getattr(item.config, "workerinput", None)
    if workerinput is None:  # one process: nothing runs beside a test
        yield
        return
    # Each worker's --basetemp is a folder of the run's own (pytest keeps the last three runs').
    basetemp = item.config.option.basetemp
    folder = Path(basetemp).parent if basetemp else Path(tempfile.gettempdir())
    stem = folder / f"dqd-tests-{workerinput['testrunuid']}"
    with _run_lock(stem, exclusive=item.get_closest_marker("serial") is not None):
        yield


@contextmanager
def _run_lock(stem: Path, *, exclusive: bool) -> Iterator[None]:
    """A reader/writer flock shared by this run's workers. The gate is held while waiting, so a
    serial test waiting for the other worker's test is not overtaken by that worker's next one."""
    with open(f"{stem}.gate", "a") as gate, open(f"{stem}.lock", "a") as lock:
        fcntl.flock(gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        finally:
            fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def corpus_path(name: str) -> Path:
    """A corpus model, or skip the test when ../shared is absent (a user's clone)."""
    path = CORPUS_DIR / name
    if not path.exists():
        if ON_CI:
            pytest.fail(f"corpus file {path} missing on CI")
        pytest.skip(f"corpus not available at {CORPUS_DIR}")
    return path


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        message = f"{POSTGRES_ENV} is not set: no Postgres server for this test"
        if ON_CI:
            pytest.fail(message + " (CI must start one: see .ci/run)")
        pytest.skip(message)
    return url


def _admin_execute(server_url: str, statement: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(_with_database(server_url, "postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


def _with_database(url: str, database: str) -> str:
    from sqlalchemy.engine import make_url

    from dqd.catalog.db import normalize_url

    return make_url(normalize_url(url)).set(database=database).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_template(postgres_server_url: str) -> str:
    """A database migrated to head once per session, copied by each test."""
    name = f"dqd_template_{uuid.uuid4().hex[:8]}"
    _admin_execute(postgres_server_url, f'CREATE DATABASE "{name}"')
    catalog = Catalog.from_url(_with_database(postgres_server_url, name))
    upgrade(catalog.engine)
    catalog.close()
    yield name  # type: ignore[misc]
    _admin_execute(postgres_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(postgres_server_url: str, postgres_template: str) -> Iterator[str]:
    """A fresh, migrated Postgres database for one test."""
    name = f"dqd_test_{uuid.uuid4().hex[:10]}"
    _admin_execute(postgres_server_url, f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"')
    yield _with_database(postgres_server_url, name)
    _admin_execute(postgres_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def empty_postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh, empty (unmigrated) Postgres database."""
    name = f"dqd_empty_{uuid.uuid4().hex[:10]}"
    _admin_execute(postgres_server_url, f'CREATE DATABASE "{name}"')
    yield _with_database(postgres_server_url, name)
    _admin_execute(postgres_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'catalog.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated catalog URL on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'catalog.db'}"
        catalog = Catalog.from_url(url)
        upgrade(catalog.engine)
        catalog.close()
        return url
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def catalog(catalog_url: str) -> Iterator[Catalog]:
    """A migrated catalog on SQLite and on Postgres (the test runs once per backend)."""
    catalog = Catalog.from_url(catalog_url)
    yield catalog
    catalog.close()
