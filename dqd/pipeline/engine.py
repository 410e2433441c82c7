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
from pathlib import Path
from typing import Any

from dqd import __version__
from dqd.domain import EngineResult, HostInfo, Outcome, SearchMode, VariantSpec
from dqd.errors import DqdError, EnvironmentFailure, ModelError
from dqd.modelfile import content_sha256
from dqd.pipeline.accuracy import GateThresholds
from dqd.pipeline.advice import decision_advice
from dqd.pipeline.environment import check_environment, missing_module
from dqd.pipeline.inputs import InputSet, gather_input_sets
from dqd.pipeline.inspect import Preflight, node_names, preflight
from dqd.pipeline.isolate import ChildReporter, IsolationError, run_isolated
from dqd.pipeline.plan import ModelPlan, resolve_plan
from dqd.pipeline.policy import policy_version_for
from dqd.pipeline.prepare import PreparedModel, prepare_model
from dqd.pipeline.quantize import DISK_FULL, OutputDirError, provenance_for, variant_dir
from dqd.pipeline.search import search
from dqd.pipeline.thorough import fit_thorough_inputs
from dqd.pipeline.workbench import CandidateRun, Workbench
from dqd.quantops import QUANTIZABLE_WEIGHT_INPUTS
from dqd.records import DecisionDetails, InputRecord, PrepareRecord
from dqd.scratchnames import WORK_PREFIX
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
    nodes_to_exclude: tuple[str, ...] = ()  # per-model settings: kept in FP32 by every quantized candidate
    pin: VariantSpec | None = None  # per-model settings: build, gate, time and ship exactly this spec
    host_lock: Path | None = None  # settings.host_lock: the child has no settings of its own


def process_model(
    path: Path | str,
    settings: Settings,
    *,
    host: HostInfo,
    plan: ModelPlan | None = None,
    threads: int | None = None,
    model_root: Path | str | None = None,
    progress: ProgressCallback | None = None,
) -> EngineResult:
    """Quantize, check, benchmark and decide for ``path`` on this host; see the module docstring.

    ``plan`` is the model's plan as the caller resolved it (:func:`dqd.pipeline.plan.plan_for`);
    without one, the global settings and the matching ``[models."<glob>"]`` sections apply.
    """
    started = time.monotonic()
    path = Path(path)
    if plan is None:
        plan = resolve_plan(settings, None, _relative(path, model_root).as_posix())
    base = _identify(path, plan.search, host)
    settled = base if base.error is not None else _settled_by_plan(base, plan)
    if settled is not None:
        return replace(settled, seconds=time.monotonic() - started)
    request = _request(base, settings, host, plan, threads, model_root)
    # Before the child: a broken host must not read as the model's error.
    check_environment(request.host_lock, request.output_dir)
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
            "processing %s failed: %s", path, exc, extra={"action": "model_error", "kind": exc.kind.value}
        )
        result = replace(
            base,
            reasons=(str(exc),),
            error=str(exc),
            permanent_error=exc.permanent,
            details=DecisionDetails(failure=exc.kind.value),
        )
    return replace(result, seconds=time.monotonic() - started)


def invalid_settings_result(
    path: Path | str, host: HostInfo, message: str, *, search: SearchMode | str
) -> EngineResult:
    """``error`` for a model whose per-model settings are invalid (a bad sidecar): nothing runs."""
    base = _identify(Path(path), SearchMode(search), host)
    return base if base.error is not None else replace(base, reasons=(message,), error=message)


def _request(
    base: EngineResult,
    settings: Settings,
    host: HostInfo,
    plan: ModelPlan,
    threads: int | None,
    model_root: Path | str | None,
) -> EngineRequest:
    path = Path(base.path)
    return EngineRequest(
        path=path.resolve(),
        relative_path=_relative(path, model_root),
        sha256=base.sha256,
        # Absolute: the catalog path must work from any cwd (`dqd best` in a deploy script).
        output_dir=Path(settings.output_dir).resolve(),
        search=plan.search,
        threads=threads or settings.benchmark.threads,
        accuracy=plan.accuracy,
        benchmark=settings.benchmark,
        ort_version=host.ort_version,
        source_size=base.source_size_bytes or 0,
        host_class=host.host_class,
        ladder=settings.ladder,
        nodes_to_exclude=plan.nodes_to_exclude,
        pin=plan.pin,
        host_lock=Path(settings.host_lock),
    )


