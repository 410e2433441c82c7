"""Keeping a claimed job's lease alive while the engine works on it.

If the daemon dies the renewals stop, the lease expires and another worker
re-runs the job. A renewal that finds the job no longer ours (cancelled, or
reclaimed after an outage longer than the lease) sets ``lost``, and the
worker then discards its result instead of recording it twice.

The same thread writes the job's current stage (:meth:`LeaseKeeper.set_stage`):
catalog writes stay off the thread that watches the engine's child.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime

from dqd.catalog import Catalog
from dqd.domain import Job
from dqd.errors import CatalogError

logger = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews a job's lease in the background; notices when the job stopped being ours."""

    def __init__(self, catalog: Catalog, job: Job, owner: str, lease_seconds: float, interval: float) -> None:
        self.catalog, self.job, self.owner = catalog, job, owner
        self.lease_seconds, self.interval = lease_seconds, interval
        self.lost = threading.Event()
        self._done = threading.Event()
        self._wake = threading.Event()
        self._stage: tuple[str, datetime] | None = None
        self._stage_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"dqd-lease-{job.id}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._wake.set()
        self._thread.join(5)

    def set_stage(self, stage: str, started_at: datetime) -> None:
        """Store the running stage soon, from the keeper's thread (the latest one wins)."""
        with self._stage_lock:
            self._stage = (stage, started_at)
        self._wake.set()

    def _run(self) -> None:
        renew_at = time.monotonic() + self.interval
        while not self._done.is_set():
            self._wake.wait(max(0.0, renew_at - time.monotonic()))
            self._wake.clear()
            if self._done.is_set():
                return
            self._write_stage()
            if time.monotonic() >= renew_at:
                renew_at = time.monotonic() + self.interval
                if not self._renew():
                    return

    def _write_stage(self) -> None:
        with self._stage_lock:
            pending, self._stage = self._stage, None
        if pending is None:
            return
        try:
            self.catalog.set_job_stage(self.job.id, self.owner, *pending)
        except CatalogError as exc:  # only `dqd status` misses it; the job goes on
            logger.debug("could not store the stage of job %s: %s", self.job.id, exc)

    def _renew(self) -> bool:
        try:
            if not self.catalog.renew_lease(self.job.id, self.owner, self.lease_seconds):
                logger.warning(
                    "job %s is no longer ours (cancelled or reclaimed)",
                    self.job.id,
                    extra={"action": "lease_lost", "job_id": self.job.id},
                )
                self.lost.set()
                return False
        except CatalogError as exc:  # keep trying: the lease may outlive a short outage
            logger.warning(
                "lease renewal failed: %s", exc, extra={"action": "lease_error", "job_id": self.job.id}
            )
        return True
