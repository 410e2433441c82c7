"""``dqd report --out DIR``: the report as static files (index.html, models/<id>.html)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from dqd.api.report_pages import render_index, render_model
from dqd.catalog import Catalog
from dqd.fileperms import make_shared
from dqd.pathtext import for_display
from dqd.scratchnames import TMP_SUFFIX


def _write(path: Path, text: str) -> None:
    # Written beside the target and renamed: a browser never sees a half-written page.
    # Never world-writable, even under umask 000: others could swap the pages.
    path.parent.mkdir(mode=0o775, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(for_display(text))  # a file name that is not UTF-8 shows as caf\xe9.onnx
        # mkstemp makes the file 0600: a web server running as another user would get 403.
        make_shared(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export_report(catalog: Catalog, out_dir: Path) -> int:
    """Write every page; returns how many were written."""
    _write(out_dir / "index.html", render_index(catalog))
    ids = [m.path_id for m in catalog.list_models().items]
    for path_id in ids:
        _write(out_dir / "models" / f"{path_id}.html", render_model(catalog, path_id))
    return 1 + len(ids)
