"""Issue 16 on a real catalog (SQLite and Postgres): the outbox, freezes and rollbacks, delivery.

Notifications are written in the decision's transaction and only when the file
to load changes (or on an error); a freeze holds what ships across later
decisions; the sender calls a real HTTP receiver on 127.0.0.1.
"""

from __future__ import annotations

import hmac
import time
from datetime import timedelta
from pathlib import Path

import pytest

from dqd.catalog import Catalog
from dqd.daemon.notifier import deliver_due
from dqd.domain import (
    AccuracyResult,
    EngineResult,
    InputSource,
    Outcome,
    VariantResult,
    VariantSpec,
    WeightType,
)
from dqd.errors import UsageError
from dqd.notifications import Outbox, signature
from dqd.settings import NotificationSettings
from tests.acceptance.harness import free_port
from tests.integration.test_store import make_host
from tests.receiver import Receiver

SHA = "c" * 64
CLASS = "x86_64-avx2"
U8U8 = VariantSpec(WeightType.U8U8)
U8S8 = VariantSpec(WeightType.U8S8)


def result(
    tmp_path: Path, selected: VariantSpec | None, outcome: Outcome = Outcome.QUANTIZED
) -> EngineResult:
    variants = []
    for spec in (U8U8, U8S8):
        output = tmp_path / f"{spec.name}.onnx"
        output.write_bytes(spec.name.encode())
        variants.append(VariantResult(spec, "1.32.0", str(output), "d" * 64, 10, 0.1))
    return EngineResult(
        path="team/model.onnx",
        sha256=SHA,
        outcome=outcome,
        selected=selected,
        speedup=1.8 if selected else None,
        speedup_ci=(1.7, 1.9) if selected else None,
        reasons=("test",),
        error="boom" if outcome is Outcome.ERROR else None,
        seconds=1.0,
        search_mode="design",
        policy_version="design-1",
        ort_version="1.32.0",
        source_size_bytes=100,
        variants=tuple(variants) if outcome is not Outcome.ERROR else (),
        accuracy=tuple(
            AccuracyResult(spec, InputSource.SYNTHETIC, {"y": {"cosine_mean": 0.99}}, True, "ok", True)
            for spec in (U8U8, U8S8)
        )
        if outcome is not Outcome.ERROR
        else (),
    )


@pytest.fixture
def outboxed(catalog: Catalog, tmp_path: Path) -> Catalog:
    catalog.outbox = Outbox(("http://127.0.0.1:9/a", "http://127.0.0.1:9/b"), str(tmp_path / "pub"))
    catalog.upsert_host(make_host("h1", CLASS))
    catalog.observe_file("team/model.onnx", SHA, 100, 1)
    return catalog


def test_a_notification_per_url_only_when_the_file_to_load_changes_and_on_every_error(
    outboxed: Catalog, tmp_path: Path
) -> None:
    catalog = outboxed
    host = make_host("h1", CLASS)
    first = catalog.record_engine_result(host, result(tmp_path, U8U8))
    rows = catalog.notifications()
    assert [(n.event, n.url) for n in rows] == [
        ("selection_changed", "http://127.0.0.1:9/b"),
        ("selection_changed", "http://127.0.0.1:9/a"),
    ]
    assert rows[0].event_id == rows[1].event_id  # one event, two receivers: one id to de-duplicate by
    body = rows[0].payload
    assert body["decision_id"] == first and body["model"] == "team/model.onnx"
    assert body["variant"] == U8U8.name and body["is_original"] is False
    assert body["load_path"] == str(tmp_path / f"{U8U8.name}.onnx")
    assert body["published_path"] == f"{tmp_path / 'pub'}/{CLASS}/team/model.onnx"
    assert body["speedup"] == 1.8 and body["speedup_ci"] == [1.7, 1.9]
    assert body["accuracy"] == {"metric": "cosine_mean", "value": 0.99}

    catalog.record_engine_result(host, result(tmp_path, U8U8))  # the nightly run picks the same file
    assert len(catalog.notifications()) == 2
    kept = catalog.record_engine_result(host, result(tmp_path, None, Outcome.KEPT_FP32))
    newest = catalog.notifications(limit=1)[0]
    assert newest.decision_id == kept and newest.payload["is_original"] is True
    assert newest.payload["load_path"] == "team/model.onnx"
    catalog.record_engine_result(host, result(tmp_path, None, Outcome.ERROR))
    error = catalog.notifications(limit=1)[0]
    assert error.event == "error" and error.payload["error"] == "boom" and error.payload["load_path"] is None
    assert len(catalog.notifications()) == 6


