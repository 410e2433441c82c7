"""Fixtures most acceptance tests share: the daemon's SQLite catalog, by URL and opened."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dqd.catalog import Catalog


@pytest.fixture
def url(tmp_path: Path) -> str:
    """The SQLite catalog a test's daemon and commands share (created and migrated by the first)."""
    return f"sqlite:///{tmp_path / 'dqd.db'}"


@pytest.fixture
def catalog(url: str) -> Iterator[Catalog]:
    catalog = Catalog.from_url(url)
    yield catalog
    catalog.close()
