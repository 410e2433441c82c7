"""Synthetic inputs the FP32 model accepts, in every search mode.

The synthesizer's first guess can fail where a model runs only at some sizes
(:mod:`dqd.pipeline.dimprobe`). Before any variant is built, each synthetic
input set is run once, quietly, on the FP32 session the reference outputs
come from (the caller's: no second session of the model); a set that fails is
replaced by the first shapes the bounded probe finds, and the reasons say so.
Streaming models (``stateful``, the ladder) get their state pairs fitted and
longer symbolic dims tried first, as the ladder always did. Samples are the
user's data and are left alone; so are shapes the user set in
``accuracy.input_shapes``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from dqd.domain import InputSource
from dqd.pipeline.dimprobe import probe_shapes
from dqd.pipeline.inputs import InputSet, synthesize_from_settings
from dqd.pipeline.stateful import StatePair, find_state_pairs, fit_input_set
from dqd.records import GraphSummary, TensorInfo
from dqd.settings import AccuracySettings
from dqd.text import first_line, without_ort_noise

# Longer symbolic dims the ladder tries first for streaming models (signal models
# pad or window their input: silero-vad needs a few hundred samples per call).
PROBE_DIMS = (64, 256, 1024)


def fit_inputs(
    input_sets: Sequence[InputSet],
    summary: GraphSummary,
    accuracy: AccuracySettings,
    session: Any,
    *,
    stateful: bool,
) -> tuple[list[InputSet], list[str]]:
    """The input sets with every synthetic one made to run, and a note per set that had to change.

    :class:`dqd.errors.ModelError` when no probed shape runs (the message lists what was tried).
    """
    fitted: list[InputSet] = []
    notes: list[str] = []
    for inputs in input_sets:
        if inputs.source is not InputSource.SYNTHETIC:
            fitted.append(inputs)
            continue
        if stateful:
            inputs = _fit_stream(session, inputs, summary, accuracy)
        failure = failure_of(session, inputs)
        if failure is not None:
            inputs, note = _probed(session, inputs, summary, accuracy, failure)
            notes.append(note)
        fitted.append(inputs)
    return fitted, notes


def _fit_stream(session: Any, first: InputSet, summary: GraphSummary, accuracy: AccuracySettings) -> InputSet:
    pairs: Sequence[StatePair] = find_state_pairs(summary.inputs, summary.outputs)
    fitted = fit_input_set(first, summary.inputs, pairs)
    if failure_of(session, fitted) is None:
        return fitted
    for dim in (d for d in PROBE_DIMS if d > accuracy.default_dim):
        synthesized = synthesize_from_settings(summary, accuracy, default_dim=dim)
        candidate = fit_input_set(synthesized, summary.inputs, pairs)
        if failure_of(session, candidate) is None:
            return candidate
    return fitted  # the general probe below tries other sizes


def _probed(
    session: Any, inputs: InputSet, summary: GraphSummary, accuracy: AccuracySettings, failure: str
) -> tuple[InputSet, str]:
    base = {name: tuple(int(d) for d in array.shape) for name, array in inputs.feeds[0].items()}
    signature = _user_shapes_fixed(summary.inputs, accuracy.input_shapes)

    def synthesized(shapes: Mapping[str, tuple[int, ...]]) -> InputSet:
        return synthesize_from_settings(
            summary, accuracy.model_copy(update={"input_shapes": {k: list(v) for k, v in shapes.items()}})
        )

    probed = probe_shapes(signature, base, failure, lambda shapes: failure_of(session, synthesized(shapes)))
    found = synthesized(probed.shapes)
    return replace(found, description=f"{found.description} (probed)"), probed.note


def _user_shapes_fixed(
    inputs: Sequence[TensorInfo], input_shapes: Mapping[str, Sequence[int]]
) -> list[TensorInfo]:
    """The signature with the shapes the user set made static, so the probe leaves them alone."""
    return [
        TensorInfo(i.name, i.dtype, tuple(int(d) for d in input_shapes[i.name]))
        if i.name in input_shapes
        else i
        for i in inputs
    ]


def failure_of(session: Any, inputs: InputSet) -> str | None:
    """None when FP32 runs the set's first feed, else onnxruntime's reason.

    Failures are expected here: the run must not log them as onnxruntime errors.
    """
    import onnxruntime as ort

    quiet = ort.RunOptions()
    quiet.log_severity_level = 4  # fatal only
    try:
        session.run(None, inputs.feeds[0], quiet)
    except Exception as exc:  # onnxruntime's errors are all "this feed does not fit"
        return without_ort_noise(first_line(exc))
    return None
