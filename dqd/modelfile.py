"""A model's identity: its ``.onnx`` file and the external-data files its graph references are one unit.

:func:`content_sha256` is the one definition of a model version's sha256,
used by the daemon (reconciliation, the watcher, ``dqd enqueue``) and the
engine (``dqd process``, the worker's check that a job's file is unchanged),
so both sides always agree. For a model without external data it is the
plain sha256 of the file, so catalogs recorded before stay valid; with
external data, each data file's relative name and bytes follow the model's
bytes in the same digest, so changing only ``x.onnx.data`` is a new version.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError
from onnx import TensorProto

from dqd.errors import ModelError
from dqd.onnxgraph import all_tensors

HASH_CHUNK = 1 << 20
# Every external-data entry carries this key; a file without these bytes has none,
# which spares parsing (and holding in memory) a large self-contained model.
_LOCATION_KEY = b"location"


def content_sha256(path: Path) -> str:
    """The sha256 of the model as a unit (see the module docstring); OSError when unreadable."""
    digest = hashlib.sha256()
    mentions_location = _stream(path, digest)
    for rel in _parse_locations(path) if mentions_location else []:
        digest.update(b"\0" + rel.encode() + b"\0")  # the name too: pointing at another file is a change
        _stream(_data_file(path, rel), digest)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """The sha256 of one file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def model_files(path: Path) -> list[Path]:
    """The model file, then the external-data files it references (sorted); ModelError if one is missing."""
    return [path, *(_data_file(path, rel) for rel in external_data_locations(path))]


def own_data_file(path: Path) -> Path:
    """Where dqd writes the external data of a model saved at ``path``: ``<name>.data``, like onnxruntime."""
    return path.with_name(path.name + ".data")


def unit_stat(path: Path) -> tuple[int, int]:
    """(total size, newest mtime_ns) over the model's files: any write to any of them changes it."""
    return files_stat(model_files(path))


def files_stat(files: list[Path]) -> tuple[int, int]:
    """(total size, newest mtime_ns) of ``files``, as :func:`unit_stat` reports them."""
    stats = [file.stat() for file in files]
    return sum(st.st_size for st in stats), max(st.st_mtime_ns for st in stats)


def external_data_locations(path: Path) -> list[str]:
    """Relative locations of the model's external-data files: unique, sorted."""
    return _parse_locations(path) if _stream(path, None) else []


def _parse_locations(path: Path) -> list[str]:
    """The graph's external-data locations (initializers and Constant-node tensors, subgraphs included).

    Locations that would leave the model's folder are left out: they are never
    read (a hostile ``/dev/zero`` would hang the hash), and preflight refuses
    the model with a recorded reason. A file that does not parse as ONNX has
    none: the engine records why it is not a model.
    """
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeWarning, ValueError):
        return []
    base = path.parent.resolve()
    found = set()
    for tensor in all_tensors(model):
        if tensor.data_location != TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        if location and (base / location).resolve().is_relative_to(base):
            found.add(location)
    return sorted(found)


def _data_file(path: Path, rel: str) -> Path:
    data = path.parent / rel
    if not data.is_file():
        # Not permanent: the data file is often copied in after the model.
        raise ModelError(
            f"external data file {rel!r} referenced by {path.name} is missing",
            path=str(path),
            permanent=False,
        )
    return data


def _stream(path: Path, digest: hashlib._Hash | None) -> bool:
    """Feed the file to ``digest`` (if any); whether its bytes contain the external-data location key.

    Reading is constant-memory, unlike parsing: a large self-contained model is never parsed.
    """
    found = False
    tail = b""
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            if digest is not None:
                digest.update(chunk)
            # The previous chunk's tail goes along: the key may straddle two chunks.
            found = found or _LOCATION_KEY in tail + chunk
            tail = chunk[1 - len(_LOCATION_KEY) :]
    return found
