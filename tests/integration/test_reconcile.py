"""Start-up and periodic reconciliation against a real folder and a real catalog (both backends)."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

from dqd.catalog import Catalog
from dqd.daemon.filters import PathFilter
from dqd.daemon.reconcile import Reconciler
from dqd.domain import JobKind, JobState
from dqd.modelfile import content_sha256
from dqd.settings import WatchSettings
from tests import models

CLASS = "x86_64-avx2"


def reconciler(
    catalog: Catalog, root: Path, pending: list[str] | None = None, settle: float = 0.0
) -> Reconciler:
    watch = WatchSettings()
    return Reconciler(
        catalog,
        PathFilter(root, watch.include, watch.exclude, [root / "out"]),
        host_class=CLASS,
        host_ttl_seconds=300,
        max_attempts=3,
        settle_seconds=settle,
        on_pending=pending.append if pending is not None else None,
    )


def old(path: Path, content: bytes) -> Path:
    """Write a file that looks finished (mtime a minute ago)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    past = time.time() - 60
    os.utime(path, (past, past))
    return path


def test_scan_registers_dedups_refuses_and_removes(catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "models"
    old(root / "a.onnx", b"A")
    old(root / "copy" / "a.onnx", b"A")  # same content, second path
    old(root / "b" / "1" / "model.onnx", b"B")
    old(root / ".cache" / "d.onnx", b"D")  # dot-folder: not even walked
    old(root / "out" / "e.onnx", b"E")  # dqd's own output folder
    old(tmp_path / "secret.onnx", b"S")
    (root / "escape.onnx").symlink_to(tmp_path / "secret.onnx")

    summary = reconciler(catalog, root).scan()
    assert (summary.registered, summary.refused, summary.removed) == (3, 1, 0)
    assert sorted(catalog.known_paths()) == ["a.onnx", "b/1/model.onnx", "copy/a.onnx", "escape.onnx"]
    assert catalog.known_paths()["escape.onnx"].sha256 is None  # refused: recorded, never hashed
    jobs = catalog.list_jobs()
    assert len(jobs) == 2 and {j.kind for j in jobs} == {JobKind.QUANTIZE}  # A once, B once

    # Unchanged files are not registered again; a changed one is a new version; a deleted one is removed.
    assert reconciler(catalog, root).scan().registered == 0
    old(root / "b" / "1" / "model.onnx", b"B2")
    (root / "a.onnx").unlink()
    summary = reconciler(catalog, root).scan()
    assert (summary.registered, summary.removed) == (1, 1)
    assert "a.onnx" not in catalog.known_paths() and "a.onnx" in catalog.known_paths(include_removed=True)
    assert len(catalog.list_jobs(states=[JobState.QUEUED])) == 3


def age(*paths: Path, seconds_ago: float = 60) -> None:
    past = time.time() - seconds_ago
    for path in paths:
        os.utime(path, (past, past))


def test_a_changed_external_data_file_is_a_new_version(catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "models"
    model = models.save_with_external_data(models.matmul_heavy(hidden=16, layers=1), root / "ext" / "m.onnx")
    data = model.with_name("m.onnx.data")
    age(model, data)
    assert reconciler(catalog, root).scan().registered == 1
    first = catalog.known_paths()["ext/m.onnx"].sha256
    assert first == content_sha256(model)
    assert reconciler(catalog, root).scan().registered == 0  # the unit is unchanged

    # Only the weights change: same graph file, same sizes.
    graph = model.read_bytes()
    blob = bytearray(data.read_bytes())
    blob[:4] = bytes(b ^ 0xFF for b in blob[:4])
    data.write_bytes(bytes(blob))
    age(data, seconds_ago=30)
    assert model.read_bytes() == graph
    summary = reconciler(catalog, root).scan()
    assert summary.registered == 1
    second = catalog.known_paths()["ext/m.onnx"].sha256
    assert second not in (None, first)
    assert {job.sha256 for job in catalog.list_jobs(states=[JobState.QUEUED])} == {first, second}


def test_a_model_whose_data_file_is_missing_waits_for_it(catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "models"
    model = models.save_with_external_data(models.matmul_heavy(hidden=16, layers=1), root / "m.onnx")
    data = model.with_name("m.onnx.data")
    aside = data.rename(tmp_path / "aside.data")
    age(model)
    summary = reconciler(catalog, root).scan()
    assert (summary.registered, summary.refused) == (0, 1)
    assert catalog.list_jobs() == []
    # Listed with the reason meanwhile, not invisible (it was before) nor pending.
    reason = catalog.known_paths()["m.onnx"].refused_reason
    assert reason is not None and "'m.onnx.data'" in reason and "missing" in reason
    aside.rename(data)  # copied in last: the next scan registers the model
    age(data)
    assert reconciler(catalog, root).scan().registered == 1
    assert catalog.known_paths()["m.onnx"].sha256 == content_sha256(model)
    assert catalog.known_paths()["m.onnx"].refused_reason is None


def test_a_link_out_of_the_tree_is_refused_without_being_read(catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "models"
    root.mkdir()
    (root / "zero.onnx").symlink_to("/dev/zero")  # reading it would never end
    outcome: list[int] = []
    scan = threading.Thread(
        target=lambda: outcome.append(reconciler(catalog, root).scan().refused), daemon=True
    )
    scan.start()
    scan.join(30)
    assert outcome == [1], "the scan read a file outside the watched folder"
    assert catalog.known_paths()["zero.onnx"].sha256 is None


def test_a_fifo_and_broken_links_are_refused_with_their_reason_and_registered_once_fixed(
    catalog: Catalog, tmp_path: Path
) -> None:
    root = tmp_path / "models"
    root.mkdir()
    os.mkfifo(root / "fifo.onnx")  # a scan that opened it would hang here
    (root / "dangling.onnx").symlink_to(root / "later.bin")
    outcome: list[int] = []
    scan = threading.Thread(
        target=lambda: outcome.append(reconciler(catalog, root).scan().refused), daemon=True
    )
    scan.start()
    scan.join(30)
    assert outcome == [2], "the scan blocked on the FIFO"
    reasons = {rel: p.refused_reason or "" for rel, p in catalog.known_paths().items()}
    assert "FIFO" in reasons["fifo.onnx"] and reasons["dangling.onnx"].startswith("dangling symlink")
    old(root / "later.bin", b"now it points at a file")
    assert reconciler(catalog, root).scan().registered == 1
    assert catalog.known_paths()["dangling.onnx"].refused_reason is None


def test_files_still_being_written_are_handed_to_the_settle_tracker(catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "models"
    root.mkdir()
    (root / "fresh.onnx").write_bytes(b"half")
    pending: list[str] = []
    summary = reconciler(catalog, root, pending, settle=30).scan()
    assert (summary.pending, summary.registered, pending) == (1, 0, ["fresh.onnx"])
    assert catalog.known_paths() == {}


def test_vanished_root_does_not_mark_everything_removed(catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "models"
    old(root / "a.onnx", b"A")
    reconciler(catalog, root).scan()
    shutil.rmtree(root)  # an unmounted network share looks like this
    assert reconciler(catalog, root).scan().errors == 1
    assert "a.onnx" in catalog.known_paths()


def test_folder_removed_as_a_whole(catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "models"
    old(root / "repo" / "m" / "1" / "model.onnx", b"1")
    old(root / "repo" / "m" / "2" / "model.onnx", b"2")
    rec = reconciler(catalog, root)
    rec.scan()
    shutil.rmtree(root / "repo" / "m")
    assert rec.remove("repo/m")
    assert catalog.known_paths() == {}


def test_new_host_class_gets_jobs_for_known_content(catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "models"
    old(root / "a.onnx", b"A")
    reconciler(catalog, root).scan()
    other = Reconciler(
        catalog,
        PathFilter(root, ["*.onnx"], []),
        host_class="aarch64-dotprod",
        host_ttl_seconds=300,
        max_attempts=3,
        settle_seconds=0,
    )
    assert other.scan().queued == 1  # nothing changed on disk, but this class never had a job
    assert sorted(j.host_class for j in catalog.list_jobs()) == ["aarch64-dotprod", CLASS]


def test_the_scan_defers_to_the_watcher_for_files_it_is_waiting_for(catalog: Catalog, tmp_path: Path) -> None:
    """Issue 9, scenario 1: quiet for settle_seconds is not complete while the watcher saw no close."""
    root = tmp_path / "models"
    old(root / "open.onnx", b"one")  # quiet, but the watcher saw writes, no close
    old(root / "done.onnx", b"two")
    rec = reconciler(catalog, root, settle=1)
    rec.is_pending = lambda rel: rel == "open.onnx"
    summary = rec.scan()
    assert (summary.registered, summary.pending) == (1, 1)
    assert sorted(catalog.known_paths()) == ["done.onnx"]


def test_the_scan_leaves_a_quiet_file_a_process_holds_open_for_writing(
    catalog: Catalog, tmp_path: Path
) -> None:
    from dqd.daemon.writers import held_open_for_writing

    root = tmp_path / "models"
    old(root / "early.onnx", b"one")
    pending: list[str] = []
    rec = reconciler(catalog, root, pending, settle=1)
    rec.held_open = held_open_for_writing
    with (root / "early.onnx").open("ab") as writer:
        os.utime(root / "early.onnx", (time.time() - 60, time.time() - 60))
        summary = rec.scan()
        assert (summary.registered, summary.pending, pending) == (0, 1, ["early.onnx"])
        writer.write(b"")
    assert rec.scan().registered == 1


def test_registration_refuses_a_file_changed_since_it_was_found_complete(
    catalog: Catalog, tmp_path: Path
) -> None:
    import pytest

    from dqd.daemon.reconcile import FileBusy

    root = tmp_path / "models"
    model = old(root / "m.onnx", b"one")
    st = model.stat()
    with model.open("ab") as more:
        more.write(b"\0")
    with pytest.raises(FileBusy):
        reconciler(catalog, root).register("m.onnx", (st.st_size, st.st_mtime_ns))
    assert catalog.known_paths() == {}


def test_a_refused_symlink_lists_as_refused_with_its_reason_never_pending(
    catalog: Catalog, tmp_path: Path
) -> None:
    from dqd.cli.query import MODEL_COLUMNS, _rows

    root = tmp_path / "models"
    old(tmp_path / "secret.onnx", b"S")
    root.mkdir()
    (root / "escape.onnx").symlink_to(tmp_path / "secret.onnx")
    reconciler(catalog, root).scan()

    (listed,) = catalog.list_models().items
    assert listed.refused_reason is not None and "outside the watched root" in listed.refused_reason
    (row,) = _rows([listed])
    cells = {c.header: c.get(row) for c in MODEL_COLUMNS}
    assert cells["OUTCOME"] == "refused" and "outside the watched root" in cells["REASON"]


def test_names_that_are_not_utf8_or_hold_backslashes_register_and_round_trip(
    catalog: Catalog, tmp_path: Path
) -> None:
    root = tmp_path / "models"
    latin1 = os.fsdecode(b"caf\xe9.onnx")  # a Latin-1 name: a lone surrogate in Python's str
    old(root / latin1, b"L")
    old(root / "back\\slash.onnx", b"B")
    old(root / os.fsdecode(b"d\xffir") / "m.onnx", b"D")

    summary = reconciler(catalog, root).scan()

    assert summary.registered == 3
    names = sorted(catalog.known_paths())
    assert names == sorted(["back\\slash.onnx", latin1, os.fsdecode(b"d\xffir") + "/m.onnx"])
    assert {job.source_path for job in catalog.list_jobs()} == set(names)  # queued under the real names
    # The displayed form (and the real name) finds the model; the real file is found from the catalog's.
    for ref in ("caf\\xe9.onnx", latin1, "caf\\xe9"):
        path, _ = catalog.resolve_model(ref)
        assert path is not None and path.path == latin1 and (root / path.path).is_file()
    path, _ = catalog.resolve_model("back\\slash.onnx")
    assert path is not None and path.path == "back\\slash.onnx"
    assert reconciler(catalog, root).scan().registered == 0  # seen again: the same rows, nothing new
