"""Issue 9, scenario 1: a slowly written file is one model version, whatever the observer.

A real ``dqd run`` watches a real folder while the test writes a real model in
chunks, holding the file open throughout as a slow network copy does, with
pauses longer than the settle time (native: only the close says complete) or
shorter than it (polling: quiet time is the only signal there).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dqd.catalog import Catalog
from dqd.domain import JobState
from tests.acceptance.harness import Daemon, wait_for
from tests.acceptance.tiny import tiny_model_bytes

pytestmark = pytest.mark.slow

CHUNKS = 5


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    daemon = Daemon(tmp_path, f"sqlite:///{tmp_path / 'dqd.db'}")
    yield daemon
    daemon.kill()


def write_slowly(path: Path, content: bytes, pause: float, chunks: int = CHUNKS) -> None:
    """One open file, ``chunks`` writes, ``pause`` seconds after each but the last."""
    step = -(-len(content) // chunks)
    with path.open("wb") as out:
        for start in range(0, len(content), step):
            out.write(content[start : start + step])
            out.flush()
            if start + step < len(content):
                time.sleep(pause)


def assert_one_version(daemon: Daemon, rel: str, content: bytes) -> None:
    digest = hashlib.sha256(content).hexdigest()
    catalog = Catalog.from_url(daemon.database_url)
    try:
        wait_for(
            "the model's job to finish",
            lambda: [j for j in catalog.list_jobs() if j.state in (JobState.DONE, JobState.FAILED)],
            60,
        )
        time.sleep(1.5)  # a late, wrong registration would show up by now
        jobs = catalog.list_jobs()
        assert [(j.sha256, j.state) for j in jobs] == [(digest, JobState.DONE)], daemon.log_text()
        history = catalog.model_detail(rel).history
        assert [version.sha256 for version in history] == [digest]
        assert [d.sha256 for d in catalog.recent_decisions(10)] == [digest]
    finally:
        catalog.close()


def test_native_observer_waits_for_the_close(daemon: Daemon) -> None:
    content = tiny_model_bytes(seed=11)
    daemon.start(DQD_WATCH__OBSERVER="native")  # settle_seconds = 1
    write_slowly(daemon.watch / "slow.onnx", content, pause=1.6)
    assert_one_version(daemon, "slow.onnx", content)
    assert daemon.stop() == 0


def test_native_start_up_scan_leaves_a_file_still_open(daemon: Daemon) -> None:
    """Opened before the daemon started, quiet at the start-up scan, finished afterwards."""
    content = tiny_model_bytes(seed=12)
    half = len(content) // 2
    daemon.watch.mkdir(parents=True, exist_ok=True)
    with (daemon.watch / "early.onnx").open("wb") as out:
        out.write(content[:half])
        out.flush()
        time.sleep(1.2)  # quiet for longer than settle_seconds before the scan sees it
        daemon.start(DQD_WATCH__OBSERVER="native")
        wait_for("the start-up scan", lambda: daemon.has_logged("reconciled"), 30)
        time.sleep(1.5)
        out.write(content[half:])
        out.flush()
        time.sleep(1.5)
    assert_one_version(daemon, "early.onnx", content)
    assert daemon.stop() == 0


def test_polling_observer_settles_on_quiet_time(daemon: Daemon) -> None:
    content = tiny_model_bytes(seed=13)
    daemon.start(DQD_WATCH__OBSERVER="polling", DQD_WATCH__POLLING_SETTLE_SECONDS="4")
    write_slowly(daemon.watch / "nfs.onnx", content, pause=1.6)  # longer than settle_seconds (1)
    assert_one_version(daemon, "nfs.onnx", content)
    assert daemon.stop() == 0


@pytest.mark.corpus
def test_the_issue_scenario_ppocr_cls_in_five_chunks_held_open(daemon: Daemon) -> None:
    """The issue's report (its 3 s pauses against the default 2 s settle), at the harness's 1 s."""
    from tests.conftest import corpus_path

    content = corpus_path("ppocr-cls.onnx").read_bytes()
    daemon.start(DQD_WATCH__OBSERVER="native")
    write_slowly(daemon.watch / "ppocr-cls.onnx", content, pause=1.6)
    assert_one_version(daemon, "ppocr-cls.onnx", content)
    assert daemon.stop() == 0
