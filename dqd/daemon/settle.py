"""Completion detection: when is a file that is being written finished?

A file is complete after a close-after-write event (inotify ``IN_CLOSE_WRITE``),
after being renamed into place (a rename is atomic: the writer is done), or
when its size and mtime stayed the same for ``settle_seconds`` with no event
(the only signal the polling observer has). A model and the other files
written beside it (``x.onnx.data`` and other external-data files) are one
unit: the model is ready only when its folder has no unfinished companion.

Pure logic: time and ``stat`` are arguments, so tests need neither clocks nor files.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass

Stat = tuple[int, int]  # (size, mtime_ns)
StatFn = Callable[[str], Stat | None]  # None: the file is gone


@dataclass
class _Entry:
    companion: bool
    folder: str
    first_event: float
    last_change: float  # last event or observed size/mtime change
    stat: Stat | None = None
    closed: bool = False  # a close-after-write (or rename in) since the last write


@dataclass(frozen=True)
class Ready:
    rel_path: str
    first_event: float
    last_change: float  # when the file last changed: latency is measured from here


CLOSE_GRACE_SECONDS = 0.25


class SettleTracker:
    """``close_grace`` is a short quiet time after a close, so that an external-data file
    written right after its model (``onnx.save`` writes the model first in some versions,
    ``cp -r`` in any order) is seen before the model is handed out."""

    def __init__(self, settle_seconds: float, close_grace: float = CLOSE_GRACE_SECONDS) -> None:
        self.settle_seconds = settle_seconds
        self.close_grace = min(close_grace, settle_seconds)
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def pending(self) -> list[str]:
        return sorted(self._entries)

    def _entry(self, rel_path: str, now: float, companion: bool) -> _Entry:
        entry = self._entries.get(rel_path)
        if entry is None:
            entry = _Entry(companion, posixpath.dirname(rel_path), now, now)
            self._entries[rel_path] = entry
        return entry

    def written(self, rel_path: str, now: float, *, companion: bool = False) -> None:
        """A create or modify event: the file is (still) being written."""
        entry = self._entry(rel_path, now, companion)
        entry.last_change = now
        entry.closed = False

    def closed(self, rel_path: str, now: float, *, companion: bool = False) -> None:
        """Close after write, or renamed into place: the writer is done with it."""
        entry = self._entry(rel_path, now, companion)
        entry.last_change = now
        entry.closed = True
        entry.stat = None  # growth seen before the close was the write that just finished

    def forget(self, rel_path: str) -> None:
        """Deleted or moved away: nothing to wait for."""
        self._entries.pop(rel_path, None)

    def _complete(self, entry: _Entry, current: Stat, now: float) -> bool:
        if entry.stat != current:
            changed = entry.stat is not None
            entry.stat = current
            if changed:  # written since we last looked, possibly with no event (polling, NFS)
                entry.last_change = now
                entry.closed = False
        quiet = now - entry.last_change
        return quiet >= self.settle_seconds or (entry.closed and quiet >= self.close_grace)

    def next_deadline(self) -> float | None:
        """The earliest time an entry could become complete without another event."""
        times = [
            e.last_change + (self.close_grace if e.closed else self.settle_seconds)
            for e in self._entries.values()
        ]
        return min(times) if times else None

    def due(self, now: float, stat: StatFn) -> list[Ready]:
        """Models that became complete by ``now``; they leave the tracker."""
        complete: dict[str, bool] = {}
        for rel_path, entry in list(self._entries.items()):
            current = stat(rel_path)
            if current is None:
                del self._entries[rel_path]
                continue
            complete[rel_path] = self._complete(entry, current, now)
        busy_folders = {
            entry.folder
            for rel_path, entry in self._entries.items()
            if entry.companion and not complete[rel_path]
        }
        ready = []
        for rel_path, entry in list(self._entries.items()):
            if not complete[rel_path]:
                continue
            if entry.companion:
                del self._entries[rel_path]
            elif entry.folder not in busy_folders:
                ready.append(Ready(rel_path, entry.first_event, entry.last_change))
                del self._entries[rel_path]
        return sorted(ready, key=lambda r: r.rel_path)
