"""``dqd run --serve``: the API inside the daemon, so /metrics carries the daemon's own figures."""

from __future__ import annotations

import hashlib
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from dqd.catalog import Catalog
from tests.acceptance.harness import Daemon, done_count, free_port, wait_for
from tests.acceptance.tiny import write_model

pytestmark = pytest.mark.slow


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    daemon = Daemon(tmp_path, f"sqlite:///{tmp_path / 'dqd.db'}", DQD_API__SERVE_IN_DAEMON="true")
    yield daemon
    daemon.kill()


def test_serve_in_daemon_exposes_health_and_process_metrics(daemon: Daemon) -> None:
    port = free_port()
    daemon.start(DQD_API__PORT=str(port))
    base = f"http://127.0.0.1:{port}"
    assert get(base + "/healthz")[0] == 200
    assert get(base + "/readyz")[0] == 200

    digest = hashlib.sha256(write_model(daemon.watch / "m.onnx", seed=7).read_bytes()).hexdigest()
    catalog = Catalog.from_url(daemon.database_url)
    try:
        wait_for("the model to be decided", lambda: done_count(catalog, {digest}) == 1 or None, 60)
    finally:
        catalog.close()

    status, metrics = get(base + "/metrics")
    assert status == 200
    # Catalog-wide gauges and the figures only the daemon's own process knows, side by side.
    assert 'dqd_queue_depth{state="done"} 1.0' in metrics
    assert "dqd_observer_lag_seconds_count 1.0" in metrics
    assert "dqd_job_seconds_count 1.0" in metrics
    assert daemon.stop() == 0


def test_port_in_use_is_a_clear_error(daemon: Daemon) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        daemon.env["DQD_API__PORT"] = str(port)
        with pytest.raises(AssertionError, match="daemon exited early"):
            daemon.start()
        assert daemon.wait_exit(10) == 3
        assert "could not listen" in daemon.log_text()
