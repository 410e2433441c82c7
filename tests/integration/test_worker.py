"""The worker's job handling against a real catalog (SQLite and Postgres).

The engine is replaced by a stand-in callable here so each engine answer
(transient error, permanent error, crash, success) can be produced on
purpose; the acceptance tests run the real engine.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

from dqd import metrics
from dqd.catalog import Catalog
from dqd.daemon.stages import stage_name
from dqd.daemon.worker import Worker
from dqd.domain import (
    EngineResult,
    HostInfo,
    JobState,
    Outcome,
    SearchMode,
    VariantResult,
    VariantSpec,
    WeightType,
)
from dqd.errors import EnvironmentFailure
from dqd.hostinfo import detect_host
from dqd.pipeline.plan import ModelPlan, plan_for
from dqd.settings import Settings

SHA = "d" * 64


def result(outcome: Outcome, *, permanent: bool = True, **changes: object) -> EngineResult:
    base = EngineResult(
        path="m.onnx",
        sha256=SHA,
        outcome=outcome,
        selected=None,
        speedup=None,
        speedup_ci=None,
        reasons=("stand-in",),
        error="boom" if outcome is Outcome.ERROR else None,
        seconds=0.1,
        search_mode="design",
        policy_version="design-two-step/1",
        ort_version="1.32.0",
        permanent_error=permanent,
    )
    from dataclasses import replace

    return replace(base, **changes)  # type: ignore[arg-type]


class Engine:
    """Answers with the next scripted result (or raises it) and counts calls."""

    def __init__(self, *answers: EngineResult | Exception) -> None:
        self.answers = list(answers)
        self.calls = 0

    def __call__(self, path: Path, settings: Settings, **_: object) -> EngineResult:
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    (root / "repo" / "m" / "1").mkdir(parents=True)
    (root / "repo" / "m" / "1" / "model.onnx").write_bytes(b"fp32 model")
    (root / "repo" / "m" / "config.pbtxt").write_text('name: "m"')
    return root


def make_worker(
    catalog: Catalog, tree: Path, engine: Callable[..., EngineResult], **settings: object
) -> tuple[Worker, HostInfo]:
    config = Settings.model_validate({"watch_dir": str(tree), "worker": {"backoff_seconds": 0}, **settings})
    host = detect_host()
    catalog.upsert_host(host)
    catalog.observe_file("repo/m/1/model.onnx", SHA, 10)
    worker = Worker(
        catalog,
        config,
        host,
        owner="test:1",
        stop=threading.Event(),
        root=tree,
        plan_for=partial(plan_for, config, tree, strict=False),
        process=engine,  # type: ignore[arg-type]
    )
    return worker, host


def claim(catalog: Catalog, host: HostInfo, max_attempts: int = 3):  # type: ignore[no-untyped-def]
    catalog.enqueue(SHA, host.host_class, source_path="repo/m/1/model.onnx", max_attempts=max_attempts)
    job = catalog.claim_next_job(host.host_class, "test:1", 60)
    assert job is not None
    return job


def test_transient_errors_retry_then_fail_with_the_error_recorded(catalog: Catalog, tree: Path) -> None:
    engine = Engine(result(Outcome.ERROR, permanent=False), result(Outcome.ERROR, permanent=False))
    worker, host = make_worker(catalog, tree, engine)
    job = claim(catalog, host, max_attempts=2)
    worker.run_job(job)
    requeued = catalog.get_job(job.id)
    assert requeued.state is JobState.QUEUED and requeued.last_error == "boom"
    assert catalog.latest_decision(SHA, host.host_class) is None  # not final: nothing recorded yet
    again = catalog.claim_next_job(host.host_class, "test:1", 60)
    assert again is not None and again.attempts == 2
    worker.run_job(again)
    assert catalog.get_job(job.id).state is JobState.FAILED
    decision = catalog.latest_decision(SHA, host.host_class)
    assert decision is not None and decision.outcome is Outcome.ERROR


def test_permanent_error_fails_at_once(catalog: Catalog, tree: Path) -> None:
    worker, host = make_worker(catalog, tree, Engine(result(Outcome.ERROR, permanent=True)))
    job = claim(catalog, host, max_attempts=5)
    worker.run_job(job)
    assert catalog.get_job(job.id).state is JobState.FAILED
    assert catalog.latest_decision(SHA, host.host_class) is not None


def test_unexpected_exception_fails_the_attempt_not_the_worker(catalog: Catalog, tree: Path) -> None:
    worker, host = make_worker(catalog, tree, Engine(RuntimeError("bug"), result(Outcome.KEPT_FP32)))
    job = claim(catalog, host)
    worker.run_job(job)
    failed = catalog.get_job(job.id)
    assert failed.state is JobState.QUEUED and "RuntimeError: bug" in (failed.last_error or "")
    again = catalog.claim_next_job(host.host_class, "test:1", 60)
    assert again is not None
    worker.run_job(again)
    assert catalog.get_job(job.id).state is JobState.DONE


def test_success_records_completes_and_publishes(catalog: Catalog, tree: Path, tmp_path: Path) -> None:
    spec = VariantSpec(WeightType.U8U8)
    variant_file = tmp_path / "out" / "model.u8u8.onnx"
    variant_file.parent.mkdir()
    variant_file.write_bytes(b"int8 model")
    answer = result(
        Outcome.QUANTIZED,
        selected=spec,
        speedup=1.4,
        variants=(VariantResult(spec, "1.32.0", str(variant_file), "e" * 64, 10, 0.5),),
    )
    publish = tmp_path / "publish"
    worker, host = make_worker(catalog, tree, Engine(answer), publish_dir=str(publish))
    job = claim(catalog, host)
    worker.run_job(job)
    assert catalog.get_job(job.id).state is JobState.DONE
    decision = catalog.latest_decision(SHA, host.host_class)
    assert decision is not None and decision.outcome is Outcome.QUANTIZED and decision.variant_id is not None
    published = publish / host.host_class / "repo" / "m" / "1" / "model.onnx"
    assert published.read_bytes() == b"int8 model"
    assert (publish / host.host_class / "repo" / "m" / "config.pbtxt").read_text() == 'name: "m"'
    assert not list(published.parent.glob(".*.tmp"))  # no temporary left behind


def test_the_plan_reaches_the_engine_and_exclude_is_the_engines(catalog: Catalog, tree: Path) -> None:
    sidecar = tree / "repo" / "m" / "1" / "model.dqd.toml"
    sidecar.write_text('pin = "fp32"\nsearch = "thorough"\nnodes_to_exclude = ["mm0"]\n')
    seen: list[dict[str, object]] = []

    def engine(path: Path, settings: Settings, **kwargs: object) -> EngineResult:
        seen.append(kwargs)
        return result(Outcome.KEPT_FP32)

    worker, host = make_worker(
        catalog, tree, engine, models={"repo/*": {"accuracy": {"min_cosine_mean": 0.5}}}
    )
    job = claim(catalog, host)
    worker.run_job(job)
    (call,) = seen
    plan = call["plan"]
    assert isinstance(plan, ModelPlan)
    assert (plan.pin_fp32, plan.nodes_to_exclude, plan.accuracy.min_cosine_mean) == (True, ("mm0",), 0.5)
    assert plan.search is SearchMode.THOROUGH and call["model_root"] == tree
    assert catalog.get_job(job.id).state is JobState.DONE

    # Excluded later: the engine still gets the job and records the skip, as `dqd process` would.
    sidecar.write_text("exclude = true\n")
    catalog.enqueue(SHA, host.host_class, idempotency_key="again")
    again = catalog.claim_next_job(host.host_class, "test:1", 60)
    assert again is not None
    worker.run_job(again)
    assert catalog.get_job(again.id).state is JobState.DONE
    assert seen[1]["plan"].exclude is True  # type: ignore[attr-defined]


def test_abort_gives_the_job_back_and_records_nothing(catalog: Catalog, tree: Path) -> None:
    holder: dict[str, Worker] = {}

    def engine(path: Path, settings: Settings, **_: object) -> EngineResult:
        holder["worker"].abort()  # the grace period ran out while the engine was busy
        return result(Outcome.KEPT_FP32)

    worker, host = make_worker(catalog, tree, engine)
    holder["worker"] = worker
    job = claim(catalog, host)
    worker.run_job(job)
    back = catalog.get_job(job.id)
    assert back.state is JobState.QUEUED and back.attempts == 0
    assert catalog.latest_decision(SHA, host.host_class) is None


def test_a_model_that_cannot_be_read_as_a_unit_is_retried_and_nothing_recorded(
    catalog: Catalog, tree: Path
) -> None:
    missing = "external data file 'model.onnx.data' referenced by model.onnx is missing"
    worker, host = make_worker(catalog, tree, Engine(result(Outcome.ERROR, sha256="", error=missing)))
    job = claim(catalog, host)
    worker.run_job(job)
    back = catalog.get_job(job.id)
    assert back.state is JobState.QUEUED and back.last_error == missing
    assert catalog.latest_decision(SHA, host.host_class) is None
    assert catalog.latest_decision("", host.host_class) is None


def test_content_gone_is_cancelled_as_superseded_not_failed(catalog: Catalog, tree: Path) -> None:
    worker, host = make_worker(catalog, tree, Engine())
    (tree / "repo" / "m" / "1" / "model.onnx").unlink()
    job = claim(catalog, host)
    failures_before = _failures()
    worker.run_job(job)
    cancelled = catalog.get_job(job.id)
    assert cancelled.state is JobState.CANCELLED
    assert (cancelled.last_error or "").startswith("superseded: no file")
    assert _failures() == failures_before  # nothing for an alert to page about
    assert catalog.claim_next_job(host.host_class, "test:1", 60) is None  # and no retry


def test_content_changed_while_queued_is_superseded(catalog: Catalog, tree: Path) -> None:
    def engine(path: Path, settings: Settings, **_: object) -> EngineResult:
        path.write_bytes(b"new content")  # rewritten while the engine read it: the new bytes have a job
        catalog.observe_file("repo/m/1/model.onnx", "e" * 64, 11)  # and the watcher registered them
        return result(Outcome.KEPT_FP32, sha256="e" * 64)

    worker, host = make_worker(catalog, tree, engine)
    job = claim(catalog, host)
    worker.run_job(job)
    cancelled = catalog.get_job(job.id)
    assert cancelled.state is JobState.CANCELLED and "changed while queued" in (cancelled.last_error or "")
    assert catalog.latest_decision(SHA, host.host_class) is None


def test_environment_failure_is_a_job_error_never_a_decision(catalog: Catalog, tree: Path) -> None:
    lock_error = EnvironmentFailure(
        "host lock /x/host.lock: cannot open it: set host_lock", setting="host_lock"
    )
    worker, host = make_worker(catalog, tree, Engine(lock_error, lock_error))
    job = claim(catalog, host, max_attempts=2)
    worker.run_job(job)
    retried = catalog.get_job(job.id)
    assert retried.state is JobState.QUEUED and "host_lock" in (retried.last_error or "")
    again = catalog.claim_next_job(host.host_class, "test:1", 60)
    assert again is not None
    worker.run_job(again)
    failed = catalog.get_job(job.id)
    assert failed.state is JobState.FAILED and (failed.last_error or "").startswith("environment: ")
    assert catalog.latest_decision(SHA, host.host_class) is None  # out of attempts: still no decision


def test_a_decision_is_recorded_only_with_its_job_still_ours(catalog: Catalog, tree: Path) -> None:
    holder: dict[str, Worker] = {}

    def engine(path: Path, settings: Settings, **_: object) -> EngineResult:
        # The lease expired during a catalog outage and another daemon took the job over.
        job_id = holder["worker"].current.id  # type: ignore[union-attr]
        catalog.release_job(job_id, "test:1")
        assert catalog.claim_next_job(holder["host"].host_class, "other:1", 60) is not None
        return result(Outcome.KEPT_FP32)

    worker, host = make_worker(catalog, tree, engine)
    holder.update(worker=worker, host=host)  # type: ignore[arg-type]
    job = claim(catalog, host)
    worker.run_job(job)
    assert catalog.latest_decision(SHA, host.host_class) is None  # the new holder records its own
    taken = catalog.get_job(job.id)
    assert taken.state is JobState.RUNNING and taken.lease_owner == "other:1"


def test_stages_are_stored_while_running_and_cleared_after(
    catalog: Catalog, tree: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str | None] = []
    holder: dict[str, int] = {}

    def engine(
        path: Path, settings: Settings, *, progress: Callable[[str], None], **_: object
    ) -> EngineResult:
        for message in ("preflight", "quantizing u8u8", "benchmarking u8u8 against FP32"):
            progress(message)
            seen.append(_wait_for_stage(catalog, holder["job"], message))
        return result(Outcome.KEPT_FP32)

    worker, host = make_worker(catalog, tree, engine)
    job = claim(catalog, host)
    holder["job"] = job.id
    with caplog.at_level(logging.INFO, logger="dqd.daemon.stages"):
        worker.run_job(job)
    assert seen == ["preflight", "quantize u8u8", "benchmark u8u8"]
    finished = catalog.get_job(job.id)
    assert finished.state is JobState.DONE and finished.stage is None and finished.stage_started_at is None
    logged = [(r.stage, r.stage_seconds) for r in caplog.records if getattr(r, "action", "") == "job_stage"]  # type: ignore[attr-defined]
    assert [stage for stage, _ in logged] == ["preflight", "quantize u8u8", "benchmark u8u8"]
    assert all(seconds >= 0 for _, seconds in logged)


def _wait_for_stage(catalog: Catalog, job_id: int, message: str) -> str | None:
    deadline = time.monotonic() + 5
    stage = None
    while time.monotonic() < deadline:
        stage = catalog.get_job(job_id).stage
        if stage and stage_name(message) == stage:
            return stage
        time.sleep(0.02)
    return stage


def _failures() -> float:
    return sum(
        sample.value
        for family in metrics.JOBS_FAILED.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    )


def test_a_path_outside_the_watched_folder_is_not_the_daemons(
    catalog: Catalog, tree: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere.onnx"
    outside.write_bytes(b"fp32 model")
    worker, host = make_worker(catalog, tree, Engine())
    (tree / "repo" / "m" / "1" / "model.onnx").unlink()
    catalog.observe_file(str(outside), SHA, 10)  # as `dqd process` records a file outside the root
    job = claim(catalog, host)
    worker.run_job(job)
    assert catalog.get_job(job.id).state is JobState.CANCELLED  # never run from outside the root
