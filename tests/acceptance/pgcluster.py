"""A private PostgreSQL cluster a test may stop and start: never CI's shared one.

initdb and pg_ctl from the host's PostgreSQL, run as the ``postgres`` user when
the tests run as root (PostgreSQL refuses to run as root), in a fresh folder
under /tmp, listening on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.acceptance.harness import free_port


def _bin_dir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    installed = [Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")]
    newest = max(installed, key=lambda p: float(p.parent.name), default=None)  # Debian's layout
    return newest


class PrivateCluster:
    """initdb on construction; :meth:`start`, :meth:`stop` as often as a test likes; :meth:`destroy`."""

    def __init__(self) -> None:
        bin_dir = _bin_dir()
        if bin_dir is None:
            if os.environ.get("CI"):
                raise AssertionError("CI must provide PostgreSQL's initdb and pg_ctl")
            pytest.skip("PostgreSQL's initdb and pg_ctl are not installed")
        self.bin_dir = bin_dir
        self.folder = Path(tempfile.mkdtemp(prefix="dqd-test-pg-"))
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.folder, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin_dir / tool), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, f"{tool} failed: {done.stdout}\n{done.stderr}"

    def start(self) -> PrivateCluster:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.folder / "log")
        self._run("pg_ctl", "-D", str(self.data), "-w", "-l", log, "-o", options, "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-m", mode, "stop")

    def destroy(self) -> None:
        with contextlib.suppress(AssertionError):  # not running
            self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)