def _settled_by_plan(base: EngineResult, plan: ModelPlan) -> EngineResult | None:
    """``exclude`` and ``pin = "fp32"`` decide without loading the model; None: run the engine."""
    if plan.exclude:
        reason = "excluded by per-model settings (exclude = true)"
        return replace(
            base, outcome=Outcome.SKIPPED, reasons=(reason,), details=DecisionDetails(excluded=True)
        )
    if plan.pin_fp32:
        reason = "pinned to FP32 by per-model settings"
        return replace(
            base, outcome=Outcome.KEPT_FP32, reasons=(reason,), details=DecisionDetails(pinned="fp32")
        )
    return None


def analyse_model(report: ChildReporter, request: EngineRequest) -> EngineResult:
    """The child's side: everything that loads ONNX.  Model problems become ``error`` results.

    Environment failures are raised, and reach the parent as themselves (see dqd.pipeline.isolate).
    """
    try:
        return _analyse(report, request)
    except EnvironmentFailure:
        raise
    except ModuleNotFoundError as exc:  # a broken install, whichever model runs
        raise missing_module(exc) from exc
    except (ModelError, DqdError) as exc:
        permanent = exc.permanent if isinstance(exc, ModelError) else False
        return _finished(request, Outcome.ERROR, reasons=(str(exc),), error=str(exc), permanent=permanent)


