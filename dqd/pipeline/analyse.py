"""The engine's child side: everything that loads ONNX, for one model (:func:`analyse_model`).

The parent (:mod:`dqd.pipeline.engine`) builds an :class:`EngineRequest` and runs
:func:`analyse_model` in an isolated process. Order: preflight; a pre-fix on a
working copy where preflight found a fixable cause (:mod:`dqd.pipeline.prefix`);
pre-processing; inputs FP32 runs on (:mod:`dqd.pipeline.fit_inputs`, or for a
KV-cache decoder FP32's reference generation, :mod:`dqd.pipeline.decoder_run`);
FP32's reference outputs (and the working copy checked equivalent to them); the
search.
The source is never written; every file goes into the model's variant folder.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from dqd import __version__
from dqd.domain import EngineResult, Outcome, SearchMode, VariantSpec
from dqd.errors import DqdError, EnvironmentFailure, ModelError
from dqd.pipeline.accuracy import GateThresholds
from dqd.pipeline.advice import decision_advice
from dqd.pipeline.decoder import DecoderLayout, find_decoder
from dqd.pipeline.decoder_run import DecoderEvaluation, decoder_notes, generation_input_set, prepare_decoder
from dqd.pipeline.environment import missing_module
from dqd.pipeline.fit_inputs import fit_inputs
from dqd.pipeline.inputs import InputSet, gather_input_sets
from dqd.pipeline.inspect import FixableCause, Preflight, node_names, preflight
from dqd.pipeline.isolate import ChildReporter
from dqd.pipeline.niced import run_niced
from dqd.pipeline.policy import KEPT_FP32_HEADLINE, PREFLIGHT_VERSION, policy_version_for
from dqd.pipeline.prefix import WorkingCopy, check_equivalent, repair, stand_in_note
from dqd.pipeline.prepare import LARGE_MODEL_BYTES, PreparedModel, is_large, prepare_model
from dqd.pipeline.quantize import DISK_FULL, OutputDirError, provenance_for, variant_dir
from dqd.pipeline.quiet import quiet_onnxruntime_logging
from dqd.pipeline.readable import readable_path
from dqd.pipeline.search import search
from dqd.pipeline.workbench import CandidateRun, Outputs, Workbench
from dqd.quantops import QUANTIZABLE_WEIGHT_INPUTS
from dqd.records import DecisionDetails, GraphSummary, InputRecord, PrepareRecord
from dqd.scratch import writer_tag
from dqd.scratchnames import WORK_PREFIX
from dqd.settings import AccuracySettings, BenchmarkSettings, LadderSettings
from dqd.text import first_line


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
    external_data_bytes: int = LARGE_MODEL_BYTES  # limits.external_data_mb
    background_nice: int = 0  # limits.background_nice (dqd.pipeline.niced)


def analyse_model(report: ChildReporter, request: EngineRequest) -> EngineResult:
    """The child's side: everything that loads ONNX.  Model problems become ``error`` results.

    Environment failures are raised, and reach the parent as themselves (see dqd.pipeline.isolate).
    """
    quiet_onnxruntime_logging()
    try:
        scratch_parent = variant_dir(request.output_dir, request.relative_path, request.sha256)
        with readable_path(request.path, scratch_parent) as readable:
            return _analyse(report, request, readable)
    except EnvironmentFailure:
        raise
    except ModuleNotFoundError as exc:  # a broken install, whichever model runs
        raise missing_module(exc) from exc
    except (ModelError, DqdError) as exc:
        permanent = exc.permanent if isinstance(exc, ModelError) else False
        return _finished(request, Outcome.ERROR, reasons=(str(exc),), error=str(exc), permanent=permanent)


def _analyse(report: ChildReporter, request: EngineRequest, readable: Path) -> EngineResult:
    """``readable``: the source as onnx's checker and onnxruntime are given it (dqd.pipeline.readable)."""
    report("preflight")
    # Design mode does not reach If/Loop/Scan bodies; the ladder does (EnableSubgraph), and so may a pin.
    thorough = request.search is SearchMode.THOROUGH
    pin_reaches = request.pin is not None and bool(request.pin.extra_options.get("EnableSubgraph"))
    reach = thorough or pin_reaches
    checked = preflight(readable, reach_subgraphs=reach)
    if checked.outcome is not None and checked.fixable is None:
        return _refused(request, checked)
    original = checked.summary  # what the catalog records: the model as given, not a working copy
    precision = checked.precision
    directory = variant_dir(request.output_dir, request.relative_path, request.sha256)
    scratch = _scratch(directory)
    try:
        notes: list[str] = []
        copy, checked = _repaired(report, request, checked, scratch, reach, readable)
        if checked.outcome is not None:
            return _refused(request, replace(checked, summary=original, precision=precision), fix=copy)
        assert checked.summary is not None  # preflight passed
        notes.extend(checked.reasons)  # what preflight noted about a model it let through
        layout = find_decoder(checked.summary.inputs, checked.summary.outputs, checked.summary.vocab_sizes)
        # A decoder's samples are prompts: its input_ids alone (the cache comes from running it).
        prompts_only = (layout.input_ids,) if layout is not None else None
        gathered = gather_input_sets(request.path, checked.summary, request.accuracy, prompts_only)
        report("pre-processing")
        source = copy.path if copy else readable
        prepare = partial(_prepared, source, scratch, directory, request.external_data_bytes)
        prepared = run_niced(prepare, nice=request.background_nice)
        if copy is not None:  # the fix is part of how the variants were made, and of their file key
            prepared = replace(prepared, preprocess=f"{copy.label}+{prepared.preprocess}")
        excluded, unknown = _excluded_nodes(request.nodes_to_exclude, readable, prepared)
        # Where onnxruntime cannot run the original, the copy is the FP32 everything is held against.
        stands_in = copy is not None and copy.original_unrunnable is not None
        bench = Workbench(
            source=copy.path if copy is not None and stands_in else readable,
            prepared=prepared,
            variant_directory=directory,
            input_sets=gathered,
            thresholds=GateThresholds.from_settings(request.accuracy),
            benchmark_settings=request.benchmark,
            threads=request.threads,
            ort_version=request.ort_version,
            provenance=provenance_for(request.sha256, request.ort_version, __version__, str(request.path)),
            report=report,
            nodes_to_exclude=excluded,
            lock_path=request.host_lock,
            background_nice=request.background_nice,
        )
        report("running FP32 on the inputs")
        # The synthetic sets made to run on the FP32 session the reference outputs come from.
        session = bench.fp32_session()
        decoder = _decoder(report, request, layout, checked.summary, gathered, session)
        if decoder is not None:  # consistent feeds by construction: nothing to fit or probe
            input_sets, probed = [generation_input_set(decoder)], list[str]()
        else:
            input_sets, probed = fit_inputs(
                gathered, checked.summary, request.accuracy, session, stateful=thorough
            )
        bench = replace(bench, input_sets=input_sets, decoder=decoder)
        del session  # the workbench holds it while it is needed (see Workbench.build)
        references = bench.reference_outputs()
        if copy is not None:
            notes.append(stand_in_note(copy) if stands_in else _equivalent(copy, bench, references))
        notes.extend([*probed, *unknown])
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
        if decoder is not None:
            notes.extend(decoder_notes(decoder, [b for m in measured for b in m.benchmarks]))
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
        preflight=original,
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
        reasons=_as_given(precision, (*decision.reasons, *advice, *notes), stands_in=stands_in),
        error=decision.reasons[0] if decision.outcome is Outcome.ERROR else None,
        details=details,
        measured=measured,
        policy_version=decision.policy_version,
        source_precision=precision,
    )


