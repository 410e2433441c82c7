"""Issue 9, scenario 4: one rescan of an emptied folder must not mark every model removed.

A real ``dqd run --watch --serve`` starts on an empty folder (an NFS mount that
failed to mount looks like this) against a catalog that knows several models:
none is marked removed, ``/readyz`` is 503 with the reason, ``dqd status`` says
so, and ``dqd prune --yes`` confirms the removals and makes the daemon ready.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from dqd.catalog import Catalog
from dqd.catalog.migrate import upgrade
from tests.acceptance.harness import Daemon, free_port, wait_for

pytestmark = pytest.mark.slow

MODELS = [f"team/m{i}/model.onnx" for i in range(5)]


def readyz(port: int) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    url = f"sqlite:///{tmp_path / 'dqd.db'}"
    catalog = Catalog.from_url(url)
    upgrade(catalog.engine)
    for i, rel in enumerate(MODELS):  # what an earlier daemon recorded from the mounted folder
        catalog.observe_file(rel, f"{i:064x}", 1000 + i, 1)
    catalog.close()
    daemon = Daemon(tmp_path, url, DQD_API__SERVE_IN_DAEMON="true")
    daemon.watch.mkdir()  # mounted nothing: an empty folder
    yield daemon
    daemon.kill()


def test_an_emptied_folder_blocks_removals_until_pruned(daemon: Daemon) -> None:
    port = free_port()
    daemon.start(DQD_API__PORT=str(port))
    wait_for("the start-up scan", lambda: daemon.has_logged("reconciled"), 30)

    catalog = Catalog.from_url(daemon.database_url)
    try:
        assert sorted(catalog.known_paths()) == MODELS, "the scan marked models removed"
        assert daemon.has_logged("removal_blocked")
        status, body = readyz(port)
        assert status == 503 and body["status"] == "removal_blocked"
        assert "empty" in str(body["detail"]) and "dqd prune --yes" in str(body["detail"])

        shown = daemon.cli("status")
        assert shown.returncode == 0 and "removals blocked" in shown.stdout

        refused = daemon.cli("prune")  # no terminal to ask: nothing changes without --yes
        assert refused.returncode == 2 and "--yes" in refused.stderr
        assert sorted(catalog.known_paths()) == MODELS

        pruned = daemon.cli("prune", "--yes")
        assert pruned.returncode == 0, pruned.stderr
        assert "marked 5 removed" in pruned.stdout
        assert catalog.known_paths() == {}
        assert catalog.removal_blocks() == []
        assert readyz(port)[0] == 200
    finally:
        catalog.close()
    assert daemon.stop() == 0
