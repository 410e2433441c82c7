"""Issue 15: one SQLite catalog, written and read at once by the daemon, ``dqd process`` and ``dqd serve``.

Real processes on a real file: the daemon decides models dropped in its
folder, one-shot ``dqd process`` runs record others, ``dqd serve`` answers a
client that keeps reading every endpoint, and the query commands run in
between. Nobody may see "database is locked" (or any failure): WAL, the busy
timeout and write transactions that take the lock up front are what make that
true.
"""

from __future__ import annotations

import subprocess
import threading
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from dqd.catalog import Catalog
from tests.acceptance.harness import DQD, Daemon, done_count, free_port, wait_for
from tests.acceptance.tiny import write_model

pytestmark = pytest.mark.slow

READS = ("/api/v1/models", "/api/v1/jobs", "/api/v1/decisions", "/api/v1/hosts", "/report/", "/readyz")


def _read_until(base: str, stop: threading.Event, statuses: Counter[int | str]) -> None:
    while not stop.is_set():
        for path in READS:
            try:
                with urllib.request.urlopen(base + path, timeout=30) as response:
                    response.read()
                    statuses[response.status] += 1
            except urllib.error.HTTPError as exc:
                statuses[f"{exc.code} {path}: {exc.read()[:300]!r}"] += 1
            except OSError as exc:
                statuses[f"{path}: {exc}"] += 1


def test_daemon_process_and_serve_share_one_sqlite_catalog_without_a_locked_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'dqd.db'}"
    daemon = Daemon(tmp_path, url).start()
    port = free_port()
    serve_log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [*DQD, "serve", "--port", str(port)],
        cwd=tmp_path,
        env=daemon.cli_env(),
        stdout=serve_log,
        stderr=serve_log,
    )
    base = f"http://127.0.0.1:{port}"
    stop = threading.Event()
    statuses: Counter[int | str] = Counter()
    catalog = Catalog.from_url(url)
    try:
        wait_for("the API", lambda: _answers(base + "/healthz"), 30)
        readers = [threading.Thread(target=_read_until, args=(base, stop, statuses)) for _ in range(2)]
        for reader in readers:
            reader.start()
        dropped = {
            _sha(write_model(daemon.watch / f"watched-{seed}.onnx", seed=seed)) for seed in range(700, 703)
        }
        outputs = []
        for seed in range(800, 802):
            model = write_model(tmp_path / "elsewhere" / f"one-shot-{seed}.onnx", seed=seed)
            outputs.append(daemon.cli("process", str(model)))
            outputs.append(daemon.cli("models"))
            outputs.append(daemon.cli("jobs"))
        wait_for("the dropped models", lambda: done_count(catalog, dropped) == len(dropped) or None, 120)
        stop.set()
        for reader in readers:
            reader.join(60)
    finally:
        stop.set()
        catalog.close()
        server.terminate()
        server.wait(30)
        serve_log.close()
        assert daemon.stop() == 0
    for done in outputs:
        assert done.returncode == 0, f"{done.args[3:]}: {done.stderr}"
        assert "locked" not in done.stdout + done.stderr
    failures = {status: n for status, n in statuses.items() if status != 200}
    assert not failures and statuses[200] >= len(READS), statuses
    for log in (daemon.log_text(), (tmp_path / "serve.log").read_text(errors="replace")):
        assert "database is locked" not in log and "Traceback" not in log


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()
