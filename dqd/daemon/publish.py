"""Publishing: the chosen model at a stable path a serving system can load.

``<publish_dir>/<host class>/<relative path>`` receives the selected variant,
or the FP32 original when it was kept (or there was nothing to do), written
under a temporary name and renamed into place so a reader never sees half a
file. Only the model's own files go with it: its external data, its own
``<stem>.*`` siblings (labels, tokenizer) but not its accuracy samples or its
``.dqd.toml`` sidecar, and in a Triton/OVMS layout
(``<repo>/<model>/<version>/model.onnx``) the version folder's contents and the
model folder's ``config.pbtxt``. Another model's files in the same folder are
never copied. :func:`publish_plan` says what goes where; :func:`apply_plan`
copies what is not there yet, so publishing again is cheap and idempotent.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from dqd.fileperms import make_shared
from dqd.modelfile import model_files
from dqd.scratch import publish_scratch_prefix
from dqd.scratchnames import PARTIAL_SUFFIXES, TMP_SUFFIX
from dqd.sidecar import SIDECAR_SUFFIX

_SKIP_SUFFIXES = (*PARTIAL_SUFFIXES, SIDECAR_SUFFIX, ".samples.npz")
TRITON_CONFIG = "config.pbtxt"
MTIME_SLACK_NS = 2_000_000_000  # filesystems that keep coarse mtimes (FAT: 2 s) still compare equal


@dataclass(frozen=True)
class Copy:
    source: Path
    target: Path


def publish_plan(
    chosen: Path, *, root: Path, rel_path: str, publish_dir: Path, host_class: str, include: list[str]
) -> list[Copy]:
    """The copies that publish ``chosen`` (a variant, or the original itself) for ``rel_path``.

    The model file comes last: it appears only once everything it needs is there.
    """
    source = root / rel_path
    target = publish_dir / host_class / rel_path
    originals = model_files(source)
    # A variant carries its own external data; the original's is the original's.
    data = originals[1:] if chosen == source else model_files(chosen)[1:]
    parts = Path(rel_path).parts
    triton = len(parts) >= 2 and parts[-2].isdigit()
    siblings = _version_folder(source, include) if triton else _stem_siblings(source, include)
    skip = {*originals, *data}
    copies = [Copy(f, target.parent / f.name) for f in siblings if f not in skip]
    if triton:
        config = source.parent.parent / TRITON_CONFIG
        if config.is_file():
            copies.append(Copy(config, target.parent.parent / TRITON_CONFIG))
    copies.extend(Copy(f, target.parent / f.relative_to(chosen.parent)) for f in data)
    copies.append(Copy(chosen, target))
    return copies


def _stem_siblings(source: Path, include: list[str]) -> list[Path]:
    """``<stem>.*`` beside the model: its data files, labels, tokenizer..."""
    stem = source.name.removesuffix(source.suffix)
    return [f for f in _files(source, include) if f.name.startswith(stem + ".")]


def _version_folder(source: Path, include: list[str]) -> list[Path]:
    """A Triton/OVMS version folder belongs to its model: everything in it but other models."""
    return _files(source, include)


def _files(source: Path, include: list[str]) -> list[Path]:
    """Files beside ``source`` that could be its own: not hidden or partial, not another model's."""
    entries = [e for e in sorted(source.parent.iterdir()) if e.is_file()]
    models = [e.name for e in entries if any(fnmatchcase(e.name, pattern) for pattern in include)]
    others = tuple(name + "." for name in models if name != source.name)
    found = []
    for entry in entries:
        name = entry.name
        if name.startswith(".") or name.endswith(_SKIP_SUFFIXES) or name in models:
            continue
        if others and name.startswith(others) and not name.startswith(source.name + "."):
            continue  # another model's data or labels (x.v2.onnx.data beside x.onnx)
        found.append(entry)
    return found


def is_current(copy: Copy) -> bool:
    """The target holds the source's bytes already, as far as size and mtime tell (copies keep mtime)."""
    try:
        src, dst = copy.source.stat(), copy.target.stat()
    except FileNotFoundError:
        return False
    if src.st_size != dst.st_size:
        return False
    if src.st_mtime_ns == dst.st_mtime_ns:
        return True
    # Within the slack: a coarse-mtime copy of this file, or another file of the same size made
    # moments later (two versions of a small model decided within a second): the bytes tell.
    return abs(src.st_mtime_ns - dst.st_mtime_ns) < MTIME_SLACK_NS and _same_bytes(copy.source, copy.target)


def _same_bytes(a: Path, b: Path) -> bool:
    # Not filecmp.cmp: it caches answers by (size, mtime), the very signature that is in doubt here,
    # and its cache grows for the daemon's lifetime.
    with a.open("rb") as left, b.open("rb") as right:
        while True:
            chunk = left.read(1 << 20)
            if chunk != right.read(1 << 20):
                return False
            if not chunk:
                return True


def apply_plan(plan: list[Copy]) -> int:
    """Copy what is not current yet, in order; how many files were copied (0: already published)."""
    copied = 0
    for copy in plan:
        if not is_current(copy):
            copy_atomic(copy.source, copy.target)
            copied += 1
    return copied


def copy_atomic(source: Path, target: Path) -> None:
    """Copy under a temporary name, readable as the umask allows (dqd.fileperms), then rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=publish_scratch_prefix(target.name), suffix=TMP_SUFFIX, dir=target.parent
    )
    try:
        with os.fdopen(fd, "wb") as out, source.open("rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        make_shared(tmp)
        st = source.stat()
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))  # what is_current compares
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
