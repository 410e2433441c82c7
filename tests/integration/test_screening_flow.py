"""Screening on the real engine with injected timings: which rungs are gated, who is timed beside whom.

Everything but the clock is real (quantization, sessions, the accuracy gate);
``benchmark_interleaved`` returns latencies from a table of speed-ups per rung,
so the order of pilots, the leader, the rungs screened out and the playoff are
deterministic. The engine's child runs in this process so that the injected
timings reach it. Real timings run through the same code in test_thorough.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from dqd.domain import BenchmarkResult, EngineResult, Outcome
from dqd.hostinfo import detect_host
from dqd.pipeline import engine, rung_trial, thorough, workbench
from dqd.pipeline.benchmark import Contender, latency_stats, speedup_ci, speedup_point
from dqd.pipeline.engine import process_model
from dqd.serialize import catalog_details_json
from tests import models
from tests.fast import fast_settings

# AVX2's order for a MatMul-only model: fp32-opt, u8u8, u8u8-pc, u8s8-pc, u8s8 (MatMulNBits pruned by rows).
SPEEDS = {"fp32-opt": 1.0, "u8u8": 1.5, "u8u8-pc": 1.5, "u8s8-pc": 2.0, "u8s8": 1.6}
FP32_MS = [10.0 + 0.05 * (i % 7) for i in range(30)]


def injected(speeds: dict[str, float]) -> tuple[Callable[..., list[BenchmarkResult]], list[dict[str, Any]]]:
    calls: list[dict[str, Any]] = []

    def timed(
        contenders: Sequence[Contender],
        _feed: Any,
        settings: Any,
        *,
        threads: int,
        step: str = "",
        **options: Any,
    ) -> list[BenchmarkResult]:
        names = [c.spec.name if c.spec is not None else "fp32" for c in contenders]
        calls.append({"names": names, "step": step, **options})
        results = [BenchmarkResult(None, threads, latency_stats(FP32_MS), None, None, 0, step)]
        for contender, name in zip(contenders[1:], names[1:], strict=True):
            samples = [ms / speeds[name] * (1 + 0.002 * ((3 * i) % 5 - 2)) for i, ms in enumerate(FP32_MS)]
            ci = speedup_ci(FP32_MS, samples, confidence=settings.confidence)
            point = speedup_point(FP32_MS, samples)
            results.append(
                BenchmarkResult(contender.spec, threads, latency_stats(samples), point, ci, 0, step)
            )
        return results

    return timed, calls


def decide(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, screen: bool
) -> tuple[EngineResult, list[dict[str, Any]]]:
    timed, calls = injected(SPEEDS)
    monkeypatch.setattr(rung_trial, "benchmark_interleaved", timed)
    monkeypatch.setattr(thorough, "benchmark_interleaved", timed)
    monkeypatch.setattr(workbench, "benchmark_interleaved", timed)
    monkeypatch.setattr(engine, "run_isolated", _in_process)
    source = models.save(models.matmul_heavy(hidden=64, layers=2), tmp_path / "mlp.onnx")
    settings = fast_settings(
        tmp_path, search="thorough", **{"accuracy.synthetic_batch": 8, "ladder.screen": screen}
    )
    host = replace(detect_host(), host_class="x86_64-avx2")
    return process_model(source, settings, host=host), calls


def _in_process(function: Callable[..., Any], *args: Any, progress: Any = None, **_: Any) -> Any:
    return function(progress or (lambda _message: None), *args)


def rungs(result: EngineResult) -> dict[str, dict[str, Any]]:
    record = catalog_details_json(result.details)["decision"]
    return {r["variant"]: r for r in record["rungs"] if r["status"] == "tried"}


def gated(result: EngineResult) -> set[str]:
    return {a.spec.name for a in result.accuracy}


def test_screening_gates_only_rungs_that_could_be_selected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, calls = decide(tmp_path, monkeypatch, screen=True)

    assert result.outcome is Outcome.QUANTIZED and result.selected is not None
    assert result.selected.name == "u8s8-pc", result.reasons
    tried = rungs(result)
    assert list(tried) == ["fp32-opt", "u8u8", "u8u8-pc", "u8s8-pc", "u8s8"]
    # fp32-opt is not faster than FP32 and u8s8 is clearly behind the leader u8s8-pc: neither is gated.
    assert tried["fp32-opt"]["screened_out"] == "a rung this fast cannot be selected"
    assert tried["u8s8"]["screened_out"].startswith("clearly behind u8s8-pc in the same rounds")
    assert tried["u8s8"]["gate_passed"] is None and tried["u8s8"]["speedup"] == pytest.approx(1.6, rel=0.01)
    assert gated(result) == {"u8u8", "u8u8-pc", "u8s8-pc"}
    u8s8_line = next(line for line in result.reasons if line.startswith("U8S8: "))
    assert "(not gated: clearly behind u8s8-pc" in u8s8_line
    # Each pilot times FP32, the leader of the moment and the rung; FP32's session is lent, not reopened.
    pilots = [c for c in calls if c["step"].startswith("ladder:") and c["step"] != "ladder:playoff"]
    assert [c["names"] for c in pilots] == [
        ["fp32", "fp32-opt"],
        ["fp32", "u8u8"],
        ["fp32", "u8u8", "u8u8-pc"],
        ["fp32", "u8u8", "u8s8-pc"],
        ["fp32", "u8s8-pc", "u8s8"],
    ]
    assert all(any(p.name == "mlp.onnx" for p in c["sessions"]) for c in pilots)
    assert all(c["min_rounds"] >= 8 for c in pilots)
    playoff = next(c for c in calls if c["step"] == "ladder:playoff")
    assert playoff["names"] == ["fp32", "u8u8", "u8u8-pc", "u8s8-pc"] and "settled" in playoff


def test_without_screening_every_rung_is_gated_and_timed_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, calls = decide(tmp_path, monkeypatch, screen=False)

    assert result.selected is not None and result.selected.name == "u8s8-pc"
    assert gated(result) == set(SPEEDS)
    assert all(r["screened_out"] is None for r in rungs(result).values())
    assert all(len(c["names"]) == 2 for c in calls if c["step"] != "ladder:playoff")
    assert not [c for c in calls if c.get("sessions")]  # nothing lent: each timing opens its own
