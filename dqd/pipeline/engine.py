"""The whole flow for one model: preflight, prepare, measure candidates, decide.

:func:`process_model` never raises for a model's problems: it returns an
:class:`EngineResult` with ``outcome=error`` and reasons.  Everything that loads
the model runs in an isolated child process (:mod:`dqd.pipeline.isolate`).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from dqd import __version__
from dqd.domain import EngineResult, HostInfo, Outcome, SearchMode
from dqd.errors import DqdError, ModelError
from dqd.pipeline.accuracy import GateThresholds
from dqd.pipeline.inputs import InputSet, load_samples, synthesize_inputs
from dqd.pipeline.inspect import Preflight, preflight
from dqd.pipeline.isolate import ChildReporter, IsolationError, run_isolated
from dqd.pipeline.policy import POLICY_VERSION, Decision, decide_design, design_specs, is_acceptable
from dqd.pipeline.prepare import prepare_model
from dqd.pipeline.quantize import OutputDirError, provenance_for, sha256_file, variant_dir
from dqd.pipeline.thorough import fit_thorough_inputs, run_ladder
from dqd.pipeline.workbench import Measured, Workbench
from dqd.settings import AccuracySettings, BenchmarkSettings, LadderSettings, Settings

logger = logging.getLogger(__name__)
ProgressCallback = Callable[[str], None]


@dataclass(frozen=True)
class EngineRequest:
    """What the child needs, as plain picklable data."""

    path: Path
    relative_path: Path
    sha256: str
    output_dir: Path
    search: SearchMode
    threads: int
    accuracy: AccuracySettings
    benchmark: BenchmarkSettings
    ort_version: str
    source_size: int
    host_class: str = ""  # picks the ladder's host rule set (search=thorough)
    ladder: LadderSettings = field(default_factory=LadderSettings)


def process_model(
    path: Path | str,
    settings: Settings,
    *,
    host: HostInfo,
    search: SearchMode | str | None = None,
    threads: int | None = None,
    model_root: Path | str | None = None,
    progress: ProgressCallback | None = None,
) -> EngineResult:
    """Quantize, check, benchmark and decide for ``path`` on this host; see the module docstring."""
    started = time.monotonic()
    path = Path(path)
    mode = SearchMode(search or settings.search)
    base = _error_result(path, "", mode, host, started)
    try:
        size = path.stat().st_size
        sha256 = sha256_file(path)
    except OSError as exc:
        return replace(base, reasons=(f"cannot read {path}: {exc.strerror or exc}",), error=str(exc))
    request = EngineRequest(
        path=path.resolve(),
        relative_path=_relative(path, model_root),
        sha256=sha256,
        output_dir=Path(settings.output_dir),
        search=mode,
        threads=threads or settings.benchmark.threads,
        accuracy=_accuracy_for(settings, path, model_root),
        benchmark=settings.benchmark,
        ort_version=host.ort_version,
        source_size=size,
        host_class=host.host_class,
        ladder=settings.ladder,
    )
    try:
        result: EngineResult = run_isolated(
            analyse_model,
            request,
            timeout_seconds=settings.limits.timeout_seconds,
            memory_mb=settings.limits.memory_mb,
            progress=progress,
            label=path.name,
        )
    except IsolationError as exc:
        logger.warning(
            "processing %s failed: %s", path, exc, extra={"action": "model_error", "kind": exc.kind}
        )
        result = replace(
            base,
            sha256=sha256,
            source_size_bytes=size,
            reasons=(str(exc),),
            error=str(exc),
            permanent_error=exc.permanent,
            details={"failure": exc.kind},
        )
    return replace(result, seconds=time.monotonic() - started)


def analyse_model(report: ChildReporter, request: EngineRequest) -> EngineResult:
    """The child's side: everything that loads ONNX.  Model problems become ``error`` results."""
    try:
        return _analyse(report, request)
    except (ModelError, DqdError) as exc:
        permanent = exc.permanent if isinstance(exc, ModelError) else False
        return _finished(request, Outcome.ERROR, reasons=(str(exc),), error=str(exc), permanent=permanent)


