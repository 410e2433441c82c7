"""The child process boundary: results, progress, timeouts, memory, crashes and exceptions."""

from __future__ import annotations

import time

import pytest

from dqd.pipeline.isolate import IsolationError, run_isolated
from tests import isolation_targets as targets


def test_result_and_progress_come_back() -> None:
    seen: list[str] = []
    assert run_isolated(targets.echo, 21, timeout_seconds=60, memory_mb=2048, progress=seen.append) == 42
    assert seen == ["working"]


def test_hang_is_killed_at_the_timeout_as_transient() -> None:
    started = time.monotonic()
    with pytest.raises(IsolationError) as caught:
        run_isolated(targets.hang, timeout_seconds=3, memory_mb=2048, label="slow.onnx")
    assert caught.value.kind == "timeout" and caught.value.permanent is False
    assert "slow.onnx" in str(caught.value) and "limits.timeout_seconds" in str(caught.value)
    assert time.monotonic() - started < 30


def test_memory_watchdog_kills_a_resident_blow_up() -> None:
    with pytest.raises(IsolationError) as caught:
        run_isolated(targets.hog_memory, 600, timeout_seconds=60, memory_mb=300)
    assert caught.value.kind == "memory" and "limits.memory_mb" in str(caught.value)


def test_crash_is_reported_not_propagated() -> None:
    with pytest.raises(IsolationError) as caught:
        run_isolated(targets.segfault, timeout_seconds=60, memory_mb=2048)
    assert caught.value.kind == "crash" and "SIGSEGV" in str(caught.value)
    assert caught.value.permanent is True


@pytest.mark.parametrize("permanent", [True, False])
def test_model_errors_keep_their_permanence(permanent: bool) -> None:
    with pytest.raises(IsolationError) as caught:
        run_isolated(targets.fail, permanent, timeout_seconds=60, memory_mb=2048)
    assert caught.value.permanent is permanent and "the model is broken" in str(caught.value)


def test_unexpected_exceptions_name_their_type() -> None:
    with pytest.raises(IsolationError, match="KeyError"):
        run_isolated(targets.bug, timeout_seconds=60, memory_mb=2048)
