"""A worker: claim a job, keep its lease alive, run the engine, record, finish.

The loop holds no SQL: everything goes through the catalog's store
functions. Order of shutdown matters (dramatiq's rule): on stop the worker
takes no new job; the running one finishes, or the service aborts it after
the grace period and the job goes back to the queue, and only then does the
lease heartbeat stop. A model's problem is an ``error`` result from the
engine, never an exception here. A failure of the environment (the host
lock, the output folder, a missing package: :class:`EnvironmentFailure`)
fails the attempt, which is retried with backoff and never recorded as the
model's decision; so does an unexpected exception, and the worker carries on.
A decision is recorded in the transaction that completes its job, so a kill
cannot leave a decided job to run again; publishing follows from the
committed decision (:class:`dqd.daemon.publisher.Publisher`, idempotent).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol, TypeVar

from dqd import metrics
from dqd.catalog import Catalog
from dqd.daemon.lease import LeaseKeeper
from dqd.daemon.publisher import Publisher
from dqd.daemon.stages import StageLog
from dqd.domain import EngineResult, HostInfo, Job, Outcome
from dqd.errors import CatalogError, CatalogUnavailable, EnvironmentFailure, HostBusy
from dqd.pathtext import is_inside_root
from dqd.pipeline.plan import ModelPlan
from dqd.retry import retry_decision
from dqd.settings import Settings

logger = logging.getLogger(__name__)
T = TypeVar("T")
CATALOG_RETRY_SECONDS = (0.5, 1, 2, 5, 10)  # waits while the catalog is unreachable; the last repeats
# Test-only: set, the daemon SIGKILLs itself right after a decision commits, before publishing
# (tests/acceptance/test_decide_once.py). Nothing else reads it.
TEST_HOOK_KILL_AFTER_COMMIT = "DQD_TEST_HOOK_KILL_AFTER_COMMIT"


class ProcessModel(Protocol):
    def __call__(
        self,
        path: Path,
        settings: Settings,
        *,
        host: HostInfo,
        plan: ModelPlan,
        model_root: Path | None,
        progress: Callable[[str], None] | None = None,
    ) -> EngineResult: ...


def default_process(
    path: Path,
    settings: Settings,
    *,
    host: HostInfo,
    plan: ModelPlan,
    model_root: Path | None,
    progress: Callable[[str], None] | None = None,
) -> EngineResult:
    """The real engine, handed the model's plan."""
    from dqd.pipeline.engine import process_model

    return process_model(path, settings, host=host, plan=plan, model_root=model_root, progress=progress)


