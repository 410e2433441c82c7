"""Inputs for the accuracy gate and the benchmark: real samples beside the model, else synthesized ones.

Samples: ``<stem>.samples.npz`` (keys are input names, one feed) or a folder
``<stem>.samples/`` of such files.  Synthesis follows the signature: symbolic
dims from configuration or defaults, integer ids below the table they index,
masks of ones, state inputs zeroed, a fixed seed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dqd.domain import InputSource
from dqd.errors import ModelError
from dqd.pathtext import fits
from dqd.records import GraphSummary, TensorInfo
from dqd.settings import AccuracySettings

Feed = dict[str, np.ndarray]

# Integer inputs we cannot trace to a table: small non-negative values are valid
# for one-hot depths, byte vocabularies and class ids alike.
UNKNOWN_INT_HIGH = 256
# Spatial dims of image-like inputs: a multiple of 32 so strided CNNs with
# skip connections (detectors, U-Nets) line up, and large enough to be representative.
IMAGE_SIDE = 224
# One feed of synthetic inputs at most: real models' inputs at the default shapes take megabytes.
SYNTHETIC_BYTES_MAX = 1 << 30
_MASK = re.compile(r"mask", re.IGNORECASE)
_STATE = re.compile(r"(^|[_./])(state|h0|c0)$|past_key|past_value|cache", re.IGNORECASE)
_POSITION = re.compile(r"position", re.IGNORECASE)


@dataclass(frozen=True)
class InputSet:
    source: InputSource
    feeds: tuple[Feed, ...]
    description: str


def samples_location(model_path: Path) -> Path | None:
    stem = model_path.with_suffix("")
    for candidate in (stem.with_name(stem.name + ".samples.npz"), stem.with_name(stem.name + ".samples")):
        if fits(candidate) and candidate.exists():
            return candidate
    return None


def load_samples(
    model_path: Path, inputs: Sequence[TensorInfo], required: Collection[str] | None = None
) -> InputSet | None:
    """The real inputs beside the model, or None; a malformed file is a :class:`ModelError`.

    ``required``: the inputs each file must hold (default: all; a decoder's prompt: its input_ids).
    """
    location = samples_location(model_path)
    if location is None:
        return None
    files = sorted(location.glob("*.npz")) if location.is_dir() else [location]
    if not files:
        raise ModelError(f"samples folder {location} holds no .npz files", path=str(model_path))
    feeds = tuple(_read_feed(file, inputs, required) for file in files)
    return InputSet(InputSource.SAMPLES, feeds, f"{len(feeds)} feed(s) from {location.name}")


def _read_feed(file: Path, inputs: Sequence[TensorInfo], required: Collection[str] | None) -> Feed:
    try:
        with np.load(file, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read samples file {file}: {exc}", path=str(file)) from exc
    names = set(required) if required is not None else {i.name for i in inputs}
    missing = sorted(names - arrays.keys())
    if missing:
        raise ModelError(
            f"samples file {file.name} lacks input(s) {', '.join(missing)}; "
            "its keys must be the model's input names",
            path=str(file),
        )
    return {
        i.name: arrays[i.name].astype(i.dtype, copy=False) for i in inputs if i.is_tensor and i.name in arrays
    }


def synthesize_inputs(
    summary: GraphSummary,
    *,
    batch: int,
    default_dim: int,
    distribution: str = "normal",
    seed: int = 0,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
) -> InputSet:
    """One seeded feed that respects the signature; see the module docstring for the rules."""
    rng = np.random.default_rng(seed)
    shapes = resolve_shapes(
        summary.inputs, batch=batch, default_dim=default_dim, overrides=input_shapes or {}
    )
    _check_size(summary, shapes)
    output_names = [o.name for o in summary.outputs]
    feed: Feed = {}
    for info in summary.inputs:
        if not info.is_tensor:
            raise ModelError(
                f"input {info.name!r} is a {info.dtype}, not a tensor: provide samples", path=summary.path
            )
        shape = shapes[info.name]
        feed[info.name] = synthesize_tensor(
            info,
            shape,
            rng,
            distribution=distribution,
            vocab=summary.vocab_sizes.get(info.name),
            is_state=is_state_input(info.name, output_names),
        )
    notes = ", ".join(f"{name}{list(shape)}" for name, shape in shapes.items())
    return InputSet(InputSource.SYNTHETIC, (feed,), f"synthetic seed={seed} {distribution}: {notes}")


def _check_size(summary: GraphSummary, shapes: Mapping[str, tuple[int, ...]]) -> None:
    """A :class:`ModelError` before allocating inputs larger than ``SYNTHETIC_BYTES_MAX``: a shape
    declared huge (``[1000000000, 8]``) would otherwise end in a MemoryError or the memory limit."""
    sizes = {
        info.name: math.prod(shapes[info.name]) * _itemsize(info.dtype)
        for info in summary.inputs
        if info.is_tensor and info.name in shapes
    }
    total = sum(sizes.values())
    if total > SYNTHETIC_BYTES_MAX:
        declared = ", ".join(f"{name}{list(shapes[name])}" for name in sizes)
        raise ModelError(
            f"the inputs' declared shapes need {total / 2**30:.1f} GiB of synthetic data ({declared}), "
            f"more than dqd synthesizes ({SYNTHETIC_BYTES_MAX / 2**30:.0f} GiB): set accuracy.input_shapes "
            "in a <stem>.dqd.toml, or provide a <stem>.samples.npz",
            path=summary.path,
        )


def _itemsize(dtype: str) -> int:
    try:
        return np.dtype(dtype).itemsize
    except TypeError:  # not a numpy type (string tensors...): synthesis says so itself
        return 0


def resolve_shapes(
    inputs: Sequence[TensorInfo], *, batch: int, default_dim: int, overrides: Mapping[str, Sequence[int]]
) -> dict[str, tuple[int, ...]]:
    """Concrete shapes; the same symbolic name gets the same size in every input (``sequence``)."""
    symbols: dict[str, int] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    for info in inputs:
        if info.name in overrides:
            shapes[info.name] = tuple(int(d) for d in overrides[info.name])
            for dim, size in zip(info.shape or (), shapes[info.name], strict=False):
                if isinstance(dim, str):
                    symbols.setdefault(dim, size)
    for info in inputs:
        if info.name in shapes or info.shape is None:
            continue
        image = _is_image_like(info)
        dims = []
        for axis, dim in enumerate(info.shape):
            if isinstance(dim, int):
                dims.append(dim)
                continue
            guess = (
                batch
                if axis == 0 and len(info.shape) > 1
                else IMAGE_SIDE
                if image and axis >= 2
                else default_dim
            )
            size = symbols.setdefault(dim, guess) if dim else guess
            dims.append(size)
        shapes[info.name] = tuple(dims)
    return shapes


def _is_image_like(info: TensorInfo) -> bool:
    shape = info.shape or ()
    return info.dtype.startswith("float") and len(shape) == 4 and shape[1] in (1, 3, 4)


def is_state_input(name: str, output_names: Sequence[str]) -> bool:
    """Recurrent state fed back between calls: named so, or echoed by an output (``state`` → ``stateN``)."""
    if _STATE.search(name):
        return True
    return any(out != name and out.startswith(name) and len(out) - len(name) <= 4 for out in output_names)


def synthesize_tensor(
    info: TensorInfo,
    shape: tuple[int, ...],
    rng: np.random.Generator,
    *,
    distribution: str = "normal",
    vocab: int | None = None,
    is_state: bool = False,
) -> np.ndarray:
    dtype = np.dtype(info.dtype)
    if is_state:
        return np.zeros(shape, dtype=dtype)
    if dtype == np.bool_:
        # A comparison on a 0-d draw yields a numpy scalar, which onnxruntime refuses as a feed.
        return np.asarray(rng.random(shape) < 0.5)
    if np.issubdtype(dtype, np.integer):
        if _MASK.search(info.name):
            return np.ones(shape, dtype=dtype)
        if _POSITION.search(info.name) and shape:
            return np.broadcast_to(np.arange(shape[-1], dtype=dtype), shape).copy()
        high = vocab if vocab else UNKNOWN_INT_HIGH
        if np.issubdtype(dtype, np.unsignedinteger) or dtype.itemsize < 8:
            high = min(high, int(np.iinfo(dtype).max) + 1)
        return rng.integers(0, max(1, high), size=shape).astype(dtype)
    if np.issubdtype(dtype, np.floating):
        if distribution == "uniform":
            values = rng.uniform(-1.0, 1.0, size=shape)
        else:
            values = rng.standard_normal(size=shape)
        return values.astype(dtype)
    raise ModelError(
        f"input {info.name!r} has dtype {info.dtype}, which dqd cannot synthesize: provide samples"
    )


def synthesize_from_settings(
    summary: GraphSummary, accuracy: AccuracySettings, *, default_dim: int | None = None
) -> InputSet:
    """Synthetic inputs as the accuracy settings describe them (``default_dim`` may be probed larger)."""
    return synthesize_inputs(
        summary,
        batch=accuracy.synthetic_batch,
        default_dim=default_dim or accuracy.default_dim,
        distribution=accuracy.float_distribution,
        seed=accuracy.seed,
        input_shapes=accuracy.input_shapes,
    )


def gather_input_sets(
    model_path: Path,
    summary: GraphSummary,
    accuracy: AccuracySettings,
    required: Collection[str] | None = None,
) -> list[InputSet]:
    """Samples first when present (they decide the gate); synthetic inputs are always evaluated too."""
    synthetic = synthesize_from_settings(summary, accuracy)
    samples = load_samples(model_path, summary.inputs, required)
    return [samples, synthetic] if samples is not None else [synthetic]
