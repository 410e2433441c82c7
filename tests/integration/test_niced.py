"""Issue 16 §4: pre-processing, quantization and accuracy run niced in a forked leaf; benchmarks do not.

Real forks and real priorities (run_niced), and the real engine on a tiny model
with and without the leaf: the same decision and the same accuracy figures.
"""

from __future__ import annotations

import faulthandler
import os
import signal
from pathlib import Path

import pytest

from dqd.errors import EnvironmentFailure, ModelError
from dqd.pipeline import niced
from dqd.pipeline.engine import process_model
from dqd.pipeline.niced import IOPRIO_LOWEST_BE, LeafCrashed, io_priority, run_niced
from tests.fast import fast_settings
from tests.integration.test_store import make_host
from tests.models import matmul_heavy, save


def where_and_how() -> tuple[int, int, int | None]:
    return os.getpid(), os.getpriority(os.PRIO_PROCESS, 0), io_priority()


def test_the_step_runs_in_a_leaf_at_lower_cpu_and_io_priority_and_the_caller_keeps_its_own() -> None:
    here = where_and_how()
    pid, nice, io = run_niced(where_and_how, nice=7)
    assert pid != here[0]
    assert nice == min(19, here[1] + 7)
    if here[2] is not None:  # the architecture's ioprio syscalls are known (x86_64, aarch64)
        assert io == IOPRIO_LOWEST_BE
    assert where_and_how() == here  # an unprivileged process could not have raised it back
    assert run_niced(where_and_how, nice=0) == here  # 0: no leaf


def test_errors_cross_back_as_what_they_mean() -> None:
    def environment() -> None:
        raise EnvironmentFailure("disk full", setting="output_dir")

    def model() -> None:
        raise ModelError("bad weights", permanent=False)

    def bug() -> None:
        raise KeyError("x")

    with pytest.raises(EnvironmentFailure, match="disk full") as env:
        run_niced(environment, nice=5)
    assert env.value.setting == "output_dir"
    with pytest.raises(ModelError, match="bad weights") as bad:
        run_niced(model, nice=5)
    assert bad.value.permanent is False
    with pytest.raises(RuntimeError, match="KeyError"):
        run_niced(bug, nice=5)


@pytest.mark.parametrize(("signum", "permanent"), [(signal.SIGSEGV, True), (signal.SIGKILL, False)])
def test_a_leaf_that_dies_is_the_steps_error_not_the_callers_crash(signum: int, permanent: bool) -> None:
    def die() -> None:
        faulthandler.disable()  # pytest's: the crash is the point, not its traceback
        os.kill(os.getpid(), signum)

    with pytest.raises(LeafCrashed) as crashed:
        run_niced(die, nice=5)
    assert crashed.value.permanent is permanent
    assert os.getpid() > 0  # still here


def test_the_engine_decides_the_same_with_and_without_the_leaf(tmp_path: Path) -> None:
    model = save(matmul_heavy(hidden=128, layers=2), tmp_path / "m.onnx")
    results = [
        process_model(
            model,
            fast_settings(tmp_path / str(nice), **{"limits.background_nice": nice}),
            host=make_host(),
        )
        for nice in (0, 10)
    ]
    plain, leaf = results
    assert leaf.error is None and leaf.outcome is plain.outcome
    assert leaf.selected == plain.selected
    assert [v.spec for v in leaf.variants] == [v.spec for v in plain.variants]
    assert [v.output_sha256 for v in leaf.variants] == [v.output_sha256 for v in plain.variants]
    assert [a.metrics for a in leaf.accuracy] == [a.metrics for a in plain.accuracy]
    assert {b.load_source for b in leaf.benchmarks} == {b.load_source for b in plain.benchmarks}


def test_the_leaf_is_niced_during_the_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The engine child records what each leaf saw: its priority, measured inside the fork.
    seen = tmp_path / "priorities"
    real = niced._lower_priority

    def lower_and_note(nice: int) -> None:
        real(nice)
        with seen.open("a") as out:
            out.write(f"{os.getpriority(os.PRIO_PROCESS, 0)}\n")

    monkeypatch.setattr(niced, "_lower_priority", lower_and_note)
    model = save(matmul_heavy(hidden=64, layers=1), tmp_path / "m.onnx")
    settings = fast_settings(tmp_path, **{"limits.background_nice": 12})
    from dqd.pipeline import engine

    monkeypatch.setattr(engine, "run_isolated", lambda function, request, **_: function(_Silent(), request))
    result = process_model(model, settings, host=make_host())
    assert result.error is None
    base = os.getpriority(os.PRIO_PROCESS, 0)
    leaves = [int(line) for line in seen.read_text().split()]
    # pre-processing, then per variant its build and its accuracy check; all of them niced
    assert all(v.error is None for v in result.variants)
    assert len(leaves) == 1 + 2 * len(result.variants) and set(leaves) == {min(19, base + 12)}


class _Silent:
    def __call__(self, message: str) -> None:
        pass
