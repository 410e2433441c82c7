"""A large model saved, and its tensors read, one tensor at a time: never all its weights in memory.

``onnx.save_model`` writes external data only from tensors held in memory, so
every save of a model would load its weights first. A large model here stays
a graph of references instead (``onnx.load(..., load_external_data=False)``);
:func:`save_streaming` copies each referenced tensor's bytes from the file it
lives in to the saved model's one data file (``<name>.data``), and writes out
the tensors the graph itself holds.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import onnx
from onnx import ModelProto, TensorProto
from onnx.external_data_helper import load_external_data_for_tensor, uses_external_data

from dqd.modelfile import own_data_file
from dqd.onnxgraph import all_tensors

INLINE_LIMIT = 1024  # bytes: smaller tensors stay in the graph (onnx's own size_threshold)
_CHUNK = 16 * 2**20
_ANY_TENSOR_LIMIT = 4096
_INTEGER_LIMIT = 2**20
_INTEGER_TYPES = {
    TensorProto.INT64,
    TensorProto.INT32,
    TensorProto.INT16,
    TensorProto.INT8,
    TensorProto.UINT64,
    TensorProto.UINT32,
    TensorProto.UINT16,
    TensorProto.UINT8,
    TensorProto.BOOL,
}


def save_streaming(
    model: ModelProto, path: Path, folders: Sequence[Path], *, name_by_content: bool = False
) -> None:
    """Save ``model`` at ``path``, every tensor of :data:`INLINE_LIMIT` bytes or more in one data file.

    A tensor that is already external is copied from the first of ``folders``
    holding its file (the folder of the model it was loaded from, for instance);
    one the graph holds is written out and dropped from the graph. ``model`` is
    changed to describe what was saved. The data file is ``<name>.data``, or with
    ``name_by_content`` ``<stem>.<digest of its bytes>.data``: a published new
    version's data then never lands on the name an older published model still
    reads (its ``.onnx`` is replaced last, atomically, so a reader sees the old
    pair or the new pair). It is written under another name first: a folder's old
    data file may be one of the sources.
    """
    partial = path.with_name(own_data_file(path).name + ".partial")
    digest = hashlib.sha256()
    written: list[tuple[TensorProto, int, int]] = []
    with open(partial, "wb") as out:
        for tensor in all_tensors(model):
            offset = out.tell()
            if uses_external_data(tensor):
                length = _copy_external(tensor, folders, out, digest)
            elif tensor.HasField("raw_data") and len(tensor.raw_data) >= INLINE_LIMIT:
                length = out.write(tensor.raw_data)
                digest.update(tensor.raw_data)
                tensor.ClearField("raw_data")
            else:
                continue
            written.append((tensor, offset, length))
    data = (
        path.with_name(f"{path.stem}.{digest.hexdigest()[:16]}.data")
        if name_by_content
        else own_data_file(path)
    )
    for tensor, offset, length in written:
        _point_at(tensor, data.name, offset, length)
    os.replace(partial, data)
    onnx.save_model(model, str(path))


def inline_small_tensors(model: ModelProto, folder: Path) -> None:
    """Load into the graph the external tensors shape inference reads by value: integer tensors
    under 1 MiB (shapes, axes, indices) and any tensor under 4 KiB (a Resize's scales); float
    weights stay on disk. ``folder``: the model's."""
    for tensor in all_tensors(model):
        if not uses_external_data(tensor):
            continue
        size = _stored_length(tensor, folder)
        if size < _ANY_TENSOR_LIMIT or (tensor.data_type in _INTEGER_TYPES and size < _INTEGER_LIMIT):
            load_external_data_for_tensor(tensor, str(folder))


def _copy_external(tensor: TensorProto, folders: Sequence[Path], out: BinaryIO, digest: hashlib._Hash) -> int:
    """Append ``tensor``'s stored bytes to ``out`` and ``digest``; return how many."""
    entries = _entries(tensor)
    source = _find(entries["location"], folders, tensor.name)
    offset = int(entries.get("offset", 0))
    remaining = int(entries["length"]) if "length" in entries else source.stat().st_size - offset
    copied = 0
    with open(source, "rb") as stored:
        stored.seek(offset)
        while remaining > 0:
            chunk = stored.read(min(_CHUNK, remaining))
            if not chunk:
                raise ValueError(f"tensor {tensor.name!r}: {source.name} ends before its data does")
            out.write(chunk)
            digest.update(chunk)
            remaining -= len(chunk)
            copied += len(chunk)
    return copied


def _stored_length(tensor: TensorProto, folder: Path) -> int:
    entries = _entries(tensor)
    if "length" in entries:
        return int(entries["length"])
    return _find(entries["location"], [folder], tensor.name).stat().st_size - int(entries.get("offset", 0))


def _entries(tensor: TensorProto) -> dict[str, str]:
    return {entry.key: entry.value for entry in tensor.external_data}


def _find(location: str, folders: Sequence[Path], name: str) -> Path:
    """The file ``location`` names in the first of ``folders`` that has it; a location that would
    leave its folder is refused (preflight refuses such a model before it gets here)."""
    relative = PurePosixPath(location)
    if relative.is_absolute() or ".." in relative.parts:
        raise ValueError(f"tensor {name!r}: external data location {location!r} leaves the model's folder")
    for folder in folders:
        candidate = folder / relative
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"tensor {name!r}: external data file {location!r} is in none of {list(folders)}")


def _point_at(tensor: TensorProto, location: str, offset: int, length: int) -> None:
    del tensor.external_data[:]
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
