"""The retry rule (dqd.retry): every combination of attempt, limit and permanence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dqd.domain import JobState
from dqd.retry import RetryDecision, retry_decision

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("max_attempts", [1, 2, 3, 5])
@pytest.mark.parametrize("attempts", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("permanent", [False, True])
def test_every_combination(attempts: int, max_attempts: int, permanent: bool) -> None:
    got = retry_decision(attempts, max_attempts, permanent=permanent, backoff_seconds=10, now=NOW)
    if permanent or attempts >= max_attempts:
        assert got == RetryDecision(JobState.FAILED, None)
        assert got.final
    else:
        assert got == RetryDecision(JobState.QUEUED, NOW + timedelta(seconds=10 * 2 ** (attempts - 1)))
        assert not got.final


def test_backoff_doubles_from_the_base_delay() -> None:
    delays = [
        retry_decision(n, 10, permanent=False, backoff_seconds=30, now=NOW).not_before for n in range(1, 6)
    ]
    assert [(d - NOW).total_seconds() for d in delays if d] == [30, 60, 120, 240, 480]


def test_the_last_attempt_fails_the_job_and_the_one_before_does_not() -> None:
    assert retry_decision(3, 3, permanent=False, backoff_seconds=1, now=NOW).final
    assert not retry_decision(2, 3, permanent=False, backoff_seconds=1, now=NOW).final


def test_a_permanent_error_fails_on_the_first_attempt() -> None:
    assert retry_decision(1, 3, permanent=True, backoff_seconds=1, now=NOW).state is JobState.FAILED


def test_attempt_zero_backs_off_by_the_base_delay() -> None:
    # A released-then-failed job can show 0 attempts; it must not back off by half the base.
    got = retry_decision(0, 3, permanent=False, backoff_seconds=8, now=NOW)
    assert got.not_before == NOW + timedelta(seconds=8)


def test_zero_backoff_requeues_at_once() -> None:
    assert retry_decision(1, 3, permanent=False, backoff_seconds=0, now=NOW).not_before == NOW
