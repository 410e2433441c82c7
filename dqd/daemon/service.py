"""The composition root of ``dqd run``: catalog, host, watcher, reconciliation, workers, schedule.

Lifecycle (procrastinate's stop-event loop): a signal only sets an event.
On the first SIGTERM/SIGINT the daemon stops watching and claiming, gives
the running jobs ``grace_seconds`` to finish, returns the unfinished ones
to the queue, keeps heartbeating until then, and exits 0. A second signal
exits at once (leases expire and the jobs are re-run elsewhere).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from types import FrameType

import psutil

from dqd import metrics
from dqd.catalog import open_catalog, sqlite_file
from dqd.daemon.api_thread import ApiThread
from dqd.daemon.filters import PathFilter
from dqd.daemon.mounts import Mount, choose_observer, filesystem_type, is_network_fs
from dqd.daemon.notifier import Notifier
from dqd.daemon.publisher import Publisher
from dqd.daemon.reconcile import FileBusy, Reconciler
from dqd.daemon.retention import RetentionSweep
from dqd.daemon.scheduler import CurrentPolicy, NightlyScheduler, current_policy, enqueue_stale
from dqd.daemon.settle import Ready, SettleTracker
from dqd.daemon.watcher import ModelWatcher
from dqd.daemon.worker import ProcessModel, Worker, default_process
from dqd.daemon.writers import held_open_for_writing
from dqd.domain import HostInfo
from dqd.errors import CatalogError, EnvironmentFailure, ModelError
from dqd.hostinfo import detect_host, host_identity
from dqd.hostlock import check_lock, fallback_warning
from dqd.pipeline.plan import plan_for
from dqd.scratch import sweep
from dqd.settings import Settings, redact_url

logger = logging.getLogger(__name__)


def warn_if_sqlite_on_network(url: str, mounts: list[Mount] | None = None) -> str | None:
    """SQLite's WAL needs shared memory that network filesystems do not provide."""
    path = sqlite_file(url)
    if path is None:
        return None
    fs_type = filesystem_type(path.parent if not path.exists() else path, mounts)
    if fs_type and is_network_fs(fs_type):
        message = (
            f"the SQLite catalog {path} is on a {fs_type} filesystem: WAL locking does not work there "
            "and the catalog can be corrupted; use Postgres (database_url = postgresql+psycopg://...)"
        )
        logger.warning(message, extra={"action": "sqlite_on_network_fs", "fs_type": fs_type})
        return message
    return None


