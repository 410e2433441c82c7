"""Sending the outbox: HTTP POSTs of due notifications, retried with backoff.

Every daemon runs a :class:`Notifier` thread (rows are leased, so several
daemons share the work); ``dqd notifications deliver`` makes one pass by hand
(a catalog written only by ``dqd process``). Any 2xx settles a row; anything
else (refused, timed out, 4xx, 5xx) is retried after
:func:`dqd.notifications.next_attempt_delay`, until ``give_up_hours``.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dqd import metrics
from dqd.catalog import Catalog
from dqd.catalog.outbox import Notification
from dqd.errors import CatalogError
from dqd.notifications import encode, headers, next_attempt_delay
from dqd.settings import NotificationSettings

logger = logging.getLogger(__name__)

# Nothing due: look again this often, since another process (`dqd unfreeze`, `dqd process`, another
# host) may have written rows. A read of one index entry; the claim (a write) only when something is due.
IDLE_WAIT_SECONDS = 2.0


@dataclass
class DeliveryPass:
    delivered: int = 0
    retrying: int = 0
    failed: int = 0


def post(notification: Notification, *, secret: str | None, timeout: float) -> str | None:
    """One call; None when the receiver accepted it (2xx), else why not."""
    data = encode(notification.payload)
    sent = headers(notification.payload, data, secret=secret, timestamp=str(int(time.time())))
    request = urllib.request.Request(notification.url, data=data, headers=sent, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"{type(exc).__name__}: {reason}".splitlines()[0]
    return None if 200 <= status < 300 else f"HTTP {status}"


def deliver_due(catalog: Catalog, settings: NotificationSettings) -> DeliveryPass:
    """Claim and send what is due now, one row at a time; raises CatalogError.

    One row per claim: its lease then covers the one call it guards, so a slow receiver never lets
    a second sender take rows this one has yet to call.
    """
    outcome = DeliveryPass()
    secret = settings.signing_secret()
    lease = settings.timeout_seconds * 2 + 5
    while claimed := catalog.claim_notifications(lease_seconds=lease, limit=1):
        notification = claimed[0]
        error = post(notification, secret=secret, timeout=settings.timeout_seconds)
        state = catalog.settle_notification(
            notification.id,
            error=error,
            retry_in=next_attempt_delay(
                notification.attempts + 1,
                base_seconds=settings.backoff_seconds,
                cap_seconds=settings.max_backoff_seconds,
            ),
            give_up_after=timedelta(hours=settings.give_up_hours),
        )
        _count(outcome, state)
        _log(notification, state, error)
    return outcome


def _count(outcome: DeliveryPass, state: str) -> None:
    if state == "delivered":
        outcome.delivered += 1
    elif state == "failed":
        outcome.failed += 1
    else:
        outcome.retrying += 1
    metrics.NOTIFICATIONS.labels(result="retry" if state == "pending" else state).inc()


def _log(notification: Notification, state: str, error: str | None) -> None:
    extra = {
        "action": f"notification_{state}",
        "notification_id": notification.id,
        "event_id": notification.event_id,
        "url": notification.url,
        "path": notification.model,
    }
    if error is None:
        logger.info(
            "notified %s of %s (%s)", notification.url, notification.model, notification.event, extra=extra
        )
        return
    (logger.error if state == "failed" else logger.warning)(
        "notifying %s of %s failed (%s)%s",
        notification.url,
        notification.model,
        error,
        ": given up (`dqd notifications retry`)" if state == "failed" else "; will retry",
        extra=extra | {"error": error},
    )


class Notifier:
    """The daemon's sender thread: a pass when woken (a decision committed) or when rows fall due."""

    def __init__(self, catalog: Catalog, settings: NotificationSettings, stop: threading.Event) -> None:
        self.catalog = catalog
        self.settings = settings
        self.stop = stop
        self.wake = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            wait = IDLE_WAIT_SECONDS
            try:
                due = self.catalog.next_notification_due()
                if due is not None and due <= datetime.now(UTC):
                    deliver_due(self.catalog, self.settings)
                    due = self.catalog.next_notification_due()
                if due is not None:
                    wait = min(wait, max(0.2, (due - datetime.now(UTC)).total_seconds()))
            except CatalogError as exc:
                logger.warning("notifications deferred: %s", exc, extra={"action": "notifications_deferred"})
                wait = 5.0
            except Exception:
                logger.exception("notifications failed", extra={"action": "notifications_deferred"})
            self.wake.wait(wait)
            self.wake.clear()
