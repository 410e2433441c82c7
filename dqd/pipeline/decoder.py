"""Transformer decoders with a KV cache: recognise the layout, stream it, judge it as a stream.

A decoder is called once for its prompt (P tokens, an empty cache) and then
once per generated token, each call's ``present`` fed back as the next call's
``past`` and the attention mask and positions growing. One call says little:
quantization error piles up in the cache. So a variant is judged over a whole
generation: FP32 decodes greedily from a prompt, the variant is fed the same
tokens (teacher forcing) with its own cache fed back, and the gate compares
the logits of every step (cosine per step, greedy next-token agreement where
FP32's choice is clear) and the caches at the end.

Pure functions; sessions come in as ``run`` callables.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dqd.pipeline.accuracy import GateThresholds, gate, output_metrics
from dqd.pipeline.stateful import StatePair, find_state_pairs
from dqd.records import TensorInfo

Feed = dict[str, np.ndarray]
Run = Callable[[Mapping[str, np.ndarray]], Sequence[Any]]  # a feed -> the model's outputs in order

_PAST = re.compile(r"(^|[._])(past|cache)([._]|$)|^past_key|^past_value|^cache", re.IGNORECASE)
_SEQUENCE_DIM = re.compile(r"past|seq|len|cache|total", re.IGNORECASE)
_IDS = re.compile(r"^(input_ids|ids|tokens?|input_tokens)$", re.IGNORECASE)
CACHE_METRICS_NAME = "kv cache (last step)"


@dataclass(frozen=True)
class DecoderLayout:
    """Which inputs and outputs play which part in a decoder's calls."""

    input_ids: str
    logits: str
    pairs: tuple[StatePair, ...]  # past input -> present output, one per cache tensor
    sequence_axis: Mapping[str, int]  # per past input: the axis that grows by one per token
    attention_mask: str | None = None
    position_ids: str | None = None
    vocab: int | None = None  # logits' last dim, or the ids' embedding table rows
    max_positions: int | None = None  # rows of the position table: past + new tokens stay below it


def find_decoder(
    inputs: Sequence[TensorInfo], outputs: Sequence[TensorInfo], table_sizes: Mapping[str, int]
) -> DecoderLayout | None:
    """The decoder layout of a signature, or None when it is not a KV-cache decoder. Pure.

    ``table_sizes``: integer input → rows of the embedding table it indexes
    (:attr:`dqd.records.GraphSummary.vocab_sizes`).
    """
    pairs = tuple(p for p in find_state_pairs(inputs, outputs) if _PAST.search(p.input))
    by_name = {i.name: i for i in inputs}
    ids = next((i for i in inputs if _IDS.match(i.name) and _is_integer(i) and _rank(i) == 2), None)
    if not pairs or ids is None:
        return None
    fed_back = {p.output for p in pairs}
    logits = next((o for o in outputs if "logit" in o.name.lower()), None) or next(
        (o for o in outputs if o.name not in fed_back and o.dtype.startswith("float") and _rank(o) == 3), None
    )
    axes = {p.input: _sequence_axis(by_name[p.input]) for p in pairs}
    if logits is None or any(axis is None for axis in axes.values()):
        return None
    mask = next((i.name for i in inputs if "attention_mask" in i.name.lower() and _is_integer(i)), None)
    positions = next((i.name for i in inputs if "position_ids" in i.name.lower() and _is_integer(i)), None)
    last = logits.shape[-1] if logits.shape else None
    vocab = last if isinstance(last, int) else table_sizes.get(ids.name)
    return DecoderLayout(
        input_ids=ids.name,
        logits=logits.name,
        pairs=pairs,
        sequence_axis={name: axis for name, axis in axes.items() if axis is not None},
        attention_mask=mask,
        position_ids=positions,
        vocab=vocab,
        max_positions=table_sizes.get(positions) if positions else None,
    )


def _sequence_axis(info: TensorInfo) -> int | None:
    """The cache's growing axis: a dim named like a length (``past_seq``), else the second to last."""
    if info.shape is None or len(info.shape) < 2:
        return None
    named = [i for i, dim in enumerate(info.shape) if isinstance(dim, str) and _SEQUENCE_DIM.search(dim)]
    return named[0] if named else len(info.shape) - 2


def _is_integer(info: TensorInfo) -> bool:
    return info.dtype.startswith(("int", "uint"))


def _rank(info: TensorInfo) -> int | None:
    return len(info.shape) if info.shape is not None else None


def fits_length(layout: DecoderLayout, tokens: int) -> int:
    """``tokens`` capped so that every position stays inside the position table."""
    return tokens if layout.max_positions is None else max(1, min(tokens, layout.max_positions))


