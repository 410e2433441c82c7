"""Keeping a claimed job's lease alive while the engine works on it.

If the daemon dies the renewals stop, the lease expires and another worker
re-runs the job. A renewal that finds the job no longer ours (cancelled, or
reclaimed after an outage longer than the lease) sets ``lost``, and the
worker then discards its result instead of recording it twice.
"""

from __future__ import annotations

import logging
import threading

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
        self._thread = threading.Thread(target=self._run, name=f"dqd-lease-{job.id}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._done.wait(self.interval):
            try:
                if not self.catalog.renew_lease(self.job.id, self.owner, self.lease_seconds):
                    logger.warning(
                        "job %s is no longer ours (cancelled or reclaimed)",
                        self.job.id,
                        extra={"action": "lease_lost", "job_id": self.job.id},
                    )
                    self.lost.set()
                    return
            except CatalogError as exc:  # keep trying: the lease may outlive a short outage
                logger.warning(
                    "lease renewal failed: %s", exc, extra={"action": "lease_error", "job_id": self.job.id}
                )
