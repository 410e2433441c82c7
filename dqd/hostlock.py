"""A reader/writer lock across all dqd processes on this host.

Benchmarks take it exclusively, every other heavy step (quantize, accuracy)
takes it shared: while a benchmark runs no other dqd work runs on the host, so
dqd never disturbs its own timings. ``flock`` locks are released by the
kernel when a process dies, so a killed worker cannot leave the host locked.

The file's place is the ``host_lock`` setting (``DQD_HOST_LOCK``). The default
is under ``/run/lock``, which a systemd service with ``PrivateTmp=yes`` and an
admin's shell both see; ``/tmp`` is private to such a service, so a lock there
would not keep an admin's ``dqd process`` from timing beside the daemon.
A lock that cannot be opened is the environment's failure
(:class:`HostLockError`), never a model's.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dqd.errors import EnvironmentFailure

LOCK_PATH_ENV = "DQD_HOST_LOCK"
SHARED_LOCK_DIR = Path("/run/lock")
LOCK_NAME = "dqd-host.lock"


class HostLockError(EnvironmentFailure):
    """The host lock file cannot be created or opened."""

    def __init__(self, path: Path, exc: OSError) -> None:
        self.path = path
        if isinstance(exc, FileExistsError | NotADirectoryError):
            cause = f"{exc.filename or path.parent} is not a folder"  # mkdir's "File exists" says nothing
        else:
            cause = exc.strerror or str(exc)
        super().__init__(
            f"host lock {path}: cannot open it ({cause}): set host_lock (DQD_HOST_LOCK) "
            f"to a file in a folder this user can write, shared by every dqd process on this host "
            f"(default {SHARED_LOCK_DIR / LOCK_NAME})",
            setting="host_lock",
        )


def default_lock_path() -> Path:
    """``/run/lock/dqd-host.lock`` where that folder is writable, else one in the temp folder."""
    if SHARED_LOCK_DIR.is_dir() and os.access(SHARED_LOCK_DIR, os.W_OK | os.X_OK):
        return SHARED_LOCK_DIR / LOCK_NAME
    return Path(tempfile.gettempdir()) / LOCK_NAME


def fallback_warning(path: Path) -> str | None:
    """Why ``path`` may not be shared by every dqd process here (the temp-folder fallback); else None."""
    if path.parent == SHARED_LOCK_DIR or path != Path(tempfile.gettempdir()) / LOCK_NAME:
        return None
    return (
        f"host lock {path}: {SHARED_LOCK_DIR} is not writable, so the lock is in the temp folder, "
        "which a systemd service with PrivateTmp=yes does not share with other dqd processes; "
        "set host_lock (DQD_HOST_LOCK) to a path every dqd process on this host can open"
    )


def lock_path() -> Path:
    """The lock for callers without settings: ``DQD_HOST_LOCK``, else the default."""
    return Path(os.environ.get(LOCK_PATH_ENV) or default_lock_path())


def open_lock(path: Path) -> int:
    """Open (creating if needed) the lock file; :class:`HostLockError` when impossible.

    ``flock`` needs no write permission, so a file another user created (the
    daemon's, seen from an admin's shell) is opened read-only; that also
    covers ``fs.protected_regular``, which refuses ``O_CREAT`` on another
    user's file in a sticky folder such as ``/run/lock``.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except PermissionError:
            return os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise HostLockError(path, exc) from exc


def check_lock(path: Path) -> None:
    """Fail early, with the setting to fix, when the lock cannot be opened."""
    os.close(open_lock(path))


@contextmanager
def host_lock(exclusive: bool, path: Path | None = None) -> Iterator[float]:
    """Hold the host lock; yields the seconds spent waiting for it.

    Never upgrade a held shared lock to exclusive: two holders upgrading
    deadlock. Release the shared lock first, then take the exclusive one.
    """
    target = path or lock_path()
    started = time.monotonic()
    fd = open_lock(target)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        except OSError as exc:  # e.g. ENOLCK on a filesystem without flock
            raise HostLockError(target, exc) from exc
        yield time.monotonic() - started
    finally:
        os.close(fd)  # closing releases the flock
