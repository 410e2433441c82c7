"""Completion detection: when is a file that is being written finished?

A file is complete after a close-after-write event (inotify ``IN_CLOSE_WRITE``),
after being renamed into place (a rename is atomic: the writer is done), or
when its size and mtime stayed the same for ``settle_seconds`` with no event
(the only signal the polling observer has). With ``require_close`` (the
native observer, which does deliver close events) a file seen being written
is complete only when closed: a slow copy pausing longer than the settle time
is still open, and quiet time alone would hand out a truncated model. Only a
silence of ``stall_seconds`` (a lost close event: inotify queue overflow)
ends the wait. A file known only from a scan (no event seen) settles by quiet
time, since its writer may have closed it before watching began; files that
settle by quiet time are also checked for a writer holding them open.

A model and the other files written beside it (``x.onnx.data`` and other
external-data files) are one unit: the model is ready only when its folder
has no unfinished companion.

Pure logic: time and ``stat`` are arguments, so tests need neither clocks nor files.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass

Stat = tuple[int, int]  # (size, mtime_ns)
StatFn = Callable[[str], Stat | None]  # None: the file is gone
HeldOpenFn = Callable[[str], bool]  # True: some process holds the file open for writing


@dataclass
class _Entry:
    companion: bool
    folder: str
    first_event: float
    last_change: float  # last event or observed size/mtime change
    stat: Stat | None = None
    closed: bool = False  # a close-after-write (or rename in) since the last write
    writing: bool = False  # a write event since the last close: under require_close, wait for the close


@dataclass(frozen=True)
class Ready:
    rel_path: str
    first_event: float
    last_change: float  # when the file last changed: latency is measured from here
    stat: Stat | None = None  # (size, mtime_ns) when found complete: re-checked before it is queued


CLOSE_GRACE_SECONDS = 0.25
# An open file silent this long under the native observer is taken anyway: its close event
# was lost (queue overflow). A later write makes a new version, and this one is superseded.
STALL_SECONDS = 900.0


class SettleTracker:
    """``close_grace`` is a short quiet time after a close, so that an external-data file
    written right after its model (``onnx.save`` writes the model first in some versions,
    ``cp -r`` in any order) is seen before the model is handed out."""

    def __init__(
        self,
        settle_seconds: float,
        close_grace: float = CLOSE_GRACE_SECONDS,
        *,
        require_close: bool = False,
        stall_seconds: float = STALL_SECONDS,
    ) -> None:
        self.settle_seconds = settle_seconds
        self.close_grace = min(close_grace, settle_seconds)
        self.require_close = require_close
        self.stall_seconds = max(stall_seconds, settle_seconds)
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def pending(self) -> list[str]:
        return sorted(self._entries)

    def companions(self) -> set[str]:
        return {rel for rel, entry in self._entries.items() if entry.companion}

    def is_pending(self, rel_path: str) -> bool:
        """The tracker is waiting for this file: a scan must not register it behind its back."""
        return rel_path in self._entries

    def is_open(self, rel_path: str) -> bool:
        """Seen being written and not closed since (only meaningful with ``require_close``)."""
        entry = self._entries.get(rel_path)
        return entry is not None and entry.writing

    def _entry(self, rel_path: str, now: float, companion: bool) -> _Entry:
        entry = self._entries.get(rel_path)
        if entry is None:
            entry = _Entry(companion, posixpath.dirname(rel_path), now, now)
            self._entries[rel_path] = entry
        return entry

    def written(self, rel_path: str, now: float, *, companion: bool = False, data: bool = True) -> None:
        """A modify event (``data``) or a create event: the file is (still) being written.

        A create alone proves no open writer: inotify reports a file moved in from outside the
        watched tree as created, and no close follows.
        """
        entry = self._entry(rel_path, now, companion)
        entry.last_change = now
        entry.closed = False
        entry.writing = entry.writing or data

    def noticed(self, rel_path: str, now: float, *, companion: bool = False) -> None:
        """Found by a scan looking busy, with no event: settles by quiet time (unless events follow)."""
        if rel_path not in self._entries:
            self._entry(rel_path, now, companion)

    def closed(self, rel_path: str, now: float, *, companion: bool = False) -> None:
        """Close after write, or renamed into place: the writer is done with it."""
        entry = self._entry(rel_path, now, companion)
        entry.last_change = now
        entry.closed = True
        entry.writing = False
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
        if entry.closed:
            return quiet >= self.close_grace
        return quiet >= self._quiet_needed(entry)

    def _quiet_needed(self, entry: _Entry) -> float:
        if entry.closed:
            return self.close_grace
        return self.stall_seconds if self.require_close and entry.writing else self.settle_seconds

    def next_deadline(self) -> float | None:
        """The earliest time an entry could become complete without another event."""
        times = [e.last_change + self._quiet_needed(e) for e in self._entries.values()]
        return min(times) if times else None

    def due(self, now: float, stat: StatFn, held_open: HeldOpenFn | None = None) -> list[Ready]:
        """Models that became complete by ``now``; they leave the tracker.

        ``held_open(rel_path)`` is asked about files complete by quiet time alone (no close
        event): True when a process is known to hold the file open for writing, which keeps it.
        """
        complete: dict[str, bool] = {}
        for rel_path, entry in list(self._entries.items()):
            current = stat(rel_path)
            if current is None:
                del self._entries[rel_path]
                continue
            done = self._complete(entry, current, now)
            if done and not entry.closed and held_open is not None and held_open(rel_path):
                entry.last_change = now  # ask again after another quiet period
                done = False
            complete[rel_path] = done
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
                ready.append(Ready(rel_path, entry.first_event, entry.last_change, entry.stat))
                del self._entries[rel_path]
        return sorted(ready, key=lambda r: r.rel_path)
