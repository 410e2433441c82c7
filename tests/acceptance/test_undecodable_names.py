"""A model whose file name is not valid UTF-8 (a Latin-1 name from a Windows share) is seen,
decided, published and listed like any other, under dqd.pathtext's displayed form.

Before, its registration crashed in the catalog write on every event and scan
(``UnicodeEncodeError: surrogates not allowed``): the model was never listed.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from dqd.catalog import Catalog
from tests.acceptance.harness import Daemon, free_port, wait_for
from tests.acceptance.tiny import write_model

pytestmark = pytest.mark.slow

LATIN1 = os.fsdecode(b"caf\xe9.onnx")  # the name as Python gives it: a lone surrogate for the byte
SHOWN = "caf\\xe9.onnx"  # as dqd prints it, and as a user types it back


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    daemon = Daemon(
        tmp_path,
        f"sqlite:///{tmp_path / 'dqd.db'}",
        DQD_API__SERVE_IN_DAEMON="true",
        DQD_PUBLISH_DIR=str(tmp_path / "published"),
    )
    yield daemon
    daemon.kill()


def test_a_latin1_named_model_is_decided_published_and_listed(daemon: Daemon) -> None:
    port = free_port()
    daemon.start(DQD_API__PORT=str(port))
    write_model(daemon.watch / LATIN1, seed=3)
    catalog = Catalog.from_url(daemon.database_url)
    try:
        wait_for("the model to be decided", lambda: _decided(catalog), 90)
    finally:
        catalog.close()

    listed = daemon.cli("models", "--json")
    assert listed.returncode == 0, listed.stderr
    (model,) = json.loads(listed.stdout)
    assert model["path"] == SHOWN, model
    assert [d["outcome"] for d in model["decisions"]] in (["quantized"], ["kept_fp32"]), model
    table = daemon.cli("models")
    assert table.returncode == 0 and SHOWN in table.stdout, table.stderr
    shown = daemon.cli("show", SHOWN)  # the displayed form is what a user types back
    assert shown.returncode == 0 and SHOWN in shown.stdout, shown.stderr
    best = daemon.cli("best", SHOWN, "--json")
    assert best.returncode == 0, best.stderr
    exported = daemon.cli("report", "--out", str(daemon.workdir / "report"))
    assert exported.returncode == 0, exported.stderr
    assert SHOWN in (daemon.workdir / "report" / "index.html").read_text(encoding="utf-8")
    published = daemon.workdir / "published"
    assert [p.name for p in published.rglob("*.onnx")] == [LATIN1]  # the real bytes on disk

    base = f"http://127.0.0.1:{port}"
    with urllib.request.urlopen(base + "/api/v1/models", timeout=5) as response:
        body = json.loads(response.read().decode("utf-8"))
    assert [item["path"] for item in body["items"]] == [SHOWN]
    with urllib.request.urlopen(base + "/report/", timeout=5) as response:
        assert SHOWN in response.read().decode("utf-8")
    assert daemon.stop() == 0
    assert "Traceback" not in daemon.log_text()


def _decided(catalog: Catalog) -> bool:
    paths = catalog.known_paths()
    return LATIN1 in paths and any(job.state.value == "done" for job in catalog.list_jobs())