@dataclass
class Daemon:
    settings: Settings
    process: ProcessModel = default_process
    host: HostInfo = field(default_factory=detect_host)
    stop: threading.Event = field(default_factory=threading.Event)
    workers: list[Worker] = field(default_factory=list)
    exit_code: int = 0

    def __post_init__(self) -> None:
        self._signals = 0
        self._wake_workers = threading.Event()
        self.api: ApiThread | None = None
        self.sweep: RetentionSweep | None = None
        self.publisher: Publisher | None = None
        self.root = Path(os.path.abspath(self.settings.watch_dir))
        self.plan_for = partial(plan_for, self.settings, self.root, strict=False)

    # --- signals ---

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals > 1:
            os.write(2, b"dqd: second signal, exiting now\n")
            with contextlib.suppress(Exception):
                _kill_children(wait=0)  # the engine's children would otherwise run on, orphaned
            os._exit(128 + signum)
        self.stop.set()

    # --- composition ---

    def current_policy(self, rel_path: str) -> CurrentPolicy:
        max_age = timedelta(days=self.settings.schedule.max_age_days)
        plan = self.plan_for(rel_path)
        return current_policy(self.host.ort_version, plan.search, max_age, plan.fingerprint())

    def run(self) -> int:
        settings = self.settings
        url = settings.database_url_plain
        warn_if_sqlite_on_network(url)
        catalog = open_catalog(settings)  # migrates SQLite; refuses a catalog newer than this code
        self.catalog = catalog
        catalog.upsert_host(self.host)
        self.root.mkdir(parents=True, exist_ok=True)
        check_host_lock(settings.host_lock)
        # What a killed dqd process of this host left half-written (dqd.scratch): before any new work.
        sweep([Path(settings.output_dir), *([Path(settings.publish_dir)] if settings.publish_dir else [])])
        if settings.publish_dir is not None:
            self.publisher = Publisher(
                catalog,
                root=self.root,
                publish_dir=settings.publish_dir,
                host_class=self.host.host_class,
                include=settings.watch.include,
            )
        observer = choose_observer(settings.watch.observer, self.root)
        skip = [settings.output_dir, *([settings.publish_dir] if settings.publish_dir else [])]
        path_filter = PathFilter(self.root, settings.watch.include, settings.watch.exclude, skip)
        native = observer == "native"
        # Polling sees no closes: a slow copy's pauses must be shorter than this longer quiet time.
        settle = settings.watch.settle_seconds if native else settings.watch.polling_settle_seconds
        self.watcher = ModelWatcher(
            path_filter,
            SettleTracker(settle, require_close=native),
            on_ready=self._on_ready,
            on_removed=self._on_removed,
            observer=observer,
            poll_interval=settings.watch.poll_interval,
        )
        self.reconciler = Reconciler(
            catalog,
            path_filter,
            host_class=self.host.host_class,
            host_ttl_seconds=settings.worker.host_ttl_seconds,
            max_attempts=settings.worker.max_attempts,
            settle_seconds=settle,
            on_pending=self.watcher.track,
            is_pending=self.watcher.is_pending,
            held_open=held_open_for_writing if native else None,
            host_id=self.host.host_id,
        )
        logger.info(
            "dqd daemon starting: host class %s, catalog %s, watching %s (%s)",
            self.host.host_class,
            redact_url(url),
            self.root,
            observer,
            extra={"action": "daemon_starting", "host_class": self.host.host_class, "observer": observer},
        )
        if self.host.declared:
            logger.warning(
                "host identity declared by configuration, not detected: id %s, class %s "
                "(detected ISA flags: %s)",
                self.host.host_id,
                self.host.host_class,
                " ".join(self.host.isa_flags) or "none",
                extra={
                    "action": "host_declared",
                    "host_id": self.host.host_id,
                    "host_class": self.host.host_class,
                },
            )
        scheduler = None  # built before anything starts: a bad cron is a config error
        if settings.schedule.enabled:
            scheduler = NightlyScheduler(
                catalog,
                self.host.host_class,
                cron=settings.schedule.cron,
                timezone=settings.schedule.timezone,
                current_for=self.current_policy,
                max_attempts=settings.worker.max_attempts,
                on_queued=self._wake_workers.set,
            )
        self.scheduler = scheduler
        self.sweep = RetentionSweep(catalog, settings) if settings.retention.sweep else None
        if settings.api.serve_in_daemon:
            self.api = ApiThread(catalog, settings)
            self.api.start()
        # Watch first, then scan: a file written during the scan is seen by one or the other.
        self.watcher.start()
        threads = [threading.Thread(target=self._reconcile_loop, name="dqd-reconcile", daemon=True)]
        # Every daemon sends the outbox, whatever it configures: rows may come from any dqd process.
        self.notifier = Notifier(catalog, settings.notifications, self.stop)
        threading.Thread(target=self.notifier.run, name="dqd-notifier", daemon=True).start()
        owner = f"{self.host.hostname}:{os.getpid()}"
        for index in range(settings.worker.concurrency):
            worker = Worker(
                catalog,
                settings,
                self.host,
                owner=f"{owner}:{index}",
                stop=self.stop,
                root=self.root,
                plan_for=self.plan_for,
                process=self.process,
                wake=self._wake_workers,
                poll_seconds=settings.worker.poll_seconds,
                publisher=self.publisher,
                recorded=self.notifier.wake,
            )
            self.workers.append(worker)
            threads.append(threading.Thread(target=worker.run, name=f"dqd-worker-{index}", daemon=True))
        for thread in threads:
            thread.start()
        if self.scheduler is not None:
            self.scheduler.start()
        if self.sweep is not None:
            self.sweep.start()
        logger.info("dqd daemon running", extra={"action": "daemon_running", "workers": len(self.workers)})
        self._heartbeat_until_stopped()
        self._shutdown(threads[1:])
        return self.exit_code

    # --- event hand-offs (called from the watcher's settle thread) ---

    def _on_ready(self, ready: Ready) -> None:
        try:
            registration = self.reconciler.register(ready.rel_path, ready.stat)
        except FileBusy:
            self.watcher.track(ready.rel_path)
            return
        except FileNotFoundError:
            return  # gone again before we got to it
        except (OSError, ModelError) as exc:  # unreadable, or data file missing: the next scan tries again
            logger.warning(
                "cannot read %s: %s",
                ready.rel_path,
                exc,
                extra={"action": "read_error", "path": ready.rel_path},
            )
            return
        if registration.queued_classes:
            metrics.OBSERVER_LAG.observe(max(0.0, time.monotonic() - ready.last_change))
            if self.host.host_class in registration.queued_classes:
                self._wake_workers.set()
        if registration.sha256 and not registration.queued_classes:
            self._requeue_replanned({registration.sha256})  # its sidecar may be what changed
        if self.publisher and registration.sha256 and self.host.host_class not in registration.queued_classes:
            # Known content at a new path, decided already: publish it, off the watcher's thread
            # (a large copy must not hold up events); the publisher serializes its callers.
            contents = {registration.sha256}
            threading.Thread(target=self._publish_missing, args=(contents,), daemon=True).start()

    def _requeue_replanned(self, contents: set[str] | None = None) -> None:
        """Queue what this class decided under a plan that is not the model's plan any more."""
        now = datetime.now(UTC)
        queued = enqueue_stale(
            self.catalog,
            self.host.host_class,
            current_for=self.current_policy,
            tick=now,
            now=now,
            max_attempts=self.settings.worker.max_attempts,
            only=contents,
            plan_only=True,
        )
        if queued:
            self._wake_workers.set()

    def _on_removed(self, rel_paths: list[str]) -> None:
        self.reconciler.remove_paths(rel_paths)

    def _publish_missing(self, contents: set[str] | None = None) -> None:
        if self.publisher is None:
            return
        try:
            self.publisher.publish_missing(contents)
        except CatalogError as exc:  # the next scan tries again
            logger.warning("publishing deferred: %s", exc, extra={"action": "publish_failed"})

    # --- housekeeping ---

    def _heartbeat_until_stopped(self) -> None:
        interval = self.settings.worker.heartbeat_seconds
        while not self.stop.wait(interval):
            self._heartbeat()

    def _heartbeat(self) -> None:
        try:
            self.catalog.heartbeat(self.host.host_id)
        except CatalogError as exc:
            logger.warning("heartbeat failed: %s", exc, extra={"action": "heartbeat_failed"})

    def _reconcile_loop(self) -> None:
        interval = self.settings.watch.reconcile_interval
        while not self.stop.is_set():
            try:
                summary = self.reconciler.scan()
                if summary.queued:
                    self._wake_workers.set()
                self._requeue_replanned()  # a [models] section changed across a restart
                # The first scan's pass is the start-up back-fill (publish_dir set after decisions,
                # a kill between a commit and its copy); later ones catch paths added since.
                self._publish_missing()
            except CatalogError as exc:
                logger.warning("reconciliation failed: %s", exc, extra={"action": "reconcile_failed"})
                interval_now = min(interval, 5.0)  # retry soon: the catalog may be back
            except Exception:
                logger.exception("reconciliation failed", extra={"action": "reconcile_failed"})
                interval_now = interval
            else:
                interval_now = interval
            if self.stop.wait(interval_now):
                return

    def _shutdown(self, worker_threads: list[threading.Thread]) -> None:
        grace = self.settings.worker.grace_seconds
        running = [w.current.id for w in self.workers if w.current is not None]
        logger.info(
            "stopping: no new jobs; waiting up to %.0f s for %d running",
            grace,
            len(running),
            extra={"action": "daemon_stopping", "running_jobs": running},
        )
        self.watcher.stop()
        self.notifier.wake.set()  # its thread sees the stop event and ends
        if self.scheduler is not None:
            self.scheduler.shutdown()
        if self.sweep is not None:
            self.sweep.shutdown()
        if self.api is not None:
            self.api.stop()
        deadline = time.monotonic() + grace
        # Keep the host heartbeat (and the job leases, renewed by each worker) alive while draining.
        for thread in worker_threads:
            while thread.is_alive() and time.monotonic() < deadline:
                thread.join(min(1.0, max(0.0, deadline - time.monotonic())))
                self._heartbeat()
        released = [job.id for w in self.workers if (job := w.abort()) is not None]
        if released:
            _kill_children()
        logger.info("dqd daemon stopped", extra={"action": "daemon_stopped", "released_jobs": released})
        self.catalog.close()


def check_host_lock(path: Path) -> None:
    """Say at start-up what is wrong with the host lock; jobs then fail (and retry) as jobs."""
    warning = fallback_warning(path)
    if warning:
        logger.warning(warning, extra={"action": "host_lock_fallback", "setting": "host_lock"})
    try:
        check_lock(path)
    except EnvironmentFailure as exc:
        logger.error("%s", exc, extra={"action": "environment_failed", "setting": exc.setting})


def _kill_children(wait: float = 5.0) -> None:
    """End the engine's child processes of jobs given back to the queue (ours alone)."""
    children = psutil.Process().children(recursive=True)
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.kill()
    if wait:
        psutil.wait_procs(children, timeout=wait)


def run_daemon(
    settings: Settings,
    *,
    process: ProcessModel | None = None,
    install_signals: bool = True,
    on_started: Callable[[Daemon], None] | None = None,
) -> int:
    daemon = Daemon(settings, process=process or default_process, host=host_identity(settings))
    if install_signals:
        daemon.install_signal_handlers()
    if on_started is not None:
        on_started(daemon)
    return daemon.run()