def _as_given(precision: str, reasons: tuple[str, ...], *, stands_in: bool) -> tuple[str, ...]:
    """``reasons`` for a model that is not FP32 as given: the policy calls its baseline FP32."""
    if precision == "fp32" or not reasons:
        return reasons
    name = precision.upper()
    first, *rest = reasons
    if first.startswith(KEPT_FP32_HEADLINE):
        first = f"kept the {name} original: {first.removeprefix(KEPT_FP32_HEADLINE)}"
    # Where the FP32 copy stands in for the original, FP32 is what the reasons say it is.
    said = () if stands_in else (f"FP32 in these reasons stands for the model as given: the {name} original",)
    return (first, *rest, *said)


def _refused(request: EngineRequest, checked: Preflight, *, fix: WorkingCopy | None = None) -> EngineResult:
    """Preflight's own outcome (``skipped`` or ``error``); after a pre-fix, the reasons say which."""
    fixed = (f"pre-fix: {fix.fix}; the reasons above are the working copy's",) if fix else ()
    reasons = (*checked.reasons, *fixed)  # the first reason is what `dqd models` shows
    error = "; ".join(checked.reasons) if checked.outcome is Outcome.ERROR else None
    details = DecisionDetails(checked=True, preflight=checked.summary)
    assert checked.outcome is not None
    return _finished(
        request,
        checked.outcome,
        reasons=reasons,
        error=error,
        details=details,
        source_precision=checked.precision if checked.summary else None,
    )


