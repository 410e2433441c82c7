"""The retry rule for a failed job attempt: pure, so the worker and the catalog share one copy.

The worker asks it whether an error is the job's last word (then the error is
recorded as the model's decision, failing the job in the same commit); the
catalog asks it where a failed attempt goes (``failed``, or back to the queue
not before a backoff that doubles with each attempt). No clock, no I/O: the
time is an argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from dqd.domain import JobState


@dataclass(frozen=True)
class RetryDecision:
    """Where a failed attempt leaves its job: ``failed`` for good, or ``queued`` until ``not_before``."""

    state: JobState
    not_before: datetime | None = None

    @property
    def final(self) -> bool:
        """Nothing more will be tried."""
        return self.state is JobState.FAILED


def retry_decision(
    attempts: int,
    max_attempts: int,
    *,
    permanent: bool,
    backoff_seconds: float,
    now: datetime,
) -> RetryDecision:
    """The job's next state after its ``attempts``-th attempt (counted from 1) failed.

    A permanent error (the model's own fault: retrying gives the same answer)
    or the last allowed attempt fails the job; otherwise it is requeued, not
    before ``backoff_seconds`` times 1, 2, 4 ... for attempts 1, 2, 3 ...
    """
    if permanent or attempts >= max_attempts:
        return RetryDecision(JobState.FAILED)
    delay = backoff_seconds * 2 ** max(0, attempts - 1)
    return RetryDecision(JobState.QUEUED, not_before=now + timedelta(seconds=delay))
