"""The persistent job queue on SQLite and Postgres (the ``catalog`` fixture runs each test on both)."""

from __future__ import annotations

import multiprocessing
import sys
import threading
from datetime import UTC, datetime, timedelta

import pytest

from dqd.catalog import Catalog
from dqd.catalog.jobs import LOST_LEASES_MAX
from dqd.domain import JobKind, JobState

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SHA = "a" * 64
CLASS = "x86_64-avx2"


def content(catalog: Catalog, n: int) -> str:
    digest = f"{n:064x}"
    catalog.observe_file(f"m{n}.onnx", digest, 10, now=T0)
    return digest


def test_enqueue_is_idempotent_per_content_and_class(catalog: Catalog) -> None:
    digest = content(catalog, 1)
    first = catalog.enqueue(digest, CLASS, now=T0)
    assert first is not None and first.state is JobState.QUEUED
    assert catalog.enqueue(digest, CLASS, now=T0) is None  # same default key
    other = catalog.enqueue(digest, "aarch64-dotprod", now=T0)
    assert other is not None and other.id != first.id
    # A requantize key differs, but an active job for the same (content, class) blocks it.
    assert catalog.enqueue(digest, CLASS, kind=JobKind.REQUANTIZE, idempotency_key="rq:1", now=T0) is None
    claimed = catalog.claim_next_job(CLASS, "w", 60, now=T0)
    assert claimed is not None
    assert catalog.complete_job(claimed.id, "w", now=T0)
    again = catalog.enqueue(digest, CLASS, kind=JobKind.REQUANTIZE, idempotency_key="rq:1", now=T0)
    assert again is not None and again.kind is JobKind.REQUANTIZE
    assert catalog.enqueue(digest, CLASS, kind=JobKind.REQUANTIZE, idempotency_key="rq:1", now=T0) is None


def test_claim_only_own_class_in_priority_order(catalog: Catalog) -> None:
    low = catalog.enqueue(content(catalog, 1), CLASS, now=T0)
    high = catalog.enqueue(content(catalog, 2), CLASS, priority=5, now=T0)
    foreign = catalog.enqueue(content(catalog, 3), "aarch64-dotprod", now=T0)
    assert low and high and foreign
    first = catalog.claim_next_job(CLASS, "w", 60, now=T0)
    second = catalog.claim_next_job(CLASS, "w", 60, now=T0)
    assert (first and first.id, second and second.id) == (high.id, low.id)
    assert catalog.claim_next_job(CLASS, "w", 60, now=T0) is None
    assert first is not None and first.state is JobState.RUNNING and first.attempts == 1
    assert first.lease_owner == "w" and first.lease_expires_at == T0 + timedelta(seconds=60)


def test_expired_lease_is_reclaimed_and_renewal_keeps_it(catalog: Catalog) -> None:
    job = catalog.enqueue(content(catalog, 1), CLASS, now=T0)
    assert job is not None
    catalog.claim_next_job(CLASS, "dead", 10, now=T0)
    assert catalog.claim_next_job(CLASS, "other", 10, now=T0 + timedelta(seconds=9)) is None
    assert catalog.renew_lease(job.id, "dead", 10, now=T0 + timedelta(seconds=9))
    assert catalog.claim_next_job(CLASS, "other", 10, now=T0 + timedelta(seconds=18)) is None
    reclaimed = catalog.claim_next_job(CLASS, "other", 10, now=T0 + timedelta(seconds=20))
    assert reclaimed is not None and reclaimed.id == job.id
    # The lost lease is the dead process's failure, not the model's: it costs no attempt.
    assert (reclaimed.attempts, reclaimed.lost_leases, reclaimed.lease_owner) == (1, 1, "other")
    # The dead worker cannot finish or renew what it lost.
    assert not catalog.renew_lease(job.id, "dead", 10, now=T0 + timedelta(seconds=21))
    assert not catalog.complete_job(job.id, "dead")
    assert catalog.complete_job(job.id, "other")


def test_a_job_whose_dqd_process_is_lost_again_and_again_fails_at_the_cap_not_at_max_attempts(
    catalog: Catalog,
) -> None:
    job = catalog.enqueue(content(catalog, 1), CLASS, max_attempts=2, now=T0)
    assert job is not None
    at = T0
    for lost in range(LOST_LEASES_MAX):
        claimed = catalog.claim_next_job(CLASS, f"killed-{lost}", 10, now=at)
        assert claimed is not None and claimed.attempts == 1, f"after {lost} lost leases"
        at += timedelta(seconds=11)  # its process was killed: the lease runs out
    assert catalog.claim_next_job(CLASS, "next", 10, now=at) is None
    (ended,) = catalog.list_jobs()
    assert ended.state is JobState.FAILED and ended.lost_leases == LOST_LEASES_MAX
    assert ended.last_error is not None and f"lost {LOST_LEASES_MAX} times" in ended.last_error