def _repaired(
    report: ChildReporter,
    request: EngineRequest,
    checked: Preflight,
    scratch: Path,
    reach: bool,
    readable: Path,
) -> tuple[WorkingCopy | None, Preflight]:
    """Apply a pre-fix for each fixable cause preflight finds, each on the copy before it.

    Returns the working copy (None: nothing to fix) and the preflight of what the
    quantizer will read. :class:`ModelError` if a fix leaves its own cause behind.
    """
    copy: WorkingCopy | None = None
    applied: set[FixableCause] = set()
    while checked.fixable is not None:
        cause = checked.fixable
        if cause in applied:
            raise ModelError(f"pre-fix {cause.value} left its cause in place: {'; '.join(checked.reasons)}")
        applied.add(cause)
        report(f"pre-fix: {cause.value.replace('_', ' ')}")
        source = copy.path if copy is not None else readable
        large = is_large(source, request.external_data_bytes)
        step = repair(cause, source, scratch, ort_version=request.ort_version, large=large)
        copy = step if copy is None else copy.then(step)
        checked = preflight(copy.path, reach_subgraphs=reach)
    return copy, checked


def _decoder(
    report: ChildReporter,
    request: EngineRequest,
    layout: DecoderLayout | None,
    summary: GraphSummary,
    gathered: list[InputSet],
    session: Any,
) -> DecoderEvaluation | None:
    """FP32's reference generation for a KV-cache decoder; None for any other model."""
    if layout is None:
        return None
    report("decoder: FP32's reference generation")
    try:
        return prepare_decoder(session, layout, summary.inputs, gathered, request.accuracy, request.benchmark)
    except Exception as exc:
        raise ModelError(
            f"the FP32 model looks like a KV-cache decoder ({len(layout.pairs)} cache inputs) but fails "
            f"over a generation: {first_line(exc)}; provide a <stem>.samples.npz with input_ids",
            path=str(request.path),
        ) from exc


def _scratch(directory: Path) -> Path:
    """A private work folder inside the model's variant folder (on the output volume)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=WORK_PREFIX + writer_tag(), dir=directory))
    except OSError as exc:
        raise OutputDirError(directory, exc) from exc


def _prepared(source: Path, scratch: Path, directory: Path, external_data_bytes: int) -> PreparedModel:
    try:
        return prepare_model(source, scratch, large=is_large(source, external_data_bytes))
    except OSError as exc:  # a full output volume is not the model's fault
        if exc.errno in DISK_FULL:
            raise OutputDirError(directory, exc) from exc
        raise


def _equivalent(copy: WorkingCopy, bench: Workbench, references: list[Outputs]) -> str:
    sources = sorted({s.source.value for s in bench.input_sets})
    described = "the " + " and ".join(sources) + " inputs"
    feeds = [inputs.feeds for inputs in bench.input_sets]
    return check_equivalent(copy, bench.output_names(), references, feeds, described=described)


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
    source_precision: str | None = None,
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
        preflight_version=PREFLIGHT_VERSION,
        ort_version=request.ort_version,
        source_size_bytes=request.source_size,
        variants=tuple(m.variant for m in measured),
        accuracy=tuple(a for m in measured for a in m.accuracy),
        benchmarks=tuple(b for m in measured for b in m.benchmarks),
        details=details or DecisionDetails(),
        permanent_error=permanent,
        source_precision=source_precision,
    )
