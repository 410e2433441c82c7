"""Real watchdog observers (inotify and polling) on a real folder, feeding the settle tracker."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dqd.daemon.filters import PathFilter
from dqd.daemon.settle import Ready, SettleTracker
from dqd.daemon.watcher import ModelWatcher
from dqd.settings import WatchSettings

SETTLE = 0.6


class Collector:
    def __init__(self) -> None:
        self.ready: list[str] = []
        self.removed: list[str] = []
        self.batches: list[list[str]] = []
        self.ready_at: dict[str, float] = {}
        self.changed = threading.Condition()
        self.fail_next = 0

    def on_ready(self, item: Ready) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("catalog unavailable (simulated by the callback)")
        with self.changed:
            self.ready.append(item.rel_path)
            self.ready_at[item.rel_path] = time.time()
            self.changed.notify_all()

    def on_removed(self, rels: list[str]) -> None:
        with self.changed:
            self.removed.extend(rels)
            self.batches.append(sorted(rels))
            self.changed.notify_all()

    def wait(self, predicate: object, timeout: float = 10.0) -> bool:
        with self.changed:
            return self.changed.wait_for(predicate, timeout)  # type: ignore[arg-type]


@pytest.fixture(params=["native", "polling"])
def observer(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def watched(tmp_path: Path, observer: str) -> Iterator[tuple[Path, Collector]]:
    root = tmp_path / "models"
    root.mkdir()
    settings = WatchSettings()
    collector = Collector()
    watcher = ModelWatcher(
        PathFilter(root, settings.include, settings.exclude, [root / "out"]),
        SettleTracker(SETTLE),
        on_ready=collector.on_ready,
        on_removed=collector.on_removed,
        observer=observer,
        poll_interval=0.1,
    )
    watcher.start()
    time.sleep(0.2)  # let the polling observer take its first snapshot
    yield root, collector
    watcher.stop()


def test_chunked_write_is_ready_once_after_it_completes(watched: tuple[Path, Collector]) -> None:
    root, seen = watched
    target = root / "repo" / "m" / "1" / "model.onnx"
    target.parent.mkdir(parents=True)
    with target.open("wb") as handle:
        for _ in range(6):
            handle.write(os.urandom(4096))
            handle.flush()
            time.sleep(0.2)  # shorter than the settle interval: still "being written"
            assert seen.ready == []
        closed_at = time.time()
    assert seen.wait(lambda: seen.ready)
    assert seen.ready == ["repo/m/1/model.onnx"]
    assert seen.ready_at["repo/m/1/model.onnx"] >= closed_at
    time.sleep(SETTLE * 2)
    assert seen.ready == ["repo/m/1/model.onnx"]  # not again


def test_rename_into_tree_and_temp_names(watched: tuple[Path, Collector], tmp_path: Path) -> None:
    root, seen = watched
    outside = tmp_path / "staged.onnx"
    outside.write_bytes(b"model")
    os.rename(outside, root / "moved.onnx")
    (root / "download.onnx.part").write_bytes(b"partial")
    (root / ".hidden.onnx").write_bytes(b"x")
    (root / "out").mkdir()
    (root / "out" / "variant.onnx").write_bytes(b"dqd's own output")
    assert seen.wait(lambda: "moved.onnx" in seen.ready)
    os.rename(root / "download.onnx.part", root / "download.onnx")
    assert seen.wait(lambda: "download.onnx" in seen.ready)
    time.sleep(SETTLE * 2)
    assert sorted(seen.ready) == ["download.onnx", "moved.onnx"]


def test_folder_moved_in_brings_its_models(watched: tuple[Path, Collector], tmp_path: Path) -> None:
    root, seen = watched
    staged = tmp_path / "bundle"
    (staged / "a").mkdir(parents=True)
    (staged / "a" / "model.onnx").write_bytes(b"1")
    (staged / "b.onnx").write_bytes(b"2")
    os.rename(staged, root / "bundle")
    assert seen.wait(lambda: len(seen.ready) == 2)
    assert sorted(seen.ready) == ["bundle/a/model.onnx", "bundle/b.onnx"]


def test_delete_is_reported(watched: tuple[Path, Collector]) -> None:
    root, seen = watched
    model = root / "gone.onnx"
    model.write_bytes(b"x")
    assert seen.wait(lambda: seen.ready)
    model.unlink()
    assert seen.wait(lambda: "gone.onnx" in seen.removed)


def test_model_waits_for_external_data_written_beside_it(
    watched: tuple[Path, Collector], observer: str
) -> None:
    root, seen = watched
    (root / "big.onnx").write_bytes(b"graph")  # closed first...
    with (root / "big.onnx.data").open("wb") as data:  # ...its weights still coming
        for _ in range(5):
            data.write(os.urandom(4096))
            data.flush()
            time.sleep(0.2)
            assert seen.ready == [], "model handed out while its external data was being written"
        finished = time.time()
    assert seen.wait(lambda: seen.ready)
    assert seen.ready == ["big.onnx"] and seen.ready_at["big.onnx"] >= finished


def test_failed_hand_off_is_retried(watched: tuple[Path, Collector]) -> None:
    root, seen = watched
    seen.fail_next = 1
    (root / "retry.onnx").write_bytes(b"x")
    assert seen.wait(lambda: seen.ready, timeout=15)
    assert seen.ready == ["retry.onnx"]


def start_watcher(root: Path, observer: str, collector: Collector, settle: float = SETTLE) -> ModelWatcher:
    settings = WatchSettings()
    watcher = ModelWatcher(
        PathFilter(root, settings.include, settings.exclude, [root / "out"]),
        SettleTracker(settle),
        on_ready=collector.on_ready,
        on_removed=collector.on_removed,
        observer=observer,
        poll_interval=0.1,
    )
    watcher.start()
    time.sleep(0.2)
    return watcher


def test_native_a_file_held_open_through_long_pauses_is_ready_once_closed(tmp_path: Path) -> None:
    """Issue 9, scenario 1: pauses longer than the settle time are not the end of the file."""
    root = tmp_path / "models"
    root.mkdir()
    seen = Collector()
    watcher = start_watcher(root, "native", seen)
    try:
        with (root / "slow.onnx").open("wb") as handle:
            for _ in range(3):
                handle.write(os.urandom(4096))
                handle.flush()
                time.sleep(SETTLE * 2)
                assert seen.ready == [], "an open file was handed out on quiet time alone"
                assert watcher.is_pending("slow.onnx")
            closed_at = time.time()
        assert seen.wait(lambda: seen.ready)
        assert seen.ready == ["slow.onnx"] and seen.ready_at["slow.onnx"] >= closed_at
    finally:
        watcher.stop()


def test_native_a_quiet_file_found_by_a_scan_is_kept_while_a_process_writes_it(tmp_path: Path) -> None:
    """Opened before watching began: no event, but this host's /proc shows the writer."""
    root = tmp_path / "models"
    root.mkdir()
    seen = Collector()
    with (root / "early.onnx").open("wb") as handle:
        handle.write(b"half a model")
        handle.flush()
        watcher = start_watcher(root, "native", seen)
        try:
            watcher.track("early.onnx")  # what the start-up scan does with a busy file
            time.sleep(SETTLE * 3)
            assert seen.ready == []
        finally:
            watcher.stop()
    watcher = start_watcher(root, "native", seen)
    try:
        watcher.track("early.onnx")
        assert seen.wait(lambda: seen.ready)  # closed now: quiet time is enough
    finally:
        watcher.stop()


def test_a_folder_emptied_at_once_is_one_removal_batch(watched: tuple[Path, Collector]) -> None:
    root, seen = watched
    for i in range(4):
        (root / "zoo" / f"m{i}.onnx").parent.mkdir(exist_ok=True)
        (root / "zoo" / f"m{i}.onnx").write_bytes(b"x")
    assert seen.wait(lambda: len(seen.ready) == 4)
    shutil.rmtree(root / "zoo")
    assert seen.wait(lambda: seen.removed)
    time.sleep(1.0)
    # One batch, so the removal guard judges the emptied folder as a whole.
    assert len(seen.batches) == 1 and {f"zoo/m{i}.onnx" for i in range(4)} <= set(seen.batches[0])
