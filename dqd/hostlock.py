"""A reader/writer lock across all dqd processes on this host.

Benchmarks take it exclusively, every other heavy step (quantize, accuracy)
takes it shared: while a benchmark runs no other dqd work runs on the host, so
dqd never disturbs its own timings. ``flock`` locks are released by the
kernel when a process dies, so a killed worker cannot leave the host locked.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DEFAULT_LOCK_PATH = Path(tempfile.gettempdir()) / "dqd-host.lock"
LOCK_PATH_ENV = "DQD_HOST_LOCK"


def lock_path() -> Path:
    return Path(os.environ.get(LOCK_PATH_ENV) or DEFAULT_LOCK_PATH)


@contextmanager
def host_lock(exclusive: bool, path: Path | None = None) -> Iterator[float]:
    """Hold the host lock; yields the seconds spent waiting for it.

    Never upgrade a held shared lock to exclusive: two holders upgrading
    deadlock. Release the shared lock first, then take the exclusive one.
    """
    target = path or lock_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    fd = os.open(target, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield time.monotonic() - started
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
