"""The child process boundary: results, progress, timeouts, memory, crashes and exceptions."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from dqd.pipeline.isolate import ORPHANED_EXIT_CODE, ChildFailure, IsolationError, run_isolated
from tests import isolation_targets as targets


def test_result_and_progress_come_back() -> None:
    seen: list[str] = []
    assert run_isolated(targets.echo, 21, timeout_seconds=60, memory_mb=2048, progress=seen.append) == 42
    assert seen == ["working"]


def test_hang_is_killed_at_the_timeout_as_transient() -> None:
    started = time.monotonic()
    with pytest.raises(IsolationError) as caught:
        run_isolated(targets.hang, timeout_seconds=3, memory_mb=2048, label="slow.onnx")
    assert caught.value.kind is ChildFailure.TIMEOUT and caught.value.permanent is False
    assert "slow.onnx" in str(caught.value) and "limits.timeout_seconds" in str(caught.value)
    assert time.monotonic() - started < 30


def test_memory_watchdog_kills_a_resident_blow_up() -> None:
    with pytest.raises(IsolationError) as caught:
        run_isolated(targets.hog_memory, 600, timeout_seconds=60, memory_mb=300)
    assert caught.value.kind is ChildFailure.MEMORY and "limits.memory_mb" in str(caught.value)


def test_crash_is_reported_not_propagated() -> None:
    with pytest.raises(IsolationError) as caught:
        run_isolated(targets.segfault, timeout_seconds=60, memory_mb=2048)
    assert caught.value.kind is ChildFailure.CRASH and "SIGSEGV" in str(caught.value)
    assert caught.value.permanent is True


@pytest.mark.parametrize("permanent", [True, False])
def test_model_errors_keep_their_permanence(permanent: bool) -> None:
    with pytest.raises(IsolationError) as caught:
        run_isolated(targets.fail, permanent, timeout_seconds=60, memory_mb=2048)
    assert caught.value.permanent is permanent and "the model is broken" in str(caught.value)


def test_unexpected_exceptions_name_their_type() -> None:
    with pytest.raises(IsolationError, match="KeyError") as caught:
        run_isolated(targets.bug, timeout_seconds=60, memory_mb=2048)
    assert caught.value.kind is ChildFailure.EXCEPTION


PARENT = """
import sys
from dqd.pipeline.isolate import run_isolated
from tests import isolation_targets as targets

run_isolated(
    targets.report_pid_and_hang,
    timeout_seconds=600,
    memory_mb=2048,
    progress=lambda line: print(line, flush=True),
)
"""


def _gone(pid: int) -> bool:
    """Exited: no such process, or a zombie nobody reaped yet (PID 1 in a container may not)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_the_child_dies_with_its_parent_even_after_kill_9() -> None:
    root = Path(__file__).resolve().parents[2]
    parent = subprocess.Popen([sys.executable, "-c", PARENT], cwd=root, stdout=subprocess.PIPE, text=True)
    child: int | None = None
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()  # the child is running its work once it reports
        assert line.startswith("pid "), line
        child = int(line.split()[1])
        # Forked by the fork server, the caller's child: the server dies with the caller, the child with it.
        assert parent.pid in [p.pid for p in psutil.Process(child).parents()]
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 5
        while not _gone(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(child), "the engine child outlived its killed parent"
    finally:
        parent.kill()
        if child is not None:
            with contextlib.suppress(psutil.Error):
                psutil.Process(child).kill()


def test_a_child_whose_parent_is_already_gone_exits_at_once() -> None:
    # The race: the parent died before the child could ask to die with it.
    gone = subprocess.Popen(["true"])
    gone.wait()  # exited and reaped: its pid names no process now
    code = f"from dqd.pipeline.isolate import die_with_parent; die_with_parent({gone.pid})"
    finished = subprocess.run([sys.executable, "-c", code], timeout=60)
    assert finished.returncode == ORPHANED_EXIT_CODE
