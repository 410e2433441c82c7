"""Publishing: the chosen model at a stable path a serving system can load.

``<publish_dir>/<host class>/<relative path>`` receives the selected variant,
or the FP32 original when it was kept (or there was nothing to do), written
under a temporary name and renamed into place so a reader never sees half a
file. Files beside the model (``config.pbtxt``, labels, external data of the
original) are copied along; in a Triton/OVMS layout
(``<repo>/<model>/<version>/model.onnx``) the model folder's own files, such
as ``config.pbtxt``, come along too.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from fnmatch import fnmatchcase
from pathlib import Path

from dqd.daemon.filters import SIDECAR_SUFFIX
from dqd.domain import EngineResult, Outcome

logger = logging.getLogger(__name__)

_SKIP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", SIDECAR_SUFFIX)


def chosen_file(result: EngineResult, source: Path) -> Path | None:
    """The file to publish for ``result``; None when nothing should be served (errors)."""
    if result.outcome is Outcome.ERROR:
        return None
    if result.selected is not None:
        for variant in result.variants:
            if variant.spec == result.selected and variant.output_path:
                return Path(variant.output_path)
        logger.warning("selected variant of %s has no file; publishing the original", source)
    return source


def copy_atomic(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, source.open("rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        shutil.copymode(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _siblings(folder: Path, model_name: str, include: list[str]) -> list[Path]:
    files = []
    for entry in sorted(folder.iterdir()):
        name = entry.name
        if not entry.is_file() or name.startswith(".") or name.endswith(_SKIP_SUFFIXES):
            continue
        if any(fnmatchcase(name, pattern) for pattern in include):
            continue  # another model, published on its own
        if name.startswith(Path(model_name).stem + ".samples"):
            continue  # accuracy samples are inputs to dqd, not to the server
        files.append(entry)
    return files


def publish_result(
    result: EngineResult,
    *,
    root: Path,
    rel_path: str,
    publish_dir: Path,
    host_class: str,
    include: list[str],
) -> Path | None:
    source = root / rel_path
    chosen = chosen_file(result, source)
    if chosen is None:
        return None
    target = publish_dir / host_class / rel_path
    is_variant = chosen != source
    for sibling in _siblings(source.parent, source.name, include):
        if is_variant and sibling.name.startswith(source.name + "."):
            continue  # the original's external data: the variant carries its own
        copy_atomic(sibling, target.parent / sibling.name)
    if source.parent.name.isdigit() and source.parent != root:
        # Triton/OVMS version folder: config.pbtxt and friends live one level up.
        for sibling in _siblings(source.parent.parent, "", include):
            copy_atomic(sibling, target.parent.parent / sibling.name)
    if is_variant:
        # A variant saved with external data keeps it beside itself under its own name.
        for data in chosen.parent.glob(chosen.name + ".*"):
            if data.is_file() and not data.name.endswith(".tmp"):
                copy_atomic(data, target.parent / data.name)
    copy_atomic(chosen, target)  # last: the model appears only when everything it needs is there
    logger.info(
        "published %s for %s",
        rel_path,
        host_class,
        extra={
            "action": "published",
            "path": rel_path,
            "target": str(target),
            "outcome": result.outcome.value,
        },
    )
    return target
