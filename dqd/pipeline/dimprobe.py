"""Shapes that work: a bounded search when FP32 rejects the synthesized inputs' first guess.

Some models run only at certain sizes of their dynamic dims: a text recogniser
whose height must be 48, a detector that needs multiples of 32, a sequence
model with a maximum length, inputs that must share a length. The synthesizer
guesses one size per symbolic dim (:func:`dqd.pipeline.inputs.resolve_shapes`);
when the FP32 model fails on that guess, :func:`probe_shapes` tries at most
:data:`MAX_PROBES` other assignments, in this order: sizes the failing node's
message names, then sizes common for what the dim's name (or position) says it
is, all dims of a kind moving together, shared symbolic dims always equal.
The batch dim keeps its size. Candidate generation is pure
(:func:`candidate_assignments`); running FP32 is the caller's callback.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from dqd.errors import ModelError
from dqd.records import TensorInfo

MAX_PROBES = 32  # FP32 runs at most, beyond the first guess
SPATIAL_SIZES = (32, 48, 64, 96, 128, 160, 256, 320, 384, 512, 640)
SEQUENCE_SIZES = (8, 32, 64, 128, 256, 512, 1024, 1)  # 1 last: a degenerate but valid length
_MESSAGE_SIZES = range(2, 4097)  # numbers in an error message worth trying as a size
_SPATIAL = re.compile(r"height|width|(^|_)(h|w)($|_)|side|size", re.IGNORECASE)
_SEQUENCE = re.compile(r"seq|len|time|token|step|frame|sample", re.IGNORECASE)
_BATCH = re.compile(r"batch|^n$", re.IGNORECASE)

Assignment = dict[str, int]  # dim key -> size
Runs = Callable[[Mapping[str, tuple[int, ...]]], str | None]  # shapes -> None, or why FP32 failed


class DimKind(StrEnum):
    BATCH = "batch"
    SPATIAL = "spatial"
    SEQUENCE = "sequence"
    OTHER = "other"


@dataclass(frozen=True)
class DynamicDim:
    key: str  # the symbolic name, or "<input>:<axis>" for an unnamed dim
    kind: DimKind


@dataclass(frozen=True)
class Probed:
    shapes: dict[str, tuple[int, ...]]  # the shapes that ran
    note: str  # for the decision's reasons: what failed, what was used


def dim_key(info: TensorInfo, axis: int) -> str | None:
    """The key of ``info``'s dim at ``axis`` when it is dynamic (None: a fixed size)."""
    dim = (info.shape or ())[axis]
    if isinstance(dim, int):
        return None
    return dim or f"{info.name}:{axis}"


def dynamic_dims(inputs: Sequence[TensorInfo]) -> list[DynamicDim]:
    """Every distinct dynamic dim of the tensor inputs, with what its name or position says it is."""
    found: dict[str, DynamicDim] = {}
    for info in inputs:
        shape = info.shape or ()
        image = info.dtype.startswith("float") and len(shape) == 4 and shape[1] in (1, 3, 4)
        for axis in range(len(shape)):
            key = dim_key(info, axis)
            if key is None or key in found:
                continue
            name = str(shape[axis] or "")
            if (axis == 0 and len(shape) > 1) or _BATCH.search(name):
                kind = DimKind.BATCH
            elif (image and axis >= 2) or _SPATIAL.search(name):
                kind = DimKind.SPATIAL
            elif _SEQUENCE.search(name):
                kind = DimKind.SEQUENCE
            else:
                kind = DimKind.OTHER
            found[key] = DynamicDim(key, kind)
    return list(found.values())


def sizes_in(message: str) -> list[int]:
    """Sizes a failing node's message names, in order of appearance, each once."""
    numbers = (int(n) for n in re.findall(r"(?<![\w.])(\d+)(?![\w.])", message))
    return list(dict.fromkeys(n for n in numbers if n in _MESSAGE_SIZES))


def candidate_assignments(
    dims: Sequence[DynamicDim], first: Assignment, failure: str
) -> Iterator[Assignment]:
    """Assignments to try after ``first`` failed with ``failure``; each differs from all before it."""
    movable = [d for d in dims if d.kind is not DimKind.BATCH]
    if not movable:
        return
    seen = [dict(first)]

    def fresh(update: Mapping[str, int]) -> Assignment | None:
        assignment = {**first, **update}
        if assignment in seen:
            return None
        seen.append(assignment)
        return assignment

    named = sizes_in(failure)
    groups = {kind: [d.key for d in movable if d.kind is kind] for kind in DimKind}
    proposals: list[Mapping[str, int]] = []
    for size in named:  # the message's sizes: for all movable dims, then one dim at a time
        proposals.append({d.key: size for d in movable})
        proposals.extend({d.key: size} for d in movable)
    for kind, sizes in ((DimKind.SPATIAL, SPATIAL_SIZES), (DimKind.SEQUENCE, SEQUENCE_SIZES)):
        proposals.extend({key: size for key in groups[kind]} for size in sizes if groups[kind])
    others = groups[DimKind.OTHER]
    proposals.extend({key: size for key in others} for size in SEQUENCE_SIZES if others)
    for proposal in proposals:
        assignment = fresh(proposal)
        if assignment is not None:
            yield assignment


def shapes_for(
    inputs: Sequence[TensorInfo], base: Mapping[str, tuple[int, ...]], assignment: Mapping[str, int]
) -> dict[str, tuple[int, ...]]:
    """``base`` shapes with every dynamic dim set as ``assignment`` says."""
    shapes = {}
    for info in inputs:
        if info.name not in base:
            continue
        dims = list(base[info.name])
        for axis in range(min(len(dims), len(info.shape or ()))):
            key = dim_key(info, axis)
            if key is not None and key in assignment:
                dims[axis] = assignment[key]
        shapes[info.name] = tuple(dims)
    return shapes


def assignment_of(inputs: Sequence[TensorInfo], shapes: Mapping[str, tuple[int, ...]]) -> Assignment:
    """The dynamic dims' sizes in ``shapes`` (the synthesizer's first guess)."""
    found: Assignment = {}
    for info in inputs:
        for axis, size in enumerate(shapes.get(info.name, ())):
            key = dim_key(info, axis) if axis < len(info.shape or ()) else None
            if key is not None:
                found.setdefault(key, size)
    return found


def probe_shapes(
    inputs: Sequence[TensorInfo], base: Mapping[str, tuple[int, ...]], failure: str, runs: Runs
) -> Probed:
    """Shapes FP32 runs on, after ``base`` failed with ``failure``; :class:`ModelError` if none does."""
    dims = dynamic_dims(inputs)
    tried = 0
    for assignment in candidate_assignments(dims, assignment_of(inputs, base), failure):
        if tried == MAX_PROBES:
            break
        tried += 1
        shapes = shapes_for(inputs, base, assignment)
        if runs(shapes) is None:
            note = (
                f"synthetic inputs: {_described(shapes)}, found by probing {tried} shape(s) after FP32 "
                f"failed on {_described(base)}: {failure}"
            )
            return Probed(shapes, note)
    what = (
        f"{tried} other shape(s) of its dynamic dims"
        if tried
        else "no other shape (no dynamic dim left to vary)"
    )
    raise ModelError(
        f"the FP32 model fails on its synthetic inputs {_described(base)} ({failure}) and on {what}; "
        "provide a <stem>.samples.npz beside the model or set accuracy.input_shapes"
    )


def _described(shapes: Mapping[str, tuple[int, ...]]) -> str:
    return ", ".join(f"{name}{list(shape)}" for name, shape in shapes.items())
