"""Issue 9, scenario 4: a scan that would remove too much removes nothing and blocks (both backends)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from dqd.api import create_app
from dqd.catalog import Catalog
from dqd.settings import Settings
from tests.integration.test_reconcile import old, reconciler


def zoo(root: Path, count: int) -> list[str]:
    rels = [f"zoo/m{i}.onnx" for i in range(count)]
    for i, rel in enumerate(rels):
        old(root / rel, f"model {i}".encode())
    return rels


def test_block_store_keeps_the_first_time_and_clears(catalog: Catalog) -> None:
    first = datetime(2026, 12, 1, tzinfo=UTC)
    catalog.block_removals("/m", "gone", known=5, missing=5, host_id="h1", now=first)
    again = catalog.block_removals("/m", "still gone", known=5, missing=4, now=first + timedelta(hours=1))
    assert (again.reason, again.missing, again.blocked_at) == ("still gone", 4, first)
    assert catalog.removal_block("/m") == again and catalog.removal_blocks() == [again]
    assert catalog.removal_block("/other") is None
    assert catalog.clear_removal_block("/m") and not catalog.clear_removal_block("/m")
    assert catalog.removal_blocks() == []


def test_more_than_half_missing_removes_nothing_until_they_come_back(
    catalog: Catalog, tmp_path: Path
) -> None:
    root = tmp_path / "models"
    rels = zoo(root, 5)
    rec = reconciler(catalog, root)
    assert rec.scan().registered == 5
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    for rel in rels[:3]:
        shutil.move(root / rel, moved / Path(rel).name)
    summary = rec.scan()
    assert summary.removed == 0 and "3 of the 5" in summary.blocked
    assert sorted(catalog.known_paths()) == rels
    block = catalog.removal_block(str(root))
    assert block is not None and (block.known, block.missing) == (5, 3)
    # The watcher's removal events while blocked remove nothing either.
    assert rec.remove_paths([rels[0]]) == 0

    for rel in rels[:3]:  # the mount is back; one model really was deleted meanwhile
        shutil.move(moved / Path(rel).name, root / rel)
    (root / rels[4]).unlink()
    summary = rec.scan()
    assert summary.blocked == "" and summary.removed == 1
    assert catalog.removal_blocks() == []
    assert sorted(catalog.known_paths()) == rels[:4]


def test_an_empty_root_blocks_even_one_model(catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "models"
    zoo(root, 1)
    rec = reconciler(catalog, root)
    rec.scan()
    shutil.rmtree(root / "zoo")
    assert "empty" in rec.scan().blocked
    assert list(catalog.known_paths()) == ["zoo/m0.onnx"]


def test_ordinary_deletions_are_removed(catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "models"
    rels = zoo(root, 4)
    rec = reconciler(catalog, root)
    rec.scan()
    for rel in rels[:2]:  # half, not more
        (root / rel).unlink()
    assert rec.scan().removed == 2
    (root / rels[2]).unlink()
    assert rec.remove_paths([rels[2]]) == 1  # the watcher's path: one of two
    assert list(catalog.known_paths()) == [rels[3]] and catalog.removal_blocks() == []


def test_a_watcher_batch_emptying_a_folder_is_blocked_and_pruned(catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "models"
    rels = zoo(root, 4)
    old(root / "keep" / "k.onnx", b"kept")
    rec = reconciler(catalog, root)
    rec.scan()
    shutil.rmtree(root / "zoo")
    assert rec.remove_paths(["zoo"]) == 0  # 4 of 5 at once
    assert len(catalog.known_paths()) == 5 and catalog.removal_block(str(root)) is not None

    assert rec.missing_paths() == rels
    assert rec.prune(rec.missing_paths()) == rels
    assert list(catalog.known_paths()) == ["keep/k.onnx"] and catalog.removal_blocks() == []


def test_readyz_fails_while_removals_are_blocked(catalog: Catalog) -> None:
    with TestClient(create_app(catalog, Settings())) as client:
        assert client.get("/readyz").status_code == 200
        catalog.block_removals("/mnt/models", "the watched folder /mnt/models is empty", known=7, missing=7)
        ready = client.get("/readyz")
        assert ready.status_code == 503
        body = ready.json()
        assert body["status"] == "removal_blocked" and "/mnt/models is empty" in body["detail"]
        assert body["blocks"] == [{"root": "/mnt/models", "known": 7, "missing": 7}]
        catalog.clear_removal_block("/mnt/models")
        assert client.get("/readyz").status_code == 200