class Worker:
    def __init__(
        self,
        catalog: Catalog,
        settings: Settings,
        host: HostInfo,
        *,
        owner: str,
        stop: threading.Event,
        root: Path,
        plan_for: Callable[[str], ModelPlan],
        process: ProcessModel = default_process,
        wake: threading.Event | None = None,
        poll_seconds: float = 1.0,
        publisher: Publisher | None = None,
        recorded: threading.Event | None = None,
    ) -> None:
        self.catalog = catalog
        self.settings = settings
        self.host = host
        self.owner = owner
        self.stop = stop
        self.root = root
        self.plan_for = plan_for
        self.process = process
        self.wake = wake or threading.Event()
        self.poll_seconds = poll_seconds
        if publisher is None and settings.publish_dir is not None:
            publisher = Publisher(
                catalog,
                root=root,
                publish_dir=settings.publish_dir,
                host_class=host.host_class,
                include=settings.watch.include,
            )
        self.publisher = publisher
        self.recorded = recorded  # set after each commit: the notifier sends what it wrote at once
        self.current: Job | None = None
        self._aborted = threading.Event()
        self._claimed_at = 0.0
        self._timed = False  # JOB_SECONDS already observed for the current job
        lease = settings.worker.lease_seconds
        self.renew_interval = max(0.2, min(settings.worker.heartbeat_seconds, lease / 3))

    # --- the loop ---

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                job = self._catalog_call(
                    lambda: self.catalog.claim_next_job(
                        self.host.host_class, self.owner, self.settings.worker.lease_seconds
                    )
                )
            except CatalogError as exc:
                logger.error("cannot claim jobs: %s", exc, extra={"action": "claim_failed"})
                self.stop.wait(self.poll_seconds)
                continue
            if job is None:
                # Woken early when the watcher queues something; else poll (other hosts enqueue too).
                self.wake.wait(self.poll_seconds)
                self.wake.clear()
                continue
            self.run_job(job)

    def run_job(self, job: Job) -> None:
        self.current = job
        self._aborted.clear()
        started = self._claimed_at = time.monotonic()
        self._timed = False
        log = {"job_id": job.id, "sha256": job.sha256[:12]}
        logger.info(
            "job %s started (attempt %d)", job.id, job.attempts, extra={"action": "job_started", **log}
        )
        try:
            with LeaseKeeper(
                self.catalog, job, self.owner, self.settings.worker.lease_seconds, self.renew_interval
            ) as lease:
                stages = StageLog(job.id, lease.set_stage)
                try:
                    self._execute(job, lease, stages)
                finally:
                    stages.finish()
        except Exception as exc:  # a bug, not a model problem: fail this attempt, keep the worker
            logger.exception("job %s failed unexpectedly", job.id, extra={"action": "job_crashed", **log})
            if not self._aborted.is_set():
                self._finish_failed(job, f"internal error: {type(exc).__name__}: {exc}", permanent=False)
        finally:
            if not self._timed:
                metrics.JOB_SECONDS.observe(time.monotonic() - started)
            self.current = None

    def abort(self) -> Job | None:
        """Give the running job back to the queue (grace period over); its result will be discarded."""
        job = self.current
        if job is None:
            return None
        self._aborted.set()
        try:
            self.catalog.release_job(job.id, self.owner)
            logger.info(
                "job %s returned to the queue", job.id, extra={"action": "job_released", "job_id": job.id}
            )
        except CatalogError:
            logger.warning(
                "could not release job %s: its lease will expire", job.id, extra={"job_id": job.id}
            )
        return job

    # --- one job ---

    def _source(self, job: Job) -> str | None:
        """A path under the root that holds the job's content now (the one it was queued for first)."""
        candidates = self.catalog.paths_for_content(job.sha256)
        if job.source_path in candidates:
            candidates.remove(job.source_path)
            candidates.insert(0, job.source_path)
        # `dqd process` records files outside the watched folder by absolute path: not the daemon's.
        inside = [rel for rel in candidates if is_inside_root(rel)]
        return next((rel for rel in inside if (self.root / rel).is_file()), None)

    def _execute(self, job: Job, lease: LeaseKeeper, stages: StageLog) -> None:
        rel = self._source(job)
        if rel is None:
            self._supersede(job, "no file under the watched folder holds this content any more")
            return
        try:
            # Exclusion and pins are the engine's: it records them like any decision.
            result = self.process(
                self.root / rel,
                self.settings,
                host=self.host,
                plan=self.plan_for(rel),
                model_root=self.root,
                progress=stages.report,
            )
        except HostBusy as exc:
            if not (self._aborted.is_set() or lease.lost.is_set()):
                self._defer(job, exc)
            return
        except EnvironmentFailure as exc:
            if not (self._aborted.is_set() or lease.lost.is_set()):
                logger.error(
                    "job %s: environment failure (not the model's): %s",
                    job.id,
                    exc,
                    extra={"action": "environment_failed", "job_id": job.id, "setting": exc.setting},
                )
                self._finish_failed(job, f"environment: {exc}", permanent=False)
            return
        if self._aborted.is_set() or lease.lost.is_set():
            return  # released at shutdown or taken away: whoever runs it next records it
        if result.sha256 != job.sha256:
            # Both sides hash with dqd.modelfile.content_sha256. No sha256: the model cannot be read
            # as a unit now (an external-data file missing, maybe still being copied); another one:
            # it changed after it was queued, and the new content has its own job. Either way
            # nothing is recorded under an identity that is not the job's.
            if result.sha256 and self._source(job) is None:
                self._supersede(job, f"{rel} changed while queued (now {result.sha256[:12]})")
                return
            problem = (
                f"{rel} changed while queued (now {result.sha256[:12]})"
                if result.sha256
                else result.error or f"cannot read {rel}"
            )
            self._finish_failed(job, problem, permanent=False)
            return
        self._finish(job, rel, result)

    def _finish(self, job: Job, rel: str, result: EngineResult) -> None:
        log = {"job_id": job.id, "path": rel, "outcome": result.outcome.value}
        for variant in result.variants:
            if variant.quantize_seconds is not None:
                metrics.QUANTIZE_SECONDS.observe(variant.quantize_seconds)
        error = result.error or "; ".join(result.reasons) or "error"
        if result.outcome is Outcome.ERROR:
            retry = retry_decision(
                job.attempts,
                job.max_attempts,
                permanent=result.permanent_error,
                backoff_seconds=self.settings.worker.backoff_seconds,
                now=datetime.now(UTC),
            )
            if not retry.final:
                self._finish_failed(job, error, permanent=False)
                return
            # Nothing more will be tried: record the error once, failing the job in the same commit.
            if self._record(job, result, job_error=error) is not None:
                metrics.JOBS_FAILED.labels(permanent=str(result.permanent_error).lower()).inc()
                logger.warning(
                    "job %s attempt %d failed (failed): %s",
                    job.id,
                    job.attempts,
                    error,
                    extra={"action": "job_failed", "job_id": job.id, "permanent": result.permanent_error},
                )
            return
        decision_id = self._record(job, result)
        if decision_id is None:
            return
        logger.info(
            "job %s done: %s is %s (%.1f s)",
            job.id,
            rel,
            result.outcome.value,
            result.seconds,
            extra={
                "action": "job_done",
                "decision_id": decision_id,
                "engine_seconds": round(result.seconds, 3),
                **log,
            },
        )
        if self.publisher is not None:
            try:
                self.publisher.publish_missing({result.sha256})
            except CatalogError as exc:  # the decision is committed: the next scan publishes it
                logger.warning("publishing after job %s deferred: %s", job.id, exc, extra=log)

    def _record(self, job: Job, result: EngineResult, *, job_error: str | None = None) -> int | None:
        """Record the decision and finish the job in one commit; None when the job is no longer ours."""
        decision_id = self._catalog_call(
            lambda: self.catalog.record_engine_result(
                self.host, result, complete_job=(job.id, self.owner), job_error=job_error
            )
        )
        if decision_id is None:
            logger.warning(
                "job %s is no longer ours: its result is not recorded (the job's holder records its own)",
                job.id,
                extra={"action": "result_discarded", "job_id": job.id},
            )
            return None
        if os.environ.get(TEST_HOOK_KILL_AFTER_COMMIT):
            os.kill(os.getpid(), signal.SIGKILL)
        if self.recorded is not None:
            self.recorded.set()
        # Counted at the commit, the moment the job reads as done, not after publishing.
        metrics.JOB_SECONDS.observe(time.monotonic() - self._claimed_at)
        self._timed = True
        if result.outcome is not Outcome.ERROR:
            metrics.JOBS_PROCESSED.labels(outcome=result.outcome.value).inc()
        return decision_id

    def _defer(self, job: Job, busy: HostBusy) -> None:
        """A benchmark met a busy host: wait and run again, without using an attempt."""
        delay = self.settings.benchmark.busy_retry_seconds
        when = (datetime.now(UTC) + timedelta(seconds=delay)).strftime("%H:%M:%S UTC")
        reason = f"waiting for a quiet host until {when}: {busy}"
        self._catalog_call(lambda: self.catalog.defer_job(job.id, self.owner, reason, delay_seconds=delay))
        metrics.JOBS_DEFERRED.inc()
        logger.warning(
            "job %s deferred %.0f s: %s",
            job.id,
            delay,
            busy,
            extra={"action": "job_deferred", "job_id": job.id, "foreign_load": round(busy.load, 4)},
        )

    def _supersede(self, job: Job, reason: str) -> None:
        """Nothing to do for content at no path any more: cancelled, not failed (no retry, no alert)."""
        self._catalog_call(lambda: self.catalog.supersede_job(job.id, self.owner, reason))
        logger.info(
            "job %s cancelled, superseded: %s",
            job.id,
            reason,
            extra={"action": "job_superseded", "job_id": job.id, "sha256": job.sha256[:12]},
        )

    def _finish_failed(self, job: Job, error: str, *, permanent: bool) -> None:
        state = self._catalog_call(
            lambda: self.catalog.fail_job(
                job.id,
                self.owner,
                error,
                permanent=permanent,
                backoff_seconds=self.settings.worker.backoff_seconds,
            )
        )
        metrics.JOBS_FAILED.labels(permanent=str(permanent).lower()).inc()
        logger.warning(
            "job %s attempt %d failed (%s): %s",
            job.id,
            job.attempts,
            state.value if state else "no longer ours",
            error,
            extra={"action": "job_failed", "job_id": job.id, "permanent": permanent},
        )

    def _catalog_call(self, call: Callable[[], T]) -> T:
        """Run a store call, waiting out a catalog outage (unless stopping, then give up)."""
        attempt = 0
        while True:
            try:
                return call()
            except CatalogUnavailable as exc:
                if self.stop.is_set() and attempt >= 2:
                    raise
                delay = CATALOG_RETRY_SECONDS[min(attempt, len(CATALOG_RETRY_SECONDS) - 1)]
                logger.warning(
                    "catalog unavailable, retrying in %.1f s: %s",
                    delay,
                    exc,
                    extra={"action": "catalog_unavailable"},
                )
                attempt += 1
                time.sleep(delay)