def _analyse(report: ChildReporter, request: EngineRequest) -> EngineResult:
    report("preflight")
    # Design mode does not reach If/Loop/Scan bodies; the ladder does (EnableSubgraph).
    thorough = request.search is SearchMode.THOROUGH
    checked = preflight(request.path, reach_subgraphs=thorough)
    notes: list[str] = []
    details: dict[str, Any] = {"preflight": checked.summary.to_dict() if checked.summary else None}
    if checked.outcome is not None:
        error = "; ".join(checked.reasons) if checked.outcome is Outcome.ERROR else None
        return _finished(
            request, checked.outcome, reasons=(*checked.reasons, *notes), error=error, details=details
        )
    input_sets = _input_sets(request, checked)
    if thorough and checked.summary is not None:
        input_sets = fit_thorough_inputs(input_sets, checked.summary, request.accuracy, request.path)
    details["inputs"] = [{"source": s.source.value, "description": s.description} for s in input_sets]
    directory = variant_dir(request.output_dir, request.relative_path, request.sha256)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".dqd-work-", dir=directory))
    except OSError as exc:
        raise OutputDirError(directory, exc) from exc
    try:
        report("pre-processing")
        prepared = prepare_model(request.path, scratch)
        details["prepare"] = {
            "path": prepared.preprocess,
            "folded_constants": prepared.folded_constants,
            "notes": list(prepared.notes),
        }
        bench = Workbench(
            source=request.path,
            prepared=prepared,
            variant_directory=directory,
            input_sets=input_sets,
            thresholds=GateThresholds.from_settings(request.accuracy),
            benchmark_settings=request.benchmark,
            threads=request.threads,
            ort_version=request.ort_version,
            provenance=provenance_for(request.sha256, request.ort_version, __version__, str(request.path)),
            report=report,
        )
        report("running FP32 on the inputs")
        bench.reference_outputs()
        if thorough and checked.summary is not None:
            measured, decision = run_ladder(
                bench,
                checked.summary,
                host_class=request.host_class,
                accuracy=request.accuracy,
                settings=request.ladder,
                margin=request.benchmark.margin,
            )
        else:
            measured, decision = run_design(bench, prepared.preprocess, request.benchmark.margin)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    details["decision"] = decision.numbers
    return _finished(
        request,
        decision.outcome,
        selected=decision.selected,
        speedup=decision.speedup,
        speedup_ci=decision.speedup_ci,
        reasons=(*decision.reasons, *notes),
        details=details,
        measured=measured,
        policy_version=decision.policy_version,
    )


def run_design(bench: Workbench, preprocess: str, margin: float) -> tuple[list[Measured], Decision]:
    """The design two-step: measure U8U8, then U8S8 only if U8U8 does not qualify; decide.

    A search mode is a function of this shape (workbench in, measurements and
    decision out); the ladder is the other one.
    """
    measured: list[Measured] = []
    for spec in design_specs(preprocess):
        result = bench.measure(spec, step=spec.name)
        measured.append(result)
        if result.measurement is not None and is_acceptable(result.measurement, margin):
            break
    decision = decide_design([m.measurement for m in measured if m.measurement], margin=margin)
    return measured, decision


def _input_sets(request: EngineRequest, checked: Preflight) -> list[InputSet]:
    """Samples first when present (they decide the gate); synthetic inputs are always evaluated too."""
    summary = checked.summary
    assert summary is not None  # preflight passed
    settings = request.accuracy
    synthetic = synthesize_inputs(
        summary,
        batch=settings.synthetic_batch,
        default_dim=settings.default_dim,
        distribution=settings.float_distribution,
        seed=settings.seed,
        input_shapes=settings.input_shapes,
    )
    samples = load_samples(request.path, summary.inputs)
    return [samples, synthetic] if samples is not None else [synthetic]


def _finished(
    request: EngineRequest,
    outcome: Outcome,
    *,
    selected: Any = None,
    speedup: float | None = None,
    speedup_ci: tuple[float, float] | None = None,
    reasons: tuple[str, ...] = (),
    error: str | None = None,
    details: dict[str, Any] | None = None,
    measured: list[Measured] | None = None,
    permanent: bool = True,
    policy_version: str = POLICY_VERSION,
) -> EngineResult:
    measured = measured or []
    return EngineResult(
        path=str(request.path),
        sha256=request.sha256,
        outcome=outcome,
        selected=selected,
        speedup=speedup,
        speedup_ci=speedup_ci,
        reasons=reasons,
        error=error,
        seconds=0.0,
        search_mode=request.search.value,
        policy_version=policy_version,
        ort_version=request.ort_version,
        source_size_bytes=request.source_size,
        variants=tuple(m.variant for m in measured),
        accuracy=tuple(a for m in measured for a in m.accuracy),
        benchmarks=tuple(b for m in measured for b in m.benchmarks),
        details=details or {},
        permanent_error=permanent,
    )


def _error_result(path: Path, sha256: str, mode: SearchMode, host: HostInfo, started: float) -> EngineResult:
    return EngineResult(
        path=str(path),
        sha256=sha256,
        outcome=Outcome.ERROR,
        selected=None,
        speedup=None,
        speedup_ci=None,
        reasons=(),
        error=None,
        seconds=time.monotonic() - started,
        search_mode=SearchMode.DESIGN.value,
        policy_version=POLICY_VERSION,
        ort_version=host.ort_version,
    )


def _relative(path: Path, model_root: Path | str | None) -> Path:
    if model_root is not None:
        try:
            return path.resolve().relative_to(Path(model_root).resolve())
        except ValueError:
            pass
    return Path(path.name)


def _accuracy_for(settings: Settings, path: Path, model_root: Path | str | None) -> AccuracySettings:
    """Global accuracy settings with any matching ``[models."<glob>"]`` overrides applied."""
    relative = _relative(path, model_root).as_posix()
    accuracy = settings.accuracy
    for pattern, override in settings.models.items():
        if fnmatch(relative, pattern) or fnmatch(path.name, pattern):
            shapes = {**accuracy.input_shapes, **override.input_shapes}
            accuracy = accuracy.model_copy(update={**override.accuracy, "input_shapes": shapes})
    return accuracy
