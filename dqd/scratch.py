"""dqd's scratch files and folders: named after the process that writes them, swept after a crash.

Every variant, publish copy and report page is written under a scratch name
and renamed into place, so a reader never sees half a file. After ``kill -9``
(or a power cut) the scratch stays behind; :func:`sweep` removes what a dead
process left, at daemon start. Several hosts may share the output and publish
folders, so a scratch name carries its writer (``<host>-<pid>-``): an entry is
removed when its writer is a process of this host that is gone, or, whoever
wrote it, when it is older than :data:`ABANDONED_SECONDS` (no job lives that
long: a host that went away for good leaves nothing forever).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import time
from collections.abc import Iterable
from pathlib import Path

import psutil

from dqd.pathtext import NAME_MAX
from dqd.scratchnames import BUILD_PREFIX, TMP_SUFFIX, WORK_PREFIX

logger = logging.getLogger(__name__)

ABANDONED_SECONDS = 2 * 24 * 3600
_OWNED_MARK = ".dqd-"  # between a published name and its writer: ".<name>.dqd-<host>-<pid>-<random>.tmp"


def writer_tag() -> str:
    """``<host>-<pid>-``: who writes a scratch entry (the host's dashes kept: parsed from the right)."""
    return f"{socket.gethostname()}-{os.getpid()}-"


def sweep(folders: Iterable[Path], *, now: float | None = None) -> list[Path]:
    """Remove the scratch entries under ``folders`` that no live writer will finish; what was removed."""
    now = time.time() if now is None else now
    host = socket.gethostname()
    removed: list[Path] = []
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder):
            for name in [*dirnames, *filenames]:
                path = Path(dirpath, name)
                if _abandoned(name, path, host, now):
                    _remove(path)
                    removed.append(path)
            dirnames[:] = [d for d in dirnames if Path(dirpath, d) not in removed]
    if removed:
        logger.info(
            "removed %d scratch entries left by stopped dqd processes",
            len(removed),
            extra={"action": "scratch_swept", "count": len(removed)},
        )
    return removed


def _abandoned(name: str, path: Path, host: str, now: float) -> bool:
    tagged = _tag(name)
    if tagged is None:
        return False
    try:
        age = now - path.lstat().st_mtime
    except OSError:
        return False
    if age > ABANDONED_SECONDS:
        return True
    parts = tagged.rsplit("-", 2)  # "<host>-<pid>-<random>"; the host name may hold dashes
    if len(parts) != 3 or not parts[1].isdigit():
        return False  # named before scratch carried its writer: only its age removes it
    return parts[0] == host and not process_running(int(parts[1]))


def _tag(name: str) -> str | None:
    """What follows the scratch marker in ``name``; None for a name that is not dqd's scratch."""
    for prefix in (WORK_PREFIX, BUILD_PREFIX):
        if name.startswith(prefix):
            return name[len(prefix) :]
    if name.startswith(".") and name.endswith(TMP_SUFFIX) and _OWNED_MARK in name[1:]:
        return name[name.rindex(_OWNED_MARK) + len(_OWNED_MARK) : -len(TMP_SUFFIX)]
    return None


def process_running(pid: int) -> bool:
    """Whether ``pid`` names a live process of this host (a zombie nobody reaped is not)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def publish_scratch_prefix(name: str) -> str:
    """The scratch prefix of a copy to be renamed to ``name``: ``.<name>.dqd-<host>-<pid>-``.

    ``name`` is cut (its bytes) so that with mkstemp's 8 random characters and ``.tmp`` the
    scratch name stays within the file-name limit."""
    tag = _OWNED_MARK + writer_tag()
    room = NAME_MAX - len(".") - len(tag.encode()) - 8 - len(TMP_SUFFIX)
    cut = os.fsencode(name)[:room].decode("utf-8", "ignore") or "dqd"
    return f".{cut}{tag}"
