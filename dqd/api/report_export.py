"""``dqd report --out DIR``: the report as static files (index.html, models/<id>.html)."""

from __future__ import annotations

from pathlib import Path

from dqd.api.report_pages import render_index, render_model
from dqd.catalog import Catalog
from dqd.fileperms import write_text_shared
from dqd.pathtext import for_display


def _write(path: Path, text: str) -> None:
    # Never world-writable, even under umask 000: others could swap the pages; renamed into
    # place, so a browser never sees a half-written page.
    path.parent.mkdir(mode=0o775, parents=True, exist_ok=True)
    write_text_shared(path, for_display(text))  # a file name that is not UTF-8 shows as caf\xe9.onnx


def export_report(catalog: Catalog, out_dir: Path) -> int:
    """Write every page; returns how many were written."""
    _write(out_dir / "index.html", render_index(catalog))
    ids = [m.path_id for m in catalog.list_models().items]
    for path_id in ids:
        _write(out_dir / "models" / f"{path_id}.html", render_model(catalog, path_id))
    return 1 + len(ids)
