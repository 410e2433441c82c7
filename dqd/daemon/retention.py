"""``dqd gc`` and the daily sweep: remove what the catalog no longer needs (rules in :mod:`dqd.retention`).

Only files the catalog recorded as variants are candidates (a walk of
``output_dir`` could meet a user's file); published copies of models deleted
from the watched folder go too when ``retention.unpublish_removed`` is set and
no mass-removal guard is active. A variant's model file is removed before its
data, so a reader that finds the model finds its data. A job that starts in
the instant between the last running-job check and the unlink could lose a
file it found: the check is repeated per content just before removing.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from dqd import metrics
from dqd.catalog import Catalog
from dqd.daemon.provenance import provenance_path
from dqd.errors import CatalogError, ModelError
from dqd.modelfile import model_files, own_data_file
from dqd.retention import Kept, variant_verdict
from dqd.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Removed:
    path: str
    bytes: int
    kind: str  # variant | published


@dataclass
class GcReport:
    dry_run: bool
    removed: list[Removed] = field(default_factory=list)
    kept: Counter[str] = field(default_factory=Counter)  # variant files kept, by Kept reason
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def bytes_freed(self) -> int:
        return sum(r.bytes for r in self.removed)


def collect_garbage(
    catalog: Catalog, settings: Settings, *, dry_run: bool = False, now: float | None = None
) -> GcReport:
    """Remove (or with ``dry_run`` list) what retention allows; raises CatalogError."""
    now = time.time() if now is None else now
    report = GcReport(dry_run=dry_run)
    view = catalog.retention_view()
    output_dir = Path(settings.output_dir).resolve()
    root = Path(settings.watch_dir).resolve()
    sources = frozenset((root / rel).resolve() for rel in view.sources)
    selected = frozenset(Path(p).resolve() for p in view.selected)
    for recorded, contents in sorted(view.variant_files.items()):
        path = Path(recorded).resolve()
        files = _files(path)
        if not files:
            continue  # removed earlier, by a gc or by hand
        verdict = variant_verdict(
            path,
            output_dir=output_dir,
            sources=sources,
            selected=selected,
            busy=bool(contents & view.busy),
            age_seconds=now - max(_mtime(f) for f in files),
            keep_days=settings.retention.keep_days,
        )
        if verdict is not None:
            report.kept[verdict.value] += 1
            continue
        if not dry_run and catalog.running_contents(contents):
            report.kept[Kept.BUSY.value] += 1  # a job started since the catalog was read
            continue
        _remove(files, "variant", report, stop_at=output_dir)
    if settings.retention.unpublish_removed and settings.publish_dir is not None:
        _unpublish_removed(view.removed_models, view.removal_blocks, Path(settings.publish_dir), report)
    if not dry_run:
        metrics.GC_BYTES_FREED.inc(report.bytes_freed)
    return report


def _unpublish_removed(
    removed_models: tuple[str, ...], blocks: tuple[str, ...], publish_dir: Path, report: GcReport
) -> None:
    if blocks:
        report.notes.append(
            "published files of removed models kept: the mass-removal guard is active for "
            f"{', '.join(blocks)} (see `dqd status`; `dqd prune` confirms the removals)"
        )
        return
    if not removed_models or not publish_dir.is_dir():
        return
    for class_dir in sorted(p for p in publish_dir.iterdir() if p.is_dir()):
        for rel in removed_models:
            target = class_dir / rel
            files = _files(target)
            if files:
                _remove([*files, *_existing(provenance_path(target))], "published", report, stop_at=class_dir)


def _remove(files: list[Path], kind: str, report: GcReport, *, stop_at: Path) -> None:
    """Remove ``files`` in order (the model first); record what went and what could not."""
    for file in files:
        try:
            size = file.stat().st_size
            if not report.dry_run:
                file.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            report.errors.append(f"{file}: {exc.strerror or exc}")
            logger.warning("gc could not remove %s: %s", file, exc, extra={"action": "gc_failed"})
            return  # keep the rest: a model must not lose its data while its file stays
        report.removed.append(Removed(str(file), size, kind))
    if not report.dry_run:
        _prune_empty_folders(files[0].parent, stop_at)
        logger.info(
            "gc removed %s", files[0], extra={"action": "gc_removed", "path": str(files[0]), "kind": kind}
        )


def _files(model: Path) -> list[Path]:
    """The model file and its data files, those that exist; [] when the model file is gone."""
    if not model.is_file():
        return []
    try:
        return model_files(model)
    except ModelError:  # a data file already missing: remove what is left
        return [model, *_existing(own_data_file(model))]


def _existing(path: Path) -> list[Path]:
    return [path] if path.is_file() else []


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _prune_empty_folders(folder: Path, stop_at: Path) -> None:
    while folder != stop_at and folder.is_relative_to(stop_at):
        try:
            folder.rmdir()
        except OSError:
            return  # not empty (or not ours): stop
        folder = folder.parent


class RetentionSweep:
    """The daily sweep (``retention.sweep``): :func:`collect_garbage` at ``retention.sweep_cron``."""

    def __init__(self, catalog: Catalog, settings: Settings) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        from dqd.daemon.scheduler import cron_trigger

        self.catalog = catalog
        self.settings = settings
        self.scheduler = BackgroundScheduler(timezone=settings.schedule.timezone)
        self.trigger = cron_trigger(settings.retention.sweep_cron, settings.schedule.timezone)

    def start(self) -> None:
        self.scheduler.add_job(self.sweep, self.trigger, id="retention-sweep", coalesce=True, max_instances=1)
        self.scheduler.start()

    def sweep(self) -> GcReport | None:
        try:
            report = collect_garbage(self.catalog, self.settings)
        except (CatalogError, OSError) as exc:
            logger.error("retention sweep failed: %s", exc, extra={"action": "gc_failed"})
            return None
        logger.info(
            "retention sweep removed %d files, %d bytes",
            len(report.removed),
            report.bytes_freed,
            extra={"action": "gc_swept", "files": len(report.removed), "bytes": report.bytes_freed},
        )
        return report

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
