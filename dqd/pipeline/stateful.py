"""Stateful models: find the state that is fed back between calls and judge accuracy over a stream.

A streaming model (silero-vad: ``state`` → ``stateN``; RNNs: ``h0`` → ``hn``;
decoders: ``past_*`` → ``present_*``) is used as a sequence of calls with each
call's state output fed into the next.  One call from a zero state looks
perfect even when quantization error piles up in the state, so the gate
judges the outputs of every step of a stream, with FP32 and the variant each
feeding back their own state, as the model is used.

Pure functions: sessions come in as ``run`` callables.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from dqd.pipeline.accuracy import GateThresholds, compare_outputs, gate
from dqd.pipeline.inputs import InputSet
from dqd.records import TensorInfo

Feed = dict[str, np.ndarray]
Run = Callable[[Mapping[str, np.ndarray]], Sequence[Any]]  # a feed -> the model's outputs in order

# An input's name, rewritten by each rule, gives the name of the output that feeds it back.
_PAIR_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^past(?:_key_values)?([._].*)$"), r"present\1"),  # past_key_values.0.key -> present.0.key
    (re.compile(r"^past_(.*)$"), r"present_\1"),
    (re.compile(r"^(.*?)([._]?)0$"), r"\1\2n"),  # h0 -> hn, h_0 -> h_n
    (re.compile(r"^(.*)([._])in$"), r"\1\2out"),  # state_in -> state_out
    (re.compile(r"^in(put)?([._].*)$"), r"out\1\2"),  # in_state -> out_state
)
_FEEDBACK_SUFFIXES = ("n", "N", "_n", "_next", "_new", "_out", "out")  # state -> stateN
# Integer scalars that carry an audio sample rate: speech models branch on it and
# accept only the rates they were trained at; 16 kHz is the common one.
_SAMPLE_RATE = re.compile(r"^(sr|sample_?rate|sampling_?rate|rate)$", re.IGNORECASE)
SAMPLE_RATE_HZ = 16000


@dataclass(frozen=True)
class StatePair:
    input: str
    output: str


def find_state_pairs(inputs: Sequence[TensorInfo], outputs: Sequence[TensorInfo]) -> list[StatePair]:
    """Inputs fed back from an output: a matching name (see the rules above) and a compatible tensor type."""
    by_name = {o.name: o for o in outputs}
    used: set[str] = set()
    pairs = []
    for info in inputs:
        for candidate in _candidate_outputs(info.name, by_name):
            output = by_name[candidate]
            if candidate not in used and _compatible(info, output):
                pairs.append(StatePair(info.name, candidate))
                used.add(candidate)
                break
    return pairs


def _candidate_outputs(name: str, outputs: Mapping[str, TensorInfo]) -> list[str]:
    found = [name + suffix for suffix in _FEEDBACK_SUFFIXES if name + suffix in outputs]
    for pattern, template in _PAIR_RULES:
        if pattern.match(name):
            target = pattern.sub(template, name)
            if target in outputs and target != name:
                found.append(target)
    return found


def _compatible(state_in: TensorInfo, state_out: TensorInfo) -> bool:
    """Same dtype; same rank with no conflicting fixed dims (when both ranks are known)."""
    if state_in.dtype != state_out.dtype or state_in.shape is None:
        return False
    if state_out.shape is None:
        return True
    if len(state_in.shape) != len(state_out.shape):
        # Exporters often lose an output's exact shape (silero: [2, ?, 128] -> [?, ?, ?]) but not its rank.
        return False
    return all(
        not (isinstance(a, int) and isinstance(b, int)) or a == b
        for a, b in zip(state_in.shape, state_out.shape, strict=True)
    )


def fit_feed(
    feed: Mapping[str, np.ndarray], inputs: Sequence[TensorInfo], pairs: Sequence[StatePair]
) -> Feed:
    """Repair a synthesized feed: arrays only, sample-rate scalars, and the batch size of states.

    A random integer is not a sample rate the model accepts, and a state's
    unnamed batch dim must equal the batch of the other inputs.
    """
    # np.asarray: a synthesized scalar can come back as a numpy scalar, which onnxruntime refuses.
    fitted = {name: np.asarray(value) for name, value in feed.items()}
    states = {p.input for p in pairs}
    batch = next((v.shape[0] for k, v in feed.items() if k not in states and np.ndim(v) >= 2), None)
    for info in inputs:
        value = fitted.get(info.name)
        if value is None:
            continue
        if _SAMPLE_RATE.match(info.name) and np.issubdtype(value.dtype, np.integer) and value.size == 1:
            fitted[info.name] = np.full(value.shape, SAMPLE_RATE_HZ, dtype=value.dtype)
        elif info.name in states and batch is not None and info.shape is not None:
            shape = list(value.shape)
            # Named dims were unified with the other inputs already; an unnamed one is a guess,
            # and the first unnamed dim of a state is its batch ([layers, batch, hidden]).
            unknown = [i for i, dim in enumerate(info.shape) if dim is None]
            if unknown:
                shape[unknown[0]] = batch
                fitted[info.name] = np.zeros(shape, dtype=value.dtype)
    return fitted


def fit_input_set(inputs: InputSet, infos: Sequence[TensorInfo], pairs: Sequence[StatePair]) -> InputSet:
    feeds = tuple(fit_feed(feed, infos, pairs) for feed in inputs.feeds)
    if all(_same_feed(a, b) for a, b in zip(feeds, inputs.feeds, strict=True)):
        return inputs
    shapes = ", ".join(f"{k}{list(v.shape)}" for k, v in feeds[0].items())
    return replace(inputs, feeds=feeds, description=f"{inputs.description}; fitted for streaming: {shapes}")


def _same_feed(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(
        isinstance(b[k], np.ndarray) and a[k].shape == b[k].shape and np.array_equal(a[k], b[k]) for k in a
    )


def stream_feeds(
    base: Sequence[Mapping[str, np.ndarray]],
    pairs: Sequence[StatePair],
    length: int,
    *,
    seed: int = 0,
    distribution: str = "normal",
) -> list[Feed]:
    """``length`` per-call feeds; state inputs come from the first feed and are replaced while streaming.

    Several base feeds (a samples folder) are used in order and repeated;
    a single feed gets fresh seeded float inputs at every step (a new chunk of
    signal), its integer inputs (ids, rates, masks) kept.
    """
    if length < 1 or not base:
        raise ValueError("a stream needs at least one call and one base feed")
    states = {p.input for p in pairs}
    if len(base) > 1:
        return [dict(base[i % len(base)]) for i in range(length)]
    rng = np.random.default_rng(seed)
    feeds = []
    for step in range(length):
        feed = dict(base[0])
        if step > 0:
            for name, value in base[0].items():
                if name not in states and np.issubdtype(value.dtype, np.floating):
                    draw = (
                        rng.uniform(-1.0, 1.0, value.shape)
                        if distribution == "uniform"
                        else rng.standard_normal(value.shape)
                    )
                    feed[name] = draw.astype(value.dtype)
        feeds.append(feed)
    return feeds


def run_stream(
    run: Run,
    output_names: Sequence[str],
    feeds: Sequence[Mapping[str, np.ndarray]],
    pairs: Sequence[StatePair],
) -> list[list[Any]]:
    """Outputs of every call, each call's state outputs fed into the next call's state inputs."""
    index = {name: i for i, name in enumerate(output_names)}
    steps: list[list[Any]] = []
    carried: dict[str, Any] = {}
    for feed in feeds:
        outputs = list(run({**feed, **carried}))
        steps.append(outputs)
        carried = {p.input: outputs[index[p.output]] for p in pairs}
    return steps


def stack_steps(steps: Sequence[Sequence[Any]]) -> list[Any]:
    """One array per output with time on axis 1 (``[batch, time, ...]``): each stream is one sample."""
    stacked: list[Any] = []
    for values in zip(*steps, strict=True):
        arrays = [np.asarray(v) for v in values]
        if any(a.dtype == object for a in arrays) or len({a.shape for a in arrays}) != 1:
            stacked.append(None)  # sequences, maps or growing caches: not comparable as one tensor
            continue
        stacked.append(np.stack(arrays, axis=1 if arrays[0].ndim >= 1 else 0))
    return stacked


def judge_stream(
    output_names: Sequence[str],
    reference_steps: Sequence[Sequence[Any]],
    candidate_steps: Sequence[Sequence[Any]],
    thresholds: GateThresholds,
) -> tuple[dict[str, dict[str, float]], bool, str]:
    """The gate over whole streams: metrics per output with each stream's trajectory as one sample."""
    metrics = compare_outputs(output_names, [stack_steps(reference_steps)], [stack_steps(candidate_steps)])
    passed, reason = gate(metrics, thresholds)
    calls = len(reference_steps)
    return metrics, passed, f"over a stream of {calls} calls with the state fed back: {reason}"
