"""A UTF-8 path for a model whose own path is not valid UTF-8.

onnx's checker and onnxruntime take a model's path as a UTF-8 string: given
a name that holds a byte that is not UTF-8 (``caf\\xe9.onnx``, which Python
holds as a lone surrogate) they refuse it before reading a byte. The engine
hands them a view instead: a private folder on the output volume holding a
symlink to the model under a UTF-8 name, and its external-data files beside
it, so they resolve as they would beside the model. Data files are copies:
onnx's checker refuses an external-data file that is a symlink or has
several hard links (its guard against link attacks). Only such a model pays
for the copy.
Everything else (hashing, samples, records) keeps the real path.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dqd.modelfile import external_data_locations
from dqd.pathtext import for_tools
from dqd.pipeline.quantize import OutputDirError
from dqd.scratch import writer_tag
from dqd.scratchnames import WORK_PREFIX


def is_utf8(path: Path) -> bool:
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@contextmanager
def readable_path(path: Path, scratch_parent: Path) -> Iterator[Path]:
    """``path`` itself when it is valid UTF-8, else a view of it (see the module docstring) in a
    folder made under ``scratch_parent``, removed on exit. ``path`` is absolute.

    :class:`OutputDirError` when the view cannot be written.
    """
    if is_utf8(path):
        yield path
        return
    try:
        scratch_parent.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=WORK_PREFIX + writer_tag(), dir=scratch_parent))
    except OSError as exc:
        raise OutputDirError(scratch_parent, exc) from exc
    try:
        link = folder / for_tools(path.name)
        link.symlink_to(path)
        for location in external_data_locations(path):
            _place(path.parent / location, folder / location)
        yield link
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _place(data: Path, target: Path) -> None:
    """A copy of ``data`` at ``target``; a missing or unreadable file is left to preflight to report."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data, target)
    except OSError as exc:
        if exc.filename == str(data):  # the source's problem, not the output volume's
            return
        raise OutputDirError(target.parent, exc) from exc
