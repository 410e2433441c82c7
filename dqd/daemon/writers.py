"""Is a file held open for writing by some process on this host?

The native observer sees a writer's close only if the file was written after
watching began; a copy opened before dqd started and paused longer than the
settle time looks complete by quiet time alone. Linux lists every process's
open files under ``/proc/<pid>/fd``, with the open flags in ``fdinfo``, so
this host's writers can be found. Best effort by nature: processes of other
users are invisible without privileges, and writers on other hosts (NFS) are
never visible, so False means "none found", not "none exists".
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

PROC = Path("/proc")
FileId = tuple[int, int]  # (st_dev, st_ino)


def files_open_for_writing(proc: Path = PROC) -> set[FileId]:
    """Every file some visible process has open write-only or read-write (one walk of /proc)."""
    found: set[FileId] = set()
    try:
        pids = [entry for entry in os.listdir(proc) if entry.isdigit()]
    except OSError:
        return found  # no /proc: nothing known
    for pid in pids:
        fd_dir = proc / pid / "fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue  # gone, or another user's
        for fd in fds:
            if not _writable(proc / pid / "fdinfo" / fd):
                continue
            try:
                st = os.stat(fd_dir / fd)  # follows the link to the open file
            except OSError:
                continue
            found.add((st.st_dev, st.st_ino))
    return found


def held_open_for_writing(path: str | os.PathLike[str], proc: Path = PROC) -> bool:
    return _file_id(path) in files_open_for_writing(proc)


def writer_check(proc: Path = PROC) -> Callable[[str | os.PathLike[str]], bool]:
    """``held_open_for_writing`` for several paths at one moment: /proc is walked once, if at all."""
    writers: set[FileId] | None = None

    def held_open(path: str | os.PathLike[str]) -> bool:
        nonlocal writers
        target = _file_id(path)
        if target is None:
            return False
        if writers is None:
            writers = files_open_for_writing(proc)
        return target in writers

    return held_open


def _file_id(path: str | os.PathLike[str]) -> FileId | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _writable(fdinfo: Path) -> bool:
    try:
        text = fdinfo.read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags:"):
            flags = int(line.split()[1], 8)
            return flags & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR)
    return False
