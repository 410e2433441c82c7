"""Pure parts of webhooks (when to notify, body, signature, backoff) and whose companion a file is."""

from __future__ import annotations

import hashlib
import hmac
import random
from datetime import UTC, datetime, timedelta

from dqd.daemon.filters import models_of_companion
from dqd.notifications import (
    Cause,
    Event,
    Selection,
    body,
    encode,
    headers,
    next_attempt_delay,
    selection_changed,
)

U8U8 = Selection(1, "quantized", "u8u8", "/out/u8u8.onnx")
ORIGINAL = Selection(2, "kept_fp32", None, None)
ERROR = Selection(3, "error", None, None)


def test_only_a_change_of_the_file_to_load_is_a_change() -> None:
    assert selection_changed(None, U8U8)
    assert not selection_changed(U8U8, Selection(9, "quantized", "u8u8", "/out/u8u8.onnx"))
    assert selection_changed(U8U8, ORIGINAL) and selection_changed(ORIGINAL, U8U8)
    assert not selection_changed(U8U8, ERROR)  # an error loads nothing: it is its own event
    assert selection_changed(ERROR, U8U8)


def test_the_body_names_what_to_load_and_where_it_is_published() -> None:
    sent = body(
        event_id="e1",
        event=Event.SELECTION_CHANGED,
        cause=Cause.DECISION,
        created_at=datetime(2026, 12, 3, tzinfo=UTC),
        model="team/m.onnx",
        sha256="a" * 64,
        host_class="x86_64-avx2",
        selection=ORIGINAL,
        ort_version="1.32.0",
        speedup=None,
        speedup_ci=None,
        accuracy=(None, None),
        error=None,
        publish_dir="/srv/pub/",
        inside_root=True,
    )
    assert sent["load_path"] == "team/m.onnx" and sent["is_original"] is True
    assert sent["published_path"] == "/srv/pub/x86_64-avx2/team/m.onnx"
    assert sent["accuracy"] is None and sent["id"] == "e1"


def test_the_signature_covers_timestamp_and_bytes() -> None:
    payload = {"id": "e1", "event": "error"}
    data = encode(payload)
    sent = headers(payload, data, secret="k", timestamp="100")
    expected = hmac.new(b"k", b"100." + data, hashlib.sha256).hexdigest()
    assert sent["X-Dqd-Signature"] == f"sha256={expected}" and sent["X-Dqd-Event-Id"] == "e1"
    assert "X-Dqd-Signature" not in headers(payload, data, secret=None, timestamp="100")


def test_backoff_doubles_up_to_its_cap_with_bounded_jitter() -> None:
    rng = random.Random(1)
    delays = [next_attempt_delay(n, base_seconds=5, cap_seconds=60, jitter=rng) for n in range(1, 8)]
    nominal = [5, 10, 20, 40, 60, 60, 60]
    for delay, expected in zip(delays, nominal, strict=True):
        assert timedelta(seconds=expected * 0.9) <= delay <= timedelta(seconds=expected * 1.1)


def test_companions_belong_to_the_models_they_name() -> None:
    folder = ["a.onnx", "b.onnx"]
    assert models_of_companion("a.dqd.toml", folder) == ["a.onnx"]
    assert models_of_companion("b.onnx.data", folder) == ["b.onnx"]
    assert models_of_companion("b_weights.bin", folder) == ["b.onnx"]
    assert models_of_companion("labels.txt", folder) == []  # which of two: neither
    assert models_of_companion("weights.bin", ["model.onnx"]) == ["model.onnx"]  # a Triton version folder
    assert models_of_companion("c.dqd.toml", folder) == []
