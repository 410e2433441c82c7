"""Registering files with the catalog, and the reconciliation scan.

``register`` hashes one complete model (its file and external-data files as
one unit, :func:`dqd.modelfile.content_sha256`), records what the path holds
now and queues the content for every host class with live hosts.
The default idempotency key (content, class) means the same content at a
second path reuses the work already done. ``scan`` walks the whole tree at
start-up and periodically: anything new or changed since the catalog last
saw it is registered, paths that disappeared are marked removed, so files
dropped while dqd was down, or events lost while the catalog was
unreachable, are never missed. The scan defers to the watcher's settle
tracker for files it is waiting for (still open for writing), and removals
go through :mod:`dqd.daemon.removal_guard`: a scan that would remove too
much at once removes nothing and records a removal block instead.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path, PurePosixPath

from dqd.catalog import Catalog
from dqd.daemon.filters import Kind, PathFilter
from dqd.daemon.removal_guard import removal_block_reason
from dqd.daemon.settle import Stat
from dqd.domain import JobKind, ModelPath
from dqd.errors import ModelError
from dqd.modelfile import content_sha256, files_stat, model_files, unit_stat

logger = logging.getLogger(__name__)


class FileBusy(Exception):
    """The file changed while it was being hashed: it is still being written."""


class SkipReason(StrEnum):
    """Why registering a file recorded no model version."""

    REFUSED = "refused"  # not taken (a link out of the tree, a FIFO, unreadable...): recorded with why
    NOT_A_MODEL = "not a model"  # ignored or a companion file


@dataclass
class Registration:
    rel_path: str
    sha256: str | None = None
    queued_classes: list[str] = field(default_factory=list)
    skip: SkipReason | None = None
    skipped: str = ""  # ``skip`` in words, for people


@dataclass
class ScanSummary:
    seen: int = 0
    registered: int = 0
    queued: int = 0
    removed: int = 0
    refused: int = 0
    pending: int = 0
    errors: int = 0
    blocked: str = ""  # why removals were held back (see removal_guard)


class Reconciler:
    def __init__(
        self,
        catalog: Catalog,
        path_filter: PathFilter,
        *,
        host_class: str,
        host_ttl_seconds: float,
        max_attempts: int,
        settle_seconds: float,
        on_pending: Callable[[str], None] | None = None,
        is_pending: Callable[[str], bool] | None = None,
        held_open: Callable[[Path], bool] | None = None,
        host_id: str | None = None,
    ) -> None:
        """``is_pending``: the watcher is waiting for this file (the scan leaves it alone);
        ``held_open``: a local process holds it open for writing (native observer only)."""
        self.catalog = catalog
        self.filter = path_filter
        self.root = path_filter.root
        self.host_class = host_class
        self.host_ttl_seconds = host_ttl_seconds
        self.max_attempts = max_attempts
        self.settle_seconds = settle_seconds
        self.on_pending = on_pending
        self.is_pending = is_pending
        self.held_open = held_open
        self.host_id = host_id

    def target_classes(self) -> list[str]:
        classes = set(self.catalog.live_host_classes(self.host_ttl_seconds))
        classes.add(self.host_class)  # our own heartbeat may not be written yet
        return sorted(classes)

    def register(self, rel_path: str, expected: Stat | None = None) -> Registration:
        """Hash, record and queue one complete model (raises FileBusy, FileNotFoundError, CatalogError).

        ``expected``: the file's (size, mtime_ns) when it was found complete; if it changed since,
        it is being written again (FileBusy). A file that cannot be taken (a link out of the tree,
        not a regular file, unreadable, an external-data file missing) is recorded as refused
        with the reason; every scan looks at it again.
        """
        result = Registration(rel_path)
        absolute = self.root / rel_path
        verdict = self.filter.classify(absolute)
        if verdict.kind is Kind.REFUSED:
            return self._refuse(result, verdict.reason)
        if verdict.kind is not Kind.MODEL:
            result.skip, result.skipped = SkipReason.NOT_A_MODEL, verdict.reason or "not a model"
            return result
        try:
            # The unit's stat (data files included) is what the scan compares later.
            files = model_files(absolute)
            if expected is not None:
                st = os.stat(absolute)
                if (st.st_size, st.st_mtime_ns) != expected:
                    raise FileBusy(rel_path)
            before = files_stat(files)
            sha = content_sha256(absolute)
            size, mtime_ns = files_stat(files)
        except FileNotFoundError:
            raise  # gone again: the caller lets it go
        except ModelError as exc:  # an external-data file is missing (maybe not copied yet)
            return self._refuse(result, f"{exc}; checked again at each scan")
        except OSError as exc:
            reason = f"cannot read {exc.filename or rel_path}: {exc.strerror or exc}"
            return self._refuse(result, f"{reason}; checked again at each scan")
        if before != (size, mtime_ns):
            raise FileBusy(rel_path)
        observation = self.catalog.observe_file(rel_path, sha, size, mtime_ns)
        result.sha256 = sha
        for host_class in self.target_classes():
            job = self.catalog.enqueue(
                sha, host_class, kind=JobKind.QUANTIZE, source_path=rel_path, max_attempts=self.max_attempts
            )
            if job is not None:
                result.queued_classes.append(host_class)
                logger.info(
                    "queued %s for %s",
                    rel_path,
                    host_class,
                    extra={"action": "job_queued", "job_id": job.id, "path": rel_path, "sha256": sha[:12]},
                )
        if observation.changed and not result.queued_classes:
            logger.info(
                "%s holds known content %s: reusing its results",
                rel_path,
                sha[:12],
                extra={"action": "content_reused", "path": rel_path},
            )
        return result

    def remove(self, rel_path: str) -> bool:
        """Mark a path removed, unless it is back already (moved away and back).

        A folder moved or deleted as a whole marks every known model under it.
        """
        if (self.root / rel_path).exists():
            return False
        removed = self.catalog.mark_removed(rel_path)
        if not removed:
            prefix = rel_path + "/"
            for known in self.catalog.known_paths():
                if known.startswith(prefix) and not (self.root / known).exists():
                    removed = self.catalog.mark_removed(known) or removed
        if removed:
            logger.info("%s removed", rel_path, extra={"action": "model_removed", "path": rel_path})
        return removed

    def remove_paths(self, rels: list[str]) -> int:
        """Removals reported together by the watcher, judged as one batch by the removal guard."""
        known = self.catalog.known_paths()
        doomed: set[str] = set()
        for rel in rels:
            if rel in known:
                doomed.add(rel)
            else:  # a folder: the models under it
                doomed.update(k for k in known if k.startswith(rel + "/"))
        lost = [rel for rel in doomed if known[rel].sha256 is not None and not (self.root / rel).exists()]
        if not lost:
            return sum(self.remove(rel) for rel in rels)
        models = sum(1 for record in known.values() if record.sha256 is not None)
        if self._guard_removals(models, len(lost), root_empty=self._root_is_empty(), rescan=False):
            return 0
        return sum(self.remove(rel) for rel in rels)

    def _root_is_empty(self) -> bool:
        if not self.root.is_dir():
            return True
        return not any(files for _dir, _dirs, files in os.walk(self.root))

    def _guard_removals(
        self, known: int, missing: int, *, root_empty: bool, rescan: bool = True
    ) -> str | None:
        """The reason removals are held back now (recording or refreshing the block), or None.

        A full scan that finds nothing alarming lifts an earlier block: the models came back.
        The watcher's partial view (``rescan=False``) never lifts one, and removes nothing while
        one stands: only a scan or ``dqd prune`` settles it.
        """
        root = str(self.root)
        reason = removal_block_reason(known, missing, root_empty=root_empty, root=root)
        if reason is None:
            block = self.catalog.removal_block(root)
            if block is None:
                return None
            if not rescan:
                return block.reason
            self.catalog.clear_removal_block(root)
            logger.info(
                "removal block on %s lifted: its models are back",
                root,
                extra={"action": "removal_unblocked", "root": root},
            )
            return None
        self.catalog.block_removals(root, reason, known=known, missing=missing, host_id=self.host_id)
        logger.error(
            reason, extra={"action": "removal_blocked", "root": root, "known": known, "missing": missing}
        )
        return reason

    def missing_paths(self) -> list[str]:
        """Known, not removed, and not in the folder now: what ``dqd prune`` would mark removed."""
        return [rel for rel in sorted(self.catalog.known_paths()) if not (self.root / rel).exists()]

    def prune(self, rels: list[str]) -> list[str]:
        """``dqd prune`` confirmed: mark ``rels`` removed (unless back meanwhile); lift the block."""
        removed = [rel for rel in rels if not (self.root / rel).exists() and self.catalog.mark_removed(rel)]
        self.catalog.clear_removal_block(str(self.root))
        return removed

    def scan(self, now: float | None = None) -> ScanSummary:
        """Walk the tree once; ``now`` is wall-clock seconds (compared with file mtimes)."""
        now = time.time() if now is None else now
        summary = ScanSummary()
        if not self.root.is_dir():
            # A vanished mount must not read as "every model was deleted".
            logger.error("watched folder %s is not available", self.root, extra={"action": "scan_failed"})
            summary.errors += 1
            models = sum(1 for record in self.catalog.known_paths().values() if record.sha256 is not None)
            summary.blocked = self._guard_removals(models, models, root_empty=True) or ""
            return summary
        known = self.catalog.known_paths()
        seen: set[str] = set()
        files_found = 0
        unreadable: list[str] = []

        def on_error(error: OSError) -> None:
            unreadable.append(self.filter.rel_path(error.filename or "") or "")
            logger.warning(
                "cannot read %s: %s", error.filename, error.strerror, extra={"action": "scan_error"}
            )

        for dirpath, dirnames, filenames in os.walk(self.root, onerror=on_error):
            rel_dir = self.filter.rel_path(dirpath)
            # Prune ignored folders (dot-folders, dqd's own output) instead of walking them.
            dirnames[:] = [
                d
                for d in dirnames
                if self.filter.excluded(PurePosixPath(rel_dir, d) if rel_dir else PurePosixPath(d)) is None
            ]
            files_found += len(filenames)
            for name in filenames:
                absolute = Path(dirpath, name)
                verdict = self.filter.classify(absolute)
                if verdict.kind not in (Kind.MODEL, Kind.REFUSED) or verdict.rel_path is None:
                    continue
                rel = verdict.rel_path
                seen.add(rel)
                summary.seen += 1
                if self.is_pending is not None and self.is_pending(rel):
                    summary.pending += 1  # the watcher knows it is still being written
                    continue
                try:
                    self._scan_file(rel, absolute, known, now, summary, refused=verdict.kind is Kind.REFUSED)
                except FileBusy:
                    summary.pending += 1
                    if self.on_pending:
                        self.on_pending(rel)
                except (OSError, ModelError) as exc:  # the next scan tries again
                    summary.errors += 1
                    logger.warning(
                        "cannot read %s: %s", rel, exc, extra={"action": "scan_error", "path": rel}
                    )
        missing = [
            rel
            for rel in sorted(set(known) - seen)
            if not any(rel == bad or rel.startswith(bad + "/") or bad == "" for bad in unreadable)
            and self.filter.excluded(PurePosixPath(rel)) is None
        ]
        models = sum(1 for record in known.values() if record.sha256 is not None)
        lost = [rel for rel in missing if known[rel].sha256 is not None]
        summary.blocked = self._guard_removals(models, len(lost), root_empty=files_found == 0) or ""
        if not summary.blocked:
            summary.removed += sum(self.remove(rel) for rel in missing)
        summary.queued += self.queue_unprocessed()
        logger.info(
            "reconciled %s: %d models, %d registered, %d removed, %d pending"
            + (" (removals blocked)" if summary.blocked else ""),
            self.root,
            summary.seen,
            summary.registered,
            summary.removed,
            summary.pending,
            extra={"action": "reconciled", **summary.__dict__},
        )
        return summary

    def _scan_file(
        self,
        rel: str,
        absolute: Path,
        known: Mapping[str, ModelPath],
        now: float,
        summary: ScanSummary,
        *,
        refused: bool,
    ) -> None:
        if refused:  # never stat'ed nor read (a FIFO, a link out of the tree...): register records why
            if self.register(rel).skip is SkipReason.REFUSED:
                summary.refused += 1
            return
        st = os.stat(absolute)
        record = known.get(rel)
        seen = None if record is None or record.sha256 is None else (record.size_bytes, record.mtime_ns)
        if seen == (st.st_size, st.st_mtime_ns):
            # Recorded as this very file alone: it had no external data, and since its bytes
            # are unchanged it has none now either, so no need to parse it.
            return
        try:
            size_mtime = unit_stat(absolute)
        except ModelError:  # an external-data file is missing: register records the refusal
            size_mtime = (st.st_size, st.st_mtime_ns)
        if seen == size_mtime:
            return  # unchanged since the catalog last saw it, data files included
        mtime_ns = size_mtime[1]
        if now - mtime_ns / 1e9 < self.settle_seconds:
            raise FileBusy(rel)  # still being written, probably: let the settle tracker decide
        if self.held_open is not None and self.held_open(absolute):
            raise FileBusy(rel)  # opened before we watched, paused: quiet but not complete
        registration = self.register(rel, (st.st_size, st.st_mtime_ns))
        if registration.sha256:
            summary.registered += 1
            summary.queued += len(registration.queued_classes)
        elif registration.skip is SkipReason.REFUSED:
            summary.refused += 1

    def _refuse(self, result: Registration, reason: str) -> Registration:
        """Record why ``result``'s path is not taken: listed as refused with ``reason``, never pending.

        A refused path is looked at again by every scan, and registered once its cause is gone.
        """
        if self.catalog.mark_refused(result.rel_path, reason):  # said once, not at every scan
            logger.warning(
                "refused %s: %s",
                result.rel_path,
                reason,
                extra={"action": "refused", "path": result.rel_path},
            )
        result.skip, result.skipped = SkipReason.REFUSED, reason
        return result

    def queue_unprocessed(self) -> int:
        """Queue content our class never had a job for (a new host class joining an old tree)."""
        queued = 0
        for sha, rel in self.catalog.contents_without_job(self.host_class):
            job = self.catalog.enqueue(
                sha, self.host_class, kind=JobKind.QUANTIZE, source_path=rel, max_attempts=self.max_attempts
            )
            queued += job is not None
        return queued