def test_freeze_holds_the_file_across_later_decisions_and_rollback_goes_to_the_previous_file(
    outboxed: Catalog, tmp_path: Path
) -> None:
    catalog = outboxed
    host = make_host("h1", CLASS)
    quantized = catalog.record_engine_result(host, result(tmp_path, U8U8))
    kept = catalog.record_engine_result(host, result(tmp_path, None, Outcome.KEPT_FP32))
    assert catalog.best_choice("team/model.onnx", CLASS, "1.32.0").decision_id == kept

    rolled = catalog.rollback("model.onnx", CLASS)
    assert (rolled.decision_id, rolled.previous_decision_id, rolled.frozen) == (quantized, kept, True)
    assert rolled.notified == 2
    assert catalog.notifications(limit=1)[0].payload["cause"] == "rollback"
    best = catalog.best_choice("team/model.onnx", CLASS, "1.32.0")
    assert (best.decision_id, best.frozen, best.variant) == (quantized, True, U8U8.name)
    assert best.note and "frozen" in best.note
    (held,) = catalog.model_detail("model.onnx").freezes
    assert (held.host_class, held.decision_id, held.reason) == (CLASS, quantized, "rollback")

    # A nightly requantization still records, but what ships does not move and nobody is told.
    before = len(catalog.notifications())
    nightly = catalog.record_engine_result(host, result(tmp_path, U8S8))
    assert len(catalog.notifications()) == before
    assert catalog.best_choice("team/model.onnx", CLASS, "1.32.0").decision_id == quantized
    assert catalog.serving_decisions_for_class(CLASS)[SHA][0].id == quantized
    assert catalog.latest_decision(SHA, CLASS).id == nightly  # type: ignore[union-attr]

    back = catalog.unfreeze("model.onnx", CLASS)
    assert (back.decision_id, back.frozen, back.notified) == (nightly, False, 2)
    assert catalog.model_detail("model.onnx").freezes == []
    assert catalog.best_choice("team/model.onnx", CLASS, "1.32.0").decision_id == nightly
    with pytest.raises(UsageError, match="not frozen"):
        catalog.unfreeze("model.onnx", CLASS)

    # A freeze at a decision whose variant file is gone is refused, not shipped broken.
    (tmp_path / f"{U8U8.name}.onnx").unlink()
    with pytest.raises(UsageError, match="gone"):
        catalog.freeze("model.onnx", CLASS, decision_id=quantized)
    frozen = catalog.freeze("model.onnx", CLASS)  # what ships now
    assert frozen.decision_id == nightly and frozen.notified == 0  # the same file: nothing to tell


def test_delivery_retries_a_receiver_that_is_down_then_delivers_each_event_once_signed(
    catalog: Catalog, tmp_path: Path
) -> None:
    receiver = Receiver(free_port())
    catalog.outbox = Outbox((receiver.url,))
    catalog.upsert_host(make_host("h1", CLASS))
    catalog.observe_file("team/model.onnx", SHA, 100, 1)
    catalog.record_engine_result(make_host("h1", CLASS), result(tmp_path, U8U8))
    settings = NotificationSettings(secret="s3cret", backoff_seconds=0.2, timeout_seconds=2)

    down = deliver_due(catalog, settings)
    assert (down.delivered, down.retrying) == (0, 1)
    (row,) = catalog.notifications()
    assert row.state == "pending" and row.attempts == 1 and "Connection refused" in (row.last_error or "")
    assert deliver_due(catalog, settings).retrying == 0  # not due again before its backoff

    receiver.start()
    try:
        time.sleep(0.3)
        assert deliver_due(catalog, settings).delivered == 1
        assert deliver_due(catalog, settings).delivered == 0
        (got,) = receiver.received
        assert got.body["id"] == row.event_id == got.headers["X-Dqd-Event-Id"]
        expected = signature("s3cret", got.headers["X-Dqd-Timestamp"], got.raw)
        assert hmac.compare_digest(got.headers["X-Dqd-Signature"], expected)
        assert catalog.notifications()[0].state == "delivered"

        # A receiver answering 500 past give_up_hours: failed, listed, and sent again on retry.
        catalog.record_engine_result(make_host("h1", CLASS), result(tmp_path, None, Outcome.ERROR))
        receiver.status = 500
        assert deliver_due(catalog, settings.model_copy(update={"give_up_hours": 1e-9})).failed == 1
        (failed,) = catalog.notifications(state="failed")
        assert failed.last_error == "HTTP 500 Internal Server Error"
        receiver.status = 200
        assert catalog.retry_failed_notifications() == 1
        assert deliver_due(catalog, settings).delivered == 1
        assert len(set(receiver.ids())) == len(receiver.ids()) == 2
    finally:
        receiver.stop()


def test_two_senders_never_hold_the_same_row(catalog: Catalog, tmp_path: Path) -> None:
    catalog.outbox = Outbox(("http://127.0.0.1:9/x",))
    catalog.upsert_host(make_host("h1", CLASS))
    catalog.observe_file("team/model.onnx", SHA, 100, 1)
    catalog.record_engine_result(make_host("h1", CLASS), result(tmp_path, U8U8))
    first = catalog.claim_notifications(lease_seconds=60)
    assert len(first) == 1 and catalog.claim_notifications(lease_seconds=60) == []
    catalog.settle_notification(first[0].id, error="refused", retry_in=timedelta(0))
    assert len(catalog.claim_notifications(lease_seconds=60)) == 1