def test_transient_failures_back_off_then_fail_after_max_attempts(catalog: Catalog) -> None:
    job = catalog.enqueue(content(catalog, 1), CLASS, max_attempts=2, now=T0)
    assert job is not None
    catalog.claim_next_job(CLASS, "w", 60, now=T0)
    state = catalog.fail_job(job.id, "w", "timeout", permanent=False, backoff_seconds=30, now=T0)
    assert state is JobState.QUEUED
    assert catalog.claim_next_job(CLASS, "w", 60, now=T0 + timedelta(seconds=29)) is None  # backing off
    again = catalog.claim_next_job(CLASS, "w", 60, now=T0 + timedelta(seconds=31))
    assert again is not None and again.attempts == 2
    state = catalog.fail_job(job.id, "w", "timeout again", permanent=False, now=T0 + timedelta(seconds=32))
    assert state is JobState.FAILED
    failed = catalog.get_job(job.id)
    assert failed.last_error == "timeout again" and failed.finished_at is not None


def test_permanent_failure_is_final_at_once(catalog: Catalog) -> None:
    job = catalog.enqueue(content(catalog, 1), CLASS, max_attempts=5, now=T0)
    assert job is not None
    catalog.claim_next_job(CLASS, "w", 60, now=T0)
    assert catalog.fail_job(job.id, "w", "not ONNX", permanent=True, now=T0) is JobState.FAILED
    assert catalog.claim_next_job(CLASS, "w", 60, now=T0 + timedelta(days=1)) is None
    retried = catalog.retry_job(job.id, now=T0)
    assert retried.state is JobState.QUEUED and retried.attempts == 0


def test_release_returns_job_without_counting_the_attempt(catalog: Catalog) -> None:
    job = catalog.enqueue(content(catalog, 1), CLASS, now=T0)
    assert job is not None
    catalog.claim_next_job(CLASS, "w", 60, now=T0)
    assert catalog.release_job(job.id, "w", now=T0)
    released = catalog.get_job(job.id)
    assert released.state is JobState.QUEUED and released.attempts == 0 and released.lease_owner is None
    assert catalog.claim_next_job(CLASS, "w2", 60, now=T0) is not None


def test_cancel_stops_a_running_job_being_renewed(catalog: Catalog) -> None:
    job = catalog.enqueue(content(catalog, 1), CLASS, now=T0)
    assert job is not None
    catalog.claim_next_job(CLASS, "w", 60, now=T0)
    assert catalog.cancel_job(job.id).state is JobState.CANCELLED
    assert not catalog.renew_lease(job.id, "w", 60)


def test_contents_without_job_for_a_new_class(catalog: Catalog) -> None:
    a, b = content(catalog, 1), content(catalog, 2)
    catalog.observe_file("copy-of-1.onnx", a, 10, now=T0)
    catalog.enqueue(a, CLASS, now=T0)
    assert catalog.contents_without_job(CLASS) == [(b, "m2.onnx")]
    assert catalog.contents_without_job("aarch64-dotprod") == [(a, "copy-of-1.onnx"), (b, "m2.onnx")]
    catalog.mark_removed("m2.onnx")
    assert catalog.contents_without_job(CLASS) == []


