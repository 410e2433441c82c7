"""Webhook notifications: what is sent, how it is signed, when a failed call is tried again.

Pure: the catalog writes the outbox rows (dqd.catalog.outbox) in the
transaction of what they report, and the daemon's sender
(dqd.daemon.notifier) makes the HTTP calls. A receiver de-duplicates by the
body's ``id`` (also the ``X-Dqd-Event-Id`` header): a redelivery after a crash
or a lost response carries the same one.

Signature: ``X-Dqd-Signature: sha256=<hex>``, the HMAC-SHA256 of
``<X-Dqd-Timestamp>.<body bytes>`` under ``notifications.secret``, so a
receiver can refuse replays of old bodies as well as forged ones.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

BODY_FORMAT = 1


class Event(StrEnum):
    SELECTION_CHANGED = "selection_changed"  # the file to load for (path, host class) is another now
    ERROR = "error"  # a decision ended in error


class Cause(StrEnum):
    DECISION = "decision"
    FREEZE = "freeze"
    UNFREEZE = "unfreeze"
    ROLLBACK = "rollback"


@dataclass(frozen=True)
class Outbox:
    """Where the catalog addresses the notifications it writes (from ``[notifications]``)."""

    urls: tuple[str, ...] = ()
    publish_dir: str | None = None  # to tell receivers the published copy's path


@dataclass(frozen=True)
class Selection:
    """What a (model version, host class) serves: one decision's file, or nothing (an error)."""

    decision_id: int
    outcome: str
    variant: str | None  # None: the original
    variant_output_path: str | None
    frozen: bool = False

    @property
    def file_key(self) -> tuple[str, str | None] | None:
        """Equal keys load the same file; None: an error, nothing to load."""
        if self.outcome == "error":
            return None
        return ("variant", self.variant_output_path) if self.variant else ("original", None)


def selection_changed(before: Selection | None, after: Selection) -> bool:
    """Whether the file to load is another one now (an error loads nothing: not a change)."""
    return after.file_key is not None and (before is None or before.file_key != after.file_key)


def body(
    *,
    event_id: str,
    event: Event,
    cause: Cause,
    created_at: datetime,
    model: str,
    sha256: str,
    host_class: str,
    selection: Selection,
    ort_version: str,
    speedup: float | None,
    speedup_ci: tuple[float, float] | None,
    accuracy: tuple[str | None, float | None],
    error: str | None,
    publish_dir: str | None,
    inside_root: bool,
) -> dict[str, Any]:
    """The JSON object POSTed for one (event, model path)."""
    original = selection.variant is None
    load_path = None if selection.file_key is None else (model if original else selection.variant_output_path)
    published = f"{publish_dir.rstrip('/')}/{host_class}/{model}" if publish_dir and inside_root else None
    metric, value = accuracy
    return {
        "format": BODY_FORMAT,
        "id": event_id,
        "event": event.value,
        "cause": cause.value,
        "created_at": created_at.isoformat(),
        "model": model,
        "sha256": sha256,
        "host_class": host_class,
        "onnxruntime_version": ort_version,
        "outcome": selection.outcome,
        "decision_id": selection.decision_id,
        "frozen": selection.frozen,
        "variant": selection.variant,
        "is_original": original,
        "load_path": load_path,
        "published_path": published if load_path is not None else None,
        "speedup": speedup,
        "speedup_ci": list(speedup_ci) if speedup_ci else None,
        "accuracy": {"metric": metric, "value": value} if metric is not None else None,
        "error": error,
    }


def encode(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed): one encoding, so a redelivery signs the same bytes."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def signature(secret: str, timestamp: str, data: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + data, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def headers(payload: dict[str, Any], data: bytes, *, secret: str | None, timestamp: str) -> dict[str, str]:
    sent = {
        "Content-Type": "application/json",
        "User-Agent": "dqd-webhook",
        "X-Dqd-Event-Id": str(payload["id"]),
        "X-Dqd-Event": str(payload["event"]),
        "X-Dqd-Timestamp": timestamp,
    }
    if secret:
        sent["X-Dqd-Signature"] = signature(secret, timestamp, data)
    return sent


def next_attempt_delay(
    attempts: int, *, base_seconds: float, cap_seconds: float, jitter: random.Random | None = None
) -> timedelta:
    """Exponential backoff after ``attempts`` failed calls, capped, with ±10 % jitter.

    The jitter spreads the retries of many rows (and of several daemons) that
    failed together when a receiver went down.
    """
    delay = min(cap_seconds, base_seconds * 2 ** max(0, attempts - 1))
    spread = (jitter or random).uniform(0.9, 1.1)
    return timedelta(seconds=delay * spread)