def _analyse(report: ChildReporter, request: EngineRequest) -> EngineResult:
    report("preflight")
    # Design mode does not reach If/Loop/Scan bodies; the ladder does (EnableSubgraph), and so may a pin.
    thorough = request.search is SearchMode.THOROUGH
    pin_reaches = request.pin is not None and bool(request.pin.extra_options.get("EnableSubgraph"))
    checked = preflight(request.path, reach_subgraphs=thorough or pin_reaches)
    notes: list[str] = []
    if checked.outcome is not None:
        error = "; ".join(checked.reasons) if checked.outcome is Outcome.ERROR else None
        details = DecisionDetails(checked=True, preflight=checked.summary)
        return _finished(
            request, checked.outcome, reasons=(*checked.reasons, *notes), error=error, details=details
        )
    assert checked.summary is not None  # preflight passed
    input_sets = _input_sets(request, checked)
    if thorough:
        input_sets = fit_thorough_inputs(input_sets, checked.summary, request.accuracy, request.path)
    directory = variant_dir(request.output_dir, request.relative_path, request.sha256)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir=directory))
    except OSError as exc:
        raise OutputDirError(directory, exc) from exc
    try:
        report("pre-processing")
        try:
            prepared = prepare_model(request.path, scratch)
        except OSError as exc:  # a full output volume is not the model's fault
            if exc.errno in DISK_FULL:
                raise OutputDirError(directory, exc) from exc
            raise
        excluded, unknown = _excluded_nodes(request.nodes_to_exclude, request.path, prepared)
        notes.extend(unknown)
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
            nodes_to_exclude=excluded,
            lock_path=request.host_lock,
        )
        report("running FP32 on the inputs")
        bench.reference_outputs()
        measured, decision = search(
            bench,
            checked.summary,
            pin=request.pin,
            mode=request.search,
            host_class=request.host_class,
            accuracy=request.accuracy,
            ladder=request.ladder,
            margin=request.benchmark.margin,
        )
        advice = decision_advice(
            decision,
            [m.measurement for m in measured if m.measurement is not None],
            model_path=request.path,
            input_names=[i.name for i in checked.summary.inputs],
            quantizable=checked.summary.quantizable_top_level,
            design=request.search is SearchMode.DESIGN and request.pin is None,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    details = DecisionDetails(
        checked=True,
        preflight=checked.summary,
        inputs=tuple(InputRecord(s.source, s.description) for s in input_sets),
        prepare=PrepareRecord(prepared.preprocess, prepared.folded_constants, prepared.notes),
        nodes_to_exclude=excluded,
        decision=decision.record,
    )
    return _finished(
        request,
        decision.outcome,
        selected=decision.selected,
        speedup=decision.speedup,
        speedup_ci=decision.speedup_ci,
        reasons=(*decision.reasons, *advice, *notes),
        error=decision.reasons[0] if decision.outcome is Outcome.ERROR else None,
        details=details,
        measured=measured,
        policy_version=decision.policy_version,
    )


def _excluded_nodes(
    wanted: tuple[str, ...], source: Path, prepared: PreparedModel
) -> tuple[tuple[str, ...], list[str]]:
    """The nodes_to_exclude the quantizer can honour, and a reason for the names it cannot.

    quantize_dynamic silently ignores a name it does not find, so each one is
    looked up in the pre-processed graph it reads; a name only the shipped file
    has was fused or renamed by pre-processing.
    """
    if not wanted:
        return (), []
    present = node_names(prepared.path)
    missing = [name for name in wanted if name not in present]
    if not missing:
        return wanted, []
    shipped = node_names(source)
    reasons = []
    absent = [name for name in missing if name not in shipped]
    if absent:
        known = [name for name, op in present.items() if op in QUANTIZABLE_WEIGHT_INPUTS][:8]
        reasons.append(
            f"nodes_to_exclude: no node named {_quoted(absent)} in this model, so nothing was kept in FP32 "
            f"for it; quantizable nodes here include {_quoted(known) or 'none with a name'}"
        )
    renamed = [name for name in missing if name in shipped]
    if renamed:
        reasons.append(
            f"nodes_to_exclude: {_quoted(renamed)} did not survive pre-processing ({prepared.preprocess}: "
            "fused or renamed), so the quantizer could not keep it in FP32"
        )
    return tuple(name for name in wanted if name in present), reasons


def _quoted(names: list[str]) -> str:
    return ", ".join(repr(name) for name in names)


def _input_sets(request: EngineRequest, checked: Preflight) -> list[InputSet]:
    assert checked.summary is not None  # preflight passed
    return gather_input_sets(request.path, checked.summary, request.accuracy)


def _finished(
    request: EngineRequest,
    outcome: Outcome,
    *,
    selected: Any = None,
    speedup: float | None = None,
    speedup_ci: tuple[float, float] | None = None,
    reasons: tuple[str, ...] = (),
    error: str | None = None,
    details: DecisionDetails | None = None,
    measured: list[CandidateRun] | None = None,
    permanent: bool = True,
    policy_version: str | None = None,
) -> EngineResult:
    """``policy_version`` defaults to the request's mode's: a preflight outcome in thorough
    mode must not read as a design-mode decision (staleness compares it with the mode's)."""
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
        search_mode=request.search,
        policy_version=policy_version or policy_version_for(request.search),
        ort_version=request.ort_version,
        source_size_bytes=request.source_size,
        variants=tuple(m.variant for m in measured),
        accuracy=tuple(a for m in measured for a in m.accuracy),
        benchmarks=tuple(b for m in measured for b in m.benchmarks),
        details=details or DecisionDetails(),
        permanent_error=permanent,
    )


def _identify(path: Path, mode: SearchMode, host: HostInfo) -> EngineResult:
    """An ``error`` result holding the model's sha256 and size, or saying why it cannot be read.

    The sha256 is the model's with its external data (:func:`content_sha256`), as the
    daemon queued it: the worker compares the two to notice a model changed while queued.
    """
    base = EngineResult(
        path=str(path),
        sha256="",
        outcome=Outcome.ERROR,
        selected=None,
        speedup=None,
        speedup_ci=None,
        reasons=(),
        error=None,
        seconds=0.0,
        search_mode=mode,
        policy_version=policy_version_for(mode),
        ort_version=host.ort_version,
    )
    try:
        return replace(base, sha256=content_sha256(path), source_size_bytes=path.stat().st_size)
    except OSError as exc:
        return replace(base, reasons=(f"cannot read {path}: {exc.strerror or exc}",), error=str(exc))
    except ModelError as exc:  # an external-data file is missing
        return replace(base, reasons=(str(exc),), error=str(exc), permanent_error=exc.permanent)


def _relative(path: Path, model_root: Path | str | None) -> Path:
    if model_root is not None:
        try:
            return path.resolve().relative_to(Path(model_root).resolve())
        except ValueError:
            pass
    return Path(path.name)
