"""How the command line names models in the catalog.

The daemon records a model by its path relative to the watched folder;
``dqd process`` may be given files anywhere, and those keep their absolute
path (the catalog's one mark of "outside the watched tree": the daemon never
queues, removes or publishes them).
"""

from __future__ import annotations

import os
from pathlib import Path


def catalog_path(path: Path, watch_dir: Path) -> str:
    """``path`` relative to the watched folder when inside it, else absolute (POSIX form)."""
    absolute = Path(os.path.abspath(path))
    for root, inside in (
        (Path(os.path.abspath(watch_dir)), absolute),
        (Path(watch_dir).resolve(), absolute.resolve()),  # either side may be reached through a symlink
    ):
        try:
            return inside.relative_to(root).as_posix()
        except ValueError:
            continue
    return absolute.as_posix()


def model_ref(ref: str, watch_dir: Path) -> str:
    """A model reference as the catalog knows it: a path to a file inside the watched folder becomes relative.

    ``models/m.onnx`` typed in the folder above the watched ``models`` names the file
    the catalog knows as ``m.onnx``. Anything else (a path relative to the watched
    folder, a file name, a stem, a sha256 prefix) is passed on as given.
    """
    if os.path.isabs(ref):
        return catalog_path(Path(ref), watch_dir)
    if os.path.isfile(ref):
        inside = catalog_path(Path(ref), watch_dir)
        if not os.path.isabs(inside):
            return inside
    return ref
