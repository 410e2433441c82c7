"""Filesystem watching: a tiny watchdog handler feeding the settle tracker.

The handler only classifies the path and records the event (no I/O, no
catalog): watchdog calls it from its observer thread, and a slow handler
would delay every other event. A separate settle thread asks the tracker
which models are complete and hands them to ``on_ready``; removals go to
``on_removed``, in batches: deletions are handed off once none arrived
for ``REMOVAL_QUIET_SECONDS``, so a folder emptied at once (``rm -rf``, a
mount going away) is judged as a whole by the removal guard. Files that
exist when watching starts produce no event: reconciliation covers them.

With the native observer a file seen being written is complete only once
closed (see :mod:`dqd.daemon.settle`); files settled by quiet time alone are
also checked for a local writer still holding them open.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from watchdog.events import (
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from dqd.daemon.filters import Kind, PathFilter
from dqd.daemon.settle import Ready, SettleTracker, Stat
from dqd.daemon.writers import writer_check

logger = logging.getLogger(__name__)

RETRY_SECONDS = 2.0  # a model whose hand-off failed (catalog down) is offered again after this
REMOVAL_QUIET_SECONDS = 0.5  # deletions closer together than this are handed off as one batch


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: ModelWatcher) -> None:
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        w = self.watcher
        now = w.clock()
        if isinstance(event, FileMovedEvent | DirMovedEvent):
            w.gone(os.fsdecode(event.src_path), is_dir=event.is_directory)
            w.arrived(os.fsdecode(event.dest_path), now, is_dir=event.is_directory)
        elif isinstance(event, FileDeletedEvent):
            w.gone(os.fsdecode(event.src_path), is_dir=False)
        elif isinstance(event, FileClosedEvent):
            w.record(os.fsdecode(event.src_path), now, closed=True)
        elif isinstance(event, FileModifiedEvent):
            w.record(os.fsdecode(event.src_path), now, closed=False)
        elif isinstance(event, FileCreatedEvent):
            w.record(os.fsdecode(event.src_path), now, closed=False, data=False)
        # Opened / closed-without-write events (our own hashing reads files) and
        # directory events are not changes to any model.
        else:
            return
        w.wake.set()


class ModelWatcher:
    def __init__(
        self,
        path_filter: PathFilter,
        tracker: SettleTracker,
        *,
        on_ready: Callable[[Ready], None],
        on_removed: Callable[[list[str]], None],
        observer: str = "native",
        poll_interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.filter = path_filter
        self.root = path_filter.root
        self.tracker = tracker
        # The observer decides which signals exist: inotify reports closes, polling cannot.
        tracker.require_close = observer != "polling"
        self.on_ready = on_ready
        self.on_removed = on_removed
        self.observer_kind = observer
        self.poll_interval = poll_interval
        self.clock = clock
        self.wake = threading.Event()
        self._lock = threading.Lock()
        self._removed: deque[str] = deque()
        self._last_removal = 0.0
        self._retry: dict[str, float] = {}
        self._companions_gone: set[str] = set()  # deleted companions (a removed sidecar changes the plan)
        self._stop = threading.Event()
        self._observer: BaseObserver | None = None
        self._thread: threading.Thread | None = None
        # Check often enough that a closed file is queued promptly, rarely enough to stay idle.
        self.tick = max(0.05, min(0.5, tracker.settle_seconds / 4 or 0.05))

    # --- called from the observer thread: classify, record, return ---

    def record(self, path: str, now: float, *, closed: bool, data: bool = True) -> None:
        verdict = self.filter.classify(path, check_links=False)
        if verdict.kind in (Kind.IGNORED,) or verdict.rel_path is None:
            return
        companion = verdict.kind is Kind.COMPANION
        with self._lock:
            if closed:
                self.tracker.closed(verdict.rel_path, now, companion=companion)
            else:
                self.tracker.written(verdict.rel_path, now, companion=companion, data=data)

    def arrived(self, path: str, now: float, *, is_dir: bool) -> None:
        """Moved or renamed into the tree: complete already (a rename is atomic)."""
        if not is_dir:
            self.record(path, now, closed=True)
            return
        # A folder moved in brings files that produce no events of their own.
        for dirpath, _dirs, files in os.walk(path):
            for name in files:
                self.record(os.path.join(dirpath, name), now, closed=True)

    def gone(self, path: str, *, is_dir: bool) -> None:
        rel = self.filter.rel_path(path)
        if rel is None:
            return
        with self._lock:
            if is_dir:
                for pending in self.tracker.pending():
                    if pending.startswith(rel + "/"):
                        self.tracker.forget(pending)
            else:
                self.tracker.forget(rel)
                if self.filter.classify(path, check_links=False).kind is Kind.COMPANION:
                    self._companions_gone.add(rel)
                    return
            self._removed.append(rel)
            self._last_removal = self.clock()

    def track(self, rel_path: str) -> None:
        """Watch a file found by a scan that still looks busy (no event: it settles by quiet time)."""
        with self._lock:
            self.tracker.noticed(rel_path, self.clock())
        self.wake.set()

    def is_pending(self, rel_path: str) -> bool:
        """The settle tracker is waiting for this file (e.g. still open for writing)."""
        with self._lock:
            return self.tracker.is_pending(rel_path)

    # --- the settle thread ---

    def _writer_check(self) -> Callable[[str], bool]:
        check = writer_check()  # /proc is walked at most once per pass, and only if asked

        def held_open(rel_path: str) -> bool:
            return check(self.root / rel_path)

        return held_open

    def _stat(self, rel_path: str) -> Stat | None:
        try:
            st = os.stat(self.root / rel_path)
        except OSError:
            return None
        return (st.st_size, st.st_mtime_ns)

    def _settle_loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                deadline = self.tracker.next_deadline()
            # Sleep until something could be complete; still look every tick, since a
            # file can change with no event (polling between snapshots, NFS).
            wait = self.tick if deadline is None else min(self.tick, max(0.01, deadline - self.clock()))
            self.wake.wait(wait)
            self.wake.clear()
            self.run_once(self.clock())

    def run_once(self, now: float) -> None:
        # Writers on other hosts are invisible to /proc: under polling, quiet time is the rule.
        held_open = self._writer_check() if self.observer_kind != "polling" else None
        with self._lock:
            companions = self.tracker.companions()
            ready = self.tracker.due(now, self._stat, held_open)
            # Companions complete (or deleted) on their own: an edited sidecar or external-data file
            # changes its model's plan or content, so the model is offered again (registering
            # unchanged content only checks its plan).
            companions = (companions - set(self.tracker.pending())) | self._companions_gone
            self._companions_gone.clear()
            removed: list[str] = []
            if self._removed and now - self._last_removal >= REMOVAL_QUIET_SECONDS:
                removed = list(self._removed)
                self._removed.clear()
            retry = [rel for rel, at in self._retry.items() if at <= now]
            for rel in retry:
                del self._retry[rel]
        ready += [Ready(rel, now, now) for rel in retry]
        offered = {item.rel_path for item in ready}
        for companion in sorted(companions):
            for model in self.filter.models_beside(companion):
                if model not in offered and not self.is_pending(model):
                    offered.add(model)
                    ready.append(Ready(model, now, now))
        if removed:
            self._hand_off(self.on_removed, removed, ", ".join(removed))
        for item in ready:
            if not self._hand_off(self.on_ready, item, item.rel_path):
                with self._lock:
                    self._retry[item.rel_path] = now + RETRY_SECONDS

    def _hand_off(self, callback: Callable[[Any], None], arg: object, rel: str) -> bool:
        try:
            callback(arg)
            return True
        except Exception:  # a bad file or a catalog hiccup must not stop watching
            logger.warning(
                "could not handle %s; will retry", rel, exc_info=True, extra={"action": "watch_error"}
            )
            return False

    # --- lifecycle ---

    def start(self) -> None:
        observer: BaseObserver
        if self.observer_kind == "polling":
            observer = PollingObserver(timeout=self.poll_interval)
        else:
            observer = Observer()
        observer.schedule(_Handler(self), str(self.root), recursive=True)
        observer.daemon = True
        observer.start()
        self._observer = observer
        self._thread = threading.Thread(target=self._settle_loop, name="dqd-settle", daemon=True)
        self._thread.start()
        logger.info(
            "watching %s (%s observer)",
            self.root,
            self.observer_kind,
            extra={"action": "watch_started", "observer": self.observer_kind},
        )

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.wake.set()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout)
        if self._thread is not None:
            self._thread.join(timeout)
