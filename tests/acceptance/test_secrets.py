"""Secrets never leave dqd: the API token and the catalog password appear in no log line, no command's
output or error, no API response and no report page, even when something fails."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.acceptance.harness import Daemon, free_port, wait_for
from tests.acceptance.tiny import write_model

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

TOKEN = "tok-5ecret-2f9a"
PASSWORD = "pw-5ecret-77c1"


def test_the_token_and_the_catalog_password_appear_nowhere(tmp_path: Path, postgres_url: str) -> None:
    # The CI server trusts local connections: a password in the URL is sent, never checked, never needed.
    url = make_url(postgres_url).set(password=PASSWORD).render_as_string(hide_password=False)
    port = free_port()
    daemon = Daemon(
        tmp_path, url, DQD_API__SERVE_IN_DAEMON="true", DQD_API__PORT=str(port), DQD_API__TOKEN=TOKEN
    )
    try:
        daemon.start()
        write_model(daemon.watch / "m.onnx", seed=11)
        (daemon.watch / "broken.onnx").write_bytes(b"not a model")
        seen: list[str] = []
        for args in (("config", "show"), ("config", "show", "--json"), ("status",), ("models", "--json")):
            shown = daemon.cli(*args)
            seen += [shown.stdout, shown.stderr]
        wait_for(
            "both models decided", lambda: len(json.loads(daemon.cli("models", "--json").stdout)) == 2, 60
        )
        seen += [daemon.cli("show", "broken.onnx").stdout, daemon.cli("show", "nosuch.onnx").stderr]
        bad = make_url(url).set(port=1).render_as_string(hide_password=False)  # a catalog that is down
        down = daemon.cli("status", DQD_DATABASE_URL=bad)
        assert down.returncode != 0, down.stdout
        seen += [down.stdout, down.stderr]
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        for path in ("/api/v1/models", "/api/v1/jobs", "/api/v1/hosts", "/api/v1/decisions", "/report/"):
            request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=bearer)
            with urllib.request.urlopen(request, timeout=10) as response:
                seen.append(response.read().decode("utf-8"))
        assert daemon.stop() == 0
        seen.append(daemon.log_text())
    finally:
        daemon.kill()
    everything = "\n".join(seen)
    assert "broken.onnx" in everything and "m.onnx" in everything  # the outputs were really read
    assert TOKEN not in everything
    assert PASSWORD not in everything
