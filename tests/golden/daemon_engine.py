"""The golden daemon's engine: the real engine, in-process, with measurements injected by file name.

Everything from preflight to the decision's ``details`` runs for real
(:func:`dqd.pipeline.engine.process_model`: identify, per-model settings,
preflight, pre-processing, quantization, the design two-step or the ladder,
the result's construction). Three seams make it deterministic and fast:

- the isolated child runs in this process (``engine.run_isolated``), except
  for ``crash.onnx``, whose child "crashes" (an injected IsolationError);
- timings (``benchmark_interleaved``) come from fixed latency samples per
  model and candidate, through the real statistics (median, paired bootstrap);
- accuracy (``Workbench.check_accuracy``) compares fixed arrays with the real
  metrics and gate, so the numbers do not depend on the CPU's rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

from dqd.domain import AccuracyResult, BenchmarkResult, EngineResult, HostInfo, VariantSpec
from dqd.pipeline import engine, rung_trial, thorough, workbench
from dqd.pipeline.accuracy import gate, output_metrics
from dqd.pipeline.benchmark import Contender, latency_stats, speedup_ci, speedup_point
from dqd.pipeline.isolate import ChildFailure, IsolationError
from dqd.pipeline.plan import plan_for
from dqd.settings import Settings

FP32_MS = [10.0 + 0.2 * (i % 5) for i in range(40)]
PEAK_RSS = 64 << 20


# --- per-model settings: the ONE place that knows how they reach the engine ---------------------
# The worker hands the engine `plan=` and `model_root=`. fake_process passes whatever it gets
# straight to the real engine, so only this function builds such arguments itself, to record
# what `dqd process --json` prints for each model.


def engine_arguments(settings: Settings, root: Path, rel_path: str) -> dict[str, Any]:
    """The per-model keyword arguments the worker would pass the engine for ``rel_path``."""
    return {"plan": plan_for(settings, root, rel_path, strict=False), "model_root": root}


# --- the engine ------------------------------------------------------------------------------------


def fake_process(
    path: Path,
    settings: Settings,
    *,
    host: HostInfo,
    progress: Callable[[str], None] | None = None,
    **kwargs: Any,
) -> EngineResult:
    """The worker's ProcessModel: the real engine with this module's seams; ``seconds`` fixed."""
    with measurements_injected():
        result = engine.process_model(path, settings, host=host, progress=progress, **kwargs)
    return replace(result, seconds=1.0)


@contextmanager
def measurements_injected() -> Iterator[None]:
    with (
        mock.patch.object(engine, "run_isolated", _in_process),
        mock.patch.object(workbench, "benchmark_interleaved", _timed),
        mock.patch.object(thorough, "benchmark_interleaved", _timed),
        mock.patch.object(rung_trial, "benchmark_interleaved", _timed),
        mock.patch.object(workbench.Workbench, "check_accuracy", _checked),
    ):
        yield


def _in_process(
    function: Callable[..., Any],
    *args: Any,
    progress: Callable[[str], None] | None = None,
    label: str = "",
    **_: Any,
) -> Any:
    if label == "crash.onnx":
        raise IsolationError(
            f"processing {label} crashed: the child was killed by signal 9 (SIGKILL)",
            kind=ChildFailure.CRASH,
            permanent=False,
        )
    return function(progress or (lambda _message: None), *args)


# --- injected measurements, by file name -----------------------------------------------------------


def speedup_for(model: str, spec: VariantSpec) -> float:
    """What each candidate "measures" against FP32 on each model."""
    if model == "kept.onnx":
        return 1.0  # nothing is faster: FP32 stays
    if model == "deep.onnx":  # the ladder: later, richer rungs a little faster each
        bonus = 0.3 * spec.per_channel + 0.2 * (
            spec.weight_type is not None and spec.weight_type.value == "U8S8"
        )
        return 1.3 + bonus + 0.05 * len(spec.op_types) + 0.1 * bool(spec.extra_options)
    if model == "vision.onnx":  # Conv quantization is slow; MatMul-only rungs help a little
        return 0.7 if _quantizes_conv(spec) else 1.25
    return 1.6


def error_level_for(model: str, spec: VariantSpec) -> float:
    """The relative error of a candidate's outputs: above ~0.3 the cosine gate fails."""
    if model == "vision.onnx" and _quantizes_conv(spec):
        return 0.9
    if model == "deep.onnx" and spec.reduce_range:
        return 0.9
    return 0.02


def _quantizes_conv(spec: VariantSpec) -> bool:
    return not spec.op_types or "Conv" in spec.op_types


def _timed(
    contenders: Sequence[Contender], _feed: Any, settings: Any, *, threads: int, step: str = "", **_: Any
) -> list[BenchmarkResult]:
    """benchmark_interleaved's results for fixed samples: each candidate at FP32 / its speed-up."""
    model = contenders[0].path.name
    results = [BenchmarkResult(None, threads, latency_stats(FP32_MS), None, None, PEAK_RSS, step)]
    for contender in contenders[1:]:
        assert contender.spec is not None
        speedup = speedup_for(model, contender.spec)
        samples = [ms / speedup * (1.0 + 0.01 * ((3 * i) % 5 - 2)) for i, ms in enumerate(FP32_MS)]
        results.append(
            BenchmarkResult(
                spec=contender.spec,
                threads=threads,
                latency=latency_stats(samples),
                speedup=speedup_point(FP32_MS, samples),
                speedup_ci=speedup_ci(FP32_MS, samples, confidence=settings.confidence),
                peak_rss_bytes=PEAK_RSS,
                step=step,
            )
        )
    return results


def _checked(
    self: workbench.Workbench, spec: VariantSpec, _path: Path, _session: Any = None
) -> list[AccuracyResult]:
    """Workbench.check_accuracy on fixed outputs: the real metrics and gate, per input set."""
    level = error_level_for(self.source.name, spec)
    reference = np.linspace(-1.0, 1.0, 64).reshape(4, 16)
    wobble = np.cos(np.arange(64, dtype=np.float64)).reshape(4, 16)
    results = []
    for index, inputs in enumerate(self.input_sets):
        candidate = reference + level * wobble * (1 + index)
        metrics = {"y": output_metrics("y", [reference], [candidate])}
        passed, reason = gate(metrics, self.thresholds)
        results.append(AccuracyResult(spec, inputs.source, metrics, passed, reason, decisive=index == 0))
    return results