def test_concurrent_claimers_in_threads_never_share_a_job(catalog: Catalog) -> None:
    ids = {job.id for n in range(30) if (job := catalog.enqueue(content(catalog, n), CLASS))}
    claimed: list[int] = []
    lock = threading.Lock()

    def claimer(name: str) -> None:
        while (job := catalog.claim_next_job(CLASS, name, 60)) is not None:
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=claimer, args=(f"t{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(claimed) == sorted(ids)  # every job once, none twice


def _claim_all(url: str, name: str, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    catalog = Catalog.from_url(url)
    mine = []
    while (job := catalog.claim_next_job(CLASS, name, 60)) is not None:
        mine.append(job.id)
    catalog.close()
    queue.put(mine)


@pytest.mark.postgres
def test_concurrent_daemons_in_processes_never_share_a_job(postgres_url: str) -> None:
    """Separate processes, separate connections: FOR UPDATE SKIP LOCKED on a real Postgres."""
    catalog = Catalog.from_url(postgres_url)
    ids = {job.id for n in range(60) if (job := catalog.enqueue(content(catalog, n), CLASS))}
    catalog.close()
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue = context.Queue()  # type: ignore[type-arg]
    processes = [context.Process(target=_claim_all, args=(postgres_url, f"p{i}", results)) for i in range(4)]
    for process in processes:
        process.start()
    claimed = [job_id for _ in processes for job_id in results.get(timeout=60)]
    for process in processes:
        process.join(30)
    assert sorted(claimed) == sorted(ids)


def test_concurrent_enqueue_of_one_key_gives_one_job_and_no_error(catalog: Catalog) -> None:
    """Several daemons fire the same nightly tick at once: one job, the others see a duplicate."""
    digest = content(catalog, 1)
    barrier = threading.Barrier(8)
    results: list[object] = []

    def enqueue() -> None:
        barrier.wait()
        try:
            results.append(catalog.enqueue(digest, CLASS, kind=JobKind.REQUANTIZE, idempotency_key="tick:1"))
        except Exception as exc:  # the assertion below names it
            results.append(exc)

    threads = [threading.Thread(target=enqueue) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    errors = [r for r in results if isinstance(r, Exception)]
    assert errors == []
    assert sum(r is not None for r in results) == 1
    assert len(catalog.list_jobs()) == 1


def test_the_running_stage_is_stored_for_the_lease_holder_and_cleared_at_the_end(catalog: Catalog) -> None:
    sha = content(catalog, 90)
    job = catalog.enqueue(sha, "cls")
    assert job is not None
    claimed = catalog.claim_next_job("cls", "w1", 60)
    assert claimed is not None
    long_rung = "rung 12: quantize " + "u8s8-matmul-lstm-" * 20  # longer than the column
    assert catalog.set_job_stage(job.id, "w1", long_rung, T0)
    stored = catalog.get_job(job.id)
    assert stored.stage == long_rung[:128] and stored.stage_started_at == T0
    assert not catalog.set_job_stage(job.id, "w2", "preflight", T0)  # not the lease holder
    assert catalog.complete_job(job.id, "w1")
    done = catalog.get_job(job.id)
    assert done.stage is None and done.stage_started_at is None


def test_concurrent_enqueues_with_different_keys_leave_one_active_job(catalog: Catalog) -> None:
    """Each host's `dqd requantize --stale` keys its jobs by its own tick: still one active job per pair."""
    digest = content(catalog, 1)
    barrier = threading.Barrier(8)
    results: list[object] = []

    def enqueue(index: int) -> None:
        barrier.wait()
        try:
            results.append(
                catalog.enqueue(digest, CLASS, kind=JobKind.REQUANTIZE, idempotency_key=f"tick:{index}")
            )
        except Exception as exc:  # the assertion below names it
            results.append(exc)

    threads = [threading.Thread(target=enqueue, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert [r for r in results if isinstance(r, Exception)] == []
    assert sum(r is not None for r in results) == 1
    assert len(catalog.list_jobs()) == 1


def test_retrying_a_failed_job_while_another_is_active_for_the_pair_says_so(catalog: Catalog) -> None:
    from dqd.errors import UsageError

    digest = content(catalog, 1)
    first = catalog.enqueue(digest, CLASS, now=T0)
    assert first is not None
    claimed = catalog.claim_next_job(CLASS, "w", 60, now=T0)
    assert claimed is not None
    catalog.fail_job(first.id, "w", "boom", permanent=True, now=T0)
    second = catalog.enqueue(digest, CLASS, kind=JobKind.REQUANTIZE, idempotency_key="tick:2", now=T0)
    assert second is not None
    with pytest.raises(UsageError, match=f"job {second.id} is already queued"):
        catalog.retry_job(first.id)


@pytest.mark.postgres
def test_a_host_whose_clock_runs_ahead_cannot_steal_a_live_lease(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Leases are compared on the database's clock, not the claiming host's."""
    import dqd.catalog.db as db

    catalog = Catalog.from_url(postgres_url)
    try:
        digest = content(catalog, 1)
        catalog.enqueue(digest, CLASS)
        assert catalog.claim_next_job(CLASS, "honest", 60) is not None
        # This host's clock, wherever dqd reads it, runs an hour ahead.
        host_clock = db.utcnow
        for module in [m for name, m in sys.modules.items() if name.startswith("dqd.")]:
            if getattr(module, "utcnow", None) is host_clock:
                monkeypatch.setattr(module, "utcnow", lambda: datetime.now(UTC) + timedelta(hours=1))
        assert catalog.claim_next_job(CLASS, "ahead", 60) is None
        assert catalog.renew_lease(catalog.list_jobs()[0].id, "honest", 60)
    finally:
        catalog.close()