@dataclass(frozen=True)
class Trace:
    """One generation: each call's feed and outputs, and the tokens fed after the prompt."""

    feeds: list[Feed]
    outputs: list[list[Any]]
    tokens: list[int]  # the token fed at each decode step (FP32's greedy choice)


def generate(
    run: Run,
    output_names: Sequence[str],
    layout: DecoderLayout,
    prompt: np.ndarray,
    steps: int,
    empty_past: Mapping[str, np.ndarray],
    *,
    extras: Mapping[str, np.ndarray] | None = None,
    forced: Sequence[int] | None = None,
) -> Trace:
    """The prompt call then ``steps`` decode calls, each call's cache fed into the next.

    ``forced``: the tokens to feed (teacher forcing); None: greedy on this
    model's own logits. ``extras``: values for inputs a decoder has beyond the
    layout's (kept as given). ``empty_past``: zero-length cache tensors.
    """
    index = {name: i for i, name in enumerate(output_names)}
    prompt = np.asarray(prompt, dtype=np.int64).reshape(1, -1)
    feeds: list[Feed] = []
    outputs: list[list[Any]] = []
    tokens: list[int] = []
    past: dict[str, np.ndarray] = dict(empty_past)
    ids, start = prompt, 0
    for step in range(steps + 1):
        feed = {**(extras or {}), **past, **_step_inputs(layout, ids, start)}
        result = list(run(feed))
        feeds.append(feed)
        outputs.append(result)
        if step == steps:
            break
        logits = np.asarray(result[index[layout.logits]])
        token = int(forced[step]) if forced is not None else int(logits[0, -1].argmax())
        tokens.append(token)
        past = {p.input: result[index[p.output]] for p in layout.pairs}
        start += ids.shape[1]
        ids = np.array([[token]], dtype=prompt.dtype)
    return Trace(feeds, outputs, tokens)


def _step_inputs(layout: DecoderLayout, ids: np.ndarray, start: int) -> Feed:
    """input_ids, and the mask over past + new tokens and the new tokens' positions."""
    feed = {layout.input_ids: ids}
    total = start + ids.shape[1]
    if layout.attention_mask is not None:
        feed[layout.attention_mask] = np.ones((1, total), dtype=np.int64)
    if layout.position_ids is not None:
        feed[layout.position_ids] = np.arange(start, total, dtype=np.int64).reshape(1, -1)
    return feed


def empty_cache(layout: DecoderLayout, infos: Sequence[TensorInfo], dims: Mapping[str, int]) -> Feed:
    """Zero-length cache tensors: batch 1, the growing axis 0, other named dims from ``dims``."""
    by_name = {i.name: i for i in infos}
    cache: Feed = {}
    for pair in layout.pairs:
        info = by_name[pair.input]
        assert info.shape is not None  # find_decoder checked
        shape = []
        for axis, dim in enumerate(info.shape):
            if axis == layout.sequence_axis[pair.input]:
                shape.append(0)
            elif isinstance(dim, int):
                shape.append(dim)
            else:
                shape.append(1 if axis == 0 else dims.get(str(dim), 1))
        cache[pair.input] = np.zeros(shape, dtype=np.dtype(info.dtype))
    return cache


def judge_generation(
    output_names: Sequence[str],
    layout: DecoderLayout,
    reference: Trace,
    candidate: Trace,
    thresholds: GateThresholds,
) -> tuple[dict[str, dict[str, float]], bool, str]:
    """The gate over a generation: logits of every step, and the cache after the last."""
    index = {name: i for i, name in enumerate(output_names)}
    logits = [
        np.stack([np.asarray(o[index[layout.logits]])[0, -1] for o in trace.outputs])
        for trace in (reference, candidate)
    ]
    metrics = {layout.logits: output_metrics(layout.logits, [logits[0]], [logits[1]])}
    caches = [
        [np.asarray(trace.outputs[-1][index[p.output]]).reshape(-1) for p in layout.pairs]
        for trace in (reference, candidate)
    ]
    if len({c.size for c in caches[0]}) == 1:
        # [tensor, 1, values]: one sample per cache tensor, and not read as class scores.
        stacked = [np.stack(c)[:, None, :] for c in caches]
        metrics[CACHE_METRICS_NAME] = output_metrics(CACHE_METRICS_NAME, [stacked[0]], [stacked[1]])
    passed, reason = gate(metrics, thresholds)
    prompt = reference.feeds[0][layout.input_ids].shape[1]
    said = f"over a generation of {prompt} prompt tokens and {len(reference.tokens)} greedy decode steps"
    return metrics, passed, f"{said} (FP32's tokens fed to both, each its own cache): {reason}"
