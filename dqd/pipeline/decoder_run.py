"""The engine's decoder work: FP32's reference generation, the timing feeds, and judging a variant.

Built once per model by :func:`prepare_decoder` on the FP32 session; the
:class:`~dqd.pipeline.workbench.Workbench` then judges every candidate over the
same generation (:func:`judge_variant`) and times the decode step at a
realistic cache length and the prompt step separately, deciding on the one
``benchmark.decoder_decides`` names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dqd.domain import AccuracyResult, BenchmarkResult, InputSource, VariantSpec
from dqd.pipeline.accuracy import GateThresholds
from dqd.pipeline.decoder import DecoderLayout, Trace, empty_cache, fits_length, generate, judge_generation
from dqd.pipeline.inputs import InputSet
from dqd.records import TensorInfo
from dqd.settings import AccuracySettings, BenchmarkSettings
from dqd.text import first_line


@dataclass(frozen=True)
class TimingFeed:
    step: str  # recorded as BenchmarkResult.step's suffix, e.g. "decode@128"
    feed: dict[str, Any]
    tokens: int  # tokens this call produces or consumes: tokens/s = tokens / latency


@dataclass(frozen=True)
class DecoderEvaluation:
    layout: DecoderLayout
    reference: Trace  # FP32's greedy generation
    source: InputSource  # where the prompt came from
    timing: tuple[TimingFeed, ...]  # the deciding feed first
    empty_past: dict[str, np.ndarray]  # the prompt call's zero-length cache
    extras: dict[str, np.ndarray]  # inputs beyond the layout's, fed as synthesized


def prepare_decoder(
    session: Any,
    layout: DecoderLayout,
    infos: Sequence[TensorInfo],
    input_sets: Sequence[InputSet],
    accuracy: AccuracySettings,
    benchmark: BenchmarkSettings,
) -> DecoderEvaluation:
    """FP32's generation from a prompt (the samples' first ``input_ids``, else seeded random ids)."""
    names = [o.name for o in session.get_outputs()]
    cache = empty_cache(layout, infos, {})
    played = {layout.input_ids, layout.attention_mask, layout.position_ids, *cache}
    base = input_sets[0].feeds[0] if input_sets else {}
    extras = {i.name: base[i.name] for i in infos if i.name not in played and i.name in base}
    run = _runner(session)
    samples = next(
        (s for s in input_sets if s.source is InputSource.SAMPLES and layout.input_ids in s.feeds[0]), None
    )
    steps = accuracy.sequence_length
    length = max(1, fits_length(layout, accuracy.decoder_prompt_tokens + steps) - steps)
    if samples is not None:
        prompt = np.asarray(samples.feeds[0][layout.input_ids])[0, :length]
    else:
        prompt = _random_ids(layout, length, accuracy.seed)
    reference = generate(run, names, layout, prompt, steps, cache, extras=extras)
    past = fits_length(layout, benchmark.decoder_past_length + 1) - 1
    filled = generate(
        run, names, layout, _random_ids(layout, past, accuracy.seed + 1), 1, cache, extras=extras
    )
    decode = TimingFeed(f"decode@{past}", filled.feeds[1], 1)
    prompt_step = TimingFeed(f"prompt@{past}", filled.feeds[0], past)
    timing = (decode, prompt_step) if benchmark.decoder_decides == "decode" else (prompt_step, decode)
    source = InputSource.SAMPLES if samples is not None else InputSource.SYNTHETIC
    return DecoderEvaluation(layout, reference, source, timing, cache, extras)


def generation_input_set(evaluation: DecoderEvaluation) -> InputSet:
    """FP32's calls of the reference generation, as the per-call input set every candidate also runs."""
    trace = evaluation.reference
    prompt = trace.feeds[0][evaluation.layout.input_ids].shape[1]
    description = (
        f"decoder generation: a prompt of {prompt} tokens ({evaluation.source.value}), then "
        f"{len(trace.tokens)} greedy decode steps with FP32's cache fed back"
    )
    return InputSet(evaluation.source, tuple(trace.feeds), description)


def judge_variant(
    evaluation: DecoderEvaluation, session: Any, spec: VariantSpec, thresholds: GateThresholds
) -> AccuracyResult:
    """The decisive check of a decoder variant: the generation, FP32's tokens forced."""
    layout, reference = evaluation.layout, evaluation.reference
    names = [o.name for o in session.get_outputs()]
    try:
        candidate = generate(
            _runner(session),
            names,
            layout,
            reference.feeds[0][layout.input_ids],
            len(reference.tokens),
            evaluation.empty_past,
            extras=evaluation.extras,
            forced=reference.tokens,
        )
    except Exception as exc:  # a variant onnxruntime refuses fails the gate; it is not a crash
        reason = f"variant fails over a generation: {first_line(exc, limit=200, with_type=True)}"
        return AccuracyResult(spec, evaluation.source, {}, False, reason, True)
    metrics, passed, reason = judge_generation(names, layout, reference, candidate, thresholds)
    return AccuracyResult(spec, evaluation.source, metrics, passed, reason, True)


def _runner(session: Any) -> Any:
    return lambda feed: session.run(None, dict(feed))


def _random_ids(layout: DecoderLayout, length: int, seed: int) -> np.ndarray:
    high = layout.vocab or 2
    return np.random.default_rng(seed).integers(0, high, size=length, dtype=np.int64)


def decoder_notes(evaluation: DecoderEvaluation, benchmarks: Sequence[BenchmarkResult]) -> list[str]:
    """What the decision rests on, for people: the layout found and each step's tokens/s."""
    layout = evaluation.layout
    deciding = evaluation.timing[0].step.split("@")[0]
    notes = [
        f"decoder with a KV cache ({len(layout.pairs)} cache tensors, logits {layout.logits!r}): judged over "
        f"a greedy generation, timed per step; the {deciding} step's speed-up decides "
        "(benchmark.decoder_decides)"
    ]
    for timing in evaluation.timing:
        rows = [b for b in benchmarks if b.step.endswith(":" + timing.step)]
        if not rows:
            continue
        fp32 = [b for b in rows if b.spec is None]
        parts = [_fp32_rate(fp32, timing.tokens)] if fp32 else []
        seen: set[str] = set()
        for b in rows:
            if b.spec is not None and b.spec.name not in seen:
                seen.add(b.spec.name)
                parts.append(_rate(b.spec.name, b, timing.tokens))
        kind, _, length = timing.step.partition("@")
        what = (
            f"decode step with a cache of {length} tokens"
            if kind == "decode"
            else f"prompt of {length} tokens"
        )
        notes.append(f"{what}: " + "; ".join(parts))
    return notes


def _fp32_rate(timings: Sequence[BenchmarkResult], tokens: int) -> str:
    """FP32 is timed beside each candidate: its first run, or the range of its runs where they differ
    (fast steps wander between runs, and each candidate's ms is from its own run)."""
    medians = sorted(t.latency.median_ms for t in timings)
    low, high = medians[0], medians[-1]
    if high <= low * 1.05:
        return _rate("FP32", timings[0], tokens)
    rates = f"{tokens * 1000.0 / high:.0f}-{tokens * 1000.0 / low:.0f} tokens/s"
    return f"FP32 {low:.2f}-{high:.2f} ms ({rates}) over {len(medians)} runs"


def _rate(name: str, timing: BenchmarkResult, tokens: int) -> str:
    ms = timing.latency.median_ms
    return f"{name} {ms:.2f} ms ({tokens * 1000.0 / ms:.0f} tokens/s)"
