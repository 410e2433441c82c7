"""Start-up cost: the quick commands load no ONNX, web or migration code (issue 9, scenario 8).

Checked in a real subprocess through ``sys.modules`` at exit, not by timing:
onnx, onnxruntime, fastapi and alembic together are most of a second of imports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dqd.catalog import Catalog
from dqd.catalog.migrate import upgrade
from dqd.hostinfo import this_host_class
from tests.query_factory import add_model, host

HEAVY = ("onnx", "onnxruntime", "fastapi", "alembic")
PROBE = f"""
import atexit, json, sys
atexit.register(lambda: print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)), file=sys.stderr))
from dqd.cli import main
main()
"""


@pytest.fixture
def catalog_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'dqd.db'}"
    catalog = Catalog.from_url(url)
    upgrade(catalog.engine)
    add_model(catalog, "bert/1/model.onnx", host_info=host(this_host_class(), "here"))
    catalog.close()
    return url


@pytest.mark.parametrize("args", [("--version",), ("models",), ("best", "bert/1/model.onnx")], ids=str)
def test_quick_commands_import_no_onnx_web_or_alembic(
    tmp_path: Path, catalog_url: str, args: tuple[str, ...]
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQD_")}
    env["DQD_DATABASE_URL"] = catalog_url
    ran = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip(), "the command printed nothing"
    assert json.loads(ran.stderr.strip().splitlines()[-1]) == []
