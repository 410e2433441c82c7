"""Issue 16 with real ``dqd run`` subprocesses, a real folder, and a real webhook receiver on 127.0.0.1.

One model's life: its first decision is notified to a receiver that is down
for several backoff periods (delivered once it is up, exactly once by id); a
freeze holds the published file while an edited sidecar re-queues the model
and a new decision would ship another file; unfreezing ships and notifies
it. And a daemon killed right after a decision's commit delivers its
notification after the restart.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest

from dqd.catalog import Catalog
from dqd.daemon.worker import TEST_HOOK_KILL_AFTER_COMMIT
from dqd.domain import JobKind
from tests.acceptance.harness import Daemon, free_port, wait_for
from tests.acceptance.tiny import write_model
from tests.receiver import Receiver

pytestmark = pytest.mark.slow

BACKOFF = 0.4


def hooked(tmp_path: Path, url: str, receiver: Receiver, **env: str) -> Daemon:
    return Daemon(
        tmp_path,
        url,
        DQD_PUBLISH_DIR=str(tmp_path / "publish"),
        DQD_NOTIFICATIONS__WEBHOOKS=json.dumps([receiver.url]),
        DQD_NOTIFICATIONS__SECRET="s3cret",
        DQD_NOTIFICATIONS__BACKOFF_SECONDS=str(BACKOFF),
        DQD_NOTIFICATIONS__MAX_BACKOFF_SECONDS="1",
        # Scans far apart: what happens within the test is the watcher's and the commands' doing.
        DQD_WATCH__RECONCILE_INTERVAL="300",
        **env,
    )


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_notified_once_through_an_outage_frozen_across_a_requeue_and_unfrozen(
    tmp_path: Path, url: str, catalog: Catalog
) -> None:
    receiver = Receiver(free_port())  # not listening yet: the receiver is down
    daemon = hooked(tmp_path, url, receiver)
    model = write_model(daemon.watch / "team" / "m.onnx", seed=7)
    sidecar = model.with_name("m.dqd.toml")
    sidecar.write_text('pin = { weight_type = "U8U8" }\n')
    sha = digest(model)
    try:
        daemon.start()
        first = wait_for("the first decision", lambda: catalog.latest_decision(sha, _class(catalog)), 60)
        host_class = first.host_class
        assert first.outcome.value == "quantized"
        # Down for a few backoff periods: attempts pile up, nothing is lost.
        wait_for(
            "three refused calls",
            lambda: ((n := catalog.notifications()) and n[0].attempts >= 3) or None,
            30,
        )
        receiver.start()
        wait_for("the delivery", lambda: receiver.received or None, 15)
        (note,) = catalog.notifications()
        assert note.state == "delivered" and note.attempts >= 4
        body = receiver.bodies()[0]
        assert (body["event"], body["model"], body["decision_id"]) == (
            "selection_changed",
            "team/m.onnx",
            first.id,
        )
        assert body["variant"] == "u8u8" and body["published_path"].endswith(f"/{host_class}/team/m.onnx")

        published = tmp_path / "publish" / host_class / "team" / "m.onnx"
        wait_for("published", published.exists, 20)
        shipped = digest(published)
        assert shipped != sha  # the U8U8 variant

        frozen = daemon.cli("freeze", "m.onnx")
        assert frozen.returncode == 0, frozen.stderr
        # The edited sidecar is seen by the watcher: the model is re-queued under its new plan.
        sidecar.write_text('pin = "fp32"\n')
        requeued = wait_for(
            "the re-queued decision",
            lambda: ((d := catalog.latest_decision(sha, host_class)) and d.id != first.id and d) or None,
            60,
        )
        assert requeued.outcome.value == "kept_fp32"
        kinds = sorted(job.kind.value for job in catalog.list_jobs() if job.sha256 == sha)
        assert kinds == [JobKind.QUANTIZE.value, JobKind.REQUANTIZE.value]
        # Frozen: what is loaded does not move, nobody is told it did.
        assert digest(published) == shipped
        best = daemon.cli("best", "m.onnx", "--json")
        assert json.loads(best.stdout)["decision_id"] == first.id
        wait_for("the provenance says frozen", lambda: _provenance(published).get("frozen") is True, 10)
        assert len(receiver.received) == 1
        # dqd show says which decision ships, and that a later one does not.
        shown = daemon.cli("show", "m.onnx").stdout
        assert f"frozen   {host_class} ships decision #{first.id} whatever" in shown, shown
        (marked,) = [line for line in shown.splitlines() if f"[FREEZE: ships on {host_class}]" in line]
        assert marked.startswith(f"#{first.id} ")
        freezes = json.loads(daemon.cli("show", "m.onnx", "--json").stdout)["freezes"]
        assert [(f["host_class"], f["decision_id"], f["reason"]) for f in freezes] == [
            (host_class, first.id, "freeze")
        ]

        unfrozen = daemon.cli("unfreeze", "m.onnx")
        assert unfrozen.returncode == 0 and "1 notification" in unfrozen.stdout, (
            unfrozen.stdout + unfrozen.stderr
        )
        assert digest(published) == sha  # published by the command itself
        assert json.loads(daemon.cli("show", "m.onnx", "--json").stdout)["freezes"] == []
        wait_for("the second delivery", lambda: len(receiver.received) == 2 or None, 15)
        second = receiver.bodies()[1]
        assert (second["cause"], second["is_original"], second["decision_id"]) == (
            "unfreeze",
            True,
            requeued.id,
        )
        assert Counter(receiver.ids()).most_common(1)[0][1] == 1  # each id exactly once
        listed = json.loads(daemon.cli("notifications", "--json").stdout)
        assert [(n["state"], n["event_id"]) for n in listed] == [
            ("delivered", second["id"]),
            ("delivered", body["id"]),
        ]
        # A command run without the daemon's [notifications] writes none, and says so.
        rolled = daemon.cli("rollback", "m.onnx", DQD_NOTIFICATIONS__WEBHOOKS="[]")
        assert rolled.returncode == 0 and "rolled back to decision 1" in rolled.stdout, rolled.stderr
        assert "no notifications written" in rolled.stderr
        assert len(catalog.notifications()) == 2
    finally:
        daemon.stop()
        receiver.stop()


def test_a_kill_between_the_decision_and_its_delivery_delivers_after_restart(
    tmp_path: Path, url: str, catalog: Catalog
) -> None:
    receiver = Receiver(free_port()).start()
    daemon = hooked(tmp_path, url, receiver)
    model = write_model(daemon.watch / "m.onnx", seed=8)
    sha = digest(model)
    try:
        daemon.start(**{TEST_HOOK_KILL_AFTER_COMMIT: "1"})
        wait_for(
            "the kill after the commit", lambda: daemon.process and daemon.process.poll() is not None, 60
        )
        assert catalog.latest_decision(sha, _class(catalog)) is not None
        (pending,) = catalog.notifications()
        assert pending.state == "pending" and receiver.received == []
        daemon.start()
        wait_for("the delivery after restart", lambda: receiver.received or None, 15)
        assert receiver.ids() == [pending.event_id]
    finally:
        daemon.stop()
        receiver.stop()


def _class(catalog: Catalog) -> str:
    hosts = catalog.list_hosts()
    return hosts[0][0].host_class if hosts else "none"


def _provenance(published: Path) -> dict[str, object]:
    try:
        data = json.loads(published.with_name(published.name + ".dqd.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
