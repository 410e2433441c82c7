"""Advice appended to a decision's reasons: the next thing a person can do (pure).

Two pieces, shared by both search modes so they say the same thing: real
samples when the gate failed on synthetic inputs, and static quantization
for Conv-heavy models that dynamic quantization did not help.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from dqd.domain import InputSource, Outcome
from dqd.pipeline.ladder import ModelTraits
from dqd.pipeline.policy import CandidateMeasurement, Decision

STATIC_ADVICE = (
    "next step: static quantization with calibration data (onnxruntime.quantization.quantize_static, "
    "QDQ format, a CalibrationDataReader over a few hundred representative inputs), which fixes activation "
    "scales ahead of time instead of computing them at every call; dqd does not do that step"
)


def decision_advice(
    decision: Decision,
    measurements: Sequence[CandidateMeasurement],
    *,
    model_path: Path,
    input_names: Sequence[str],
    quantizable: Mapping[str, int],
    design: bool,
) -> list[str]:
    """The engine's advice after the search's own reasons (the ladder gives its Conv advice itself).

    ``design``: the two-step ran (not the ladder, not a pin); ``quantizable`` is the op
    histogram it could reach (top level).
    """
    advice = samples_advice(model_path, input_names, measurements)
    if design:
        advice += design_conv_advice(decision, quantizable, measurements)
    return advice


def samples_file(model_path: Path) -> Path:
    """The samples file dqd reads beside ``model_path`` (see :func:`dqd.pipeline.inputs.samples_location`)."""
    stem = model_path.with_suffix("")
    return stem.with_name(stem.name + ".samples.npz")


def samples_advice(
    model_path: Path, input_names: Sequence[str], measurements: Sequence[CandidateMeasurement]
) -> list[str]:
    """A variant failed the gate on synthetic inputs: name the samples file that would use real ones."""
    failed = [
        m.spec.name for m in measurements if m.gate_passed is False and m.gate_source == InputSource.SYNTHETIC
    ]
    if not failed:
        return []
    target = samples_file(model_path)
    keys = ", ".join(input_names) or "one per model input"
    return [
        f"advice: {', '.join(failed)} failed the accuracy gate on synthetic inputs, which may not look like "
        f"real data; save a few real inputs as {target.name} beside the model ({target}; "
        f"numpy.savez with one array per input: {keys}) and dqd judges on those instead"
    ]


def static_quantization_advice(
    traits: ModelTraits, measured: Sequence[str], *, leaves_conv_in_fp32: str | None = None
) -> list[str]:
    """Point a Conv-heavy model at static quantization; [] when the model is not Conv-heavy.

    ``measured`` describes the Conv-quantizing variants (e.g. ``"u8u8 0.57x"``);
    ``leaves_conv_in_fp32`` names the shipped variant when it quantized only
    the other layers.
    """
    if not traits.conv_heavy:
        return []
    convs = traits.counts.get("Conv", 0)
    speeds = ", ".join(measured) or "no Conv variant could be measured"
    if leaves_conv_in_fp32 is None:
        head = (
            f"advice: no dynamic variant helps this Conv-heavy model ({convs} Conv) on this host ({speeds})"
        )
    else:
        head = (
            f"advice: {leaves_conv_in_fp32} leaves this Conv-heavy model's {convs} Conv in FP32: "
            f"dynamic Conv quantization did not pay off here ({speeds})"
        )
    return [f"{head}; {STATIC_ADVICE}"]


def design_conv_advice(
    decision: Decision, quantizable: Mapping[str, int], measurements: Sequence[CandidateMeasurement]
) -> list[str]:
    """Design mode: its variants quantize every layer, Conv included, so advice only when FP32 was kept."""
    if decision.outcome is not Outcome.KEPT_FP32:
        return []
    measured = [speed_text(m) for m in measurements]
    advice = static_quantization_advice(ModelTraits(top_level=quantizable), measured)
    if not advice:
        return []
    return [advice[0] + '; `search = "thorough"` also tries variants that leave Conv in FP32']


def speed_text(m: CandidateMeasurement) -> str:
    """A variant's speed-up for advice, e.g. ``u8u8 0.57x`` or ``u8s8 failed the gate``."""
    if m.speedup is None:
        return f"{m.spec.name} {'failed the gate' if m.gate_passed is False else 'not timed'}"
    return f"{m.spec.name} {m.speedup:.2f}x" + (" (failed the gate)" if m.gate_passed is False else "")
