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
from pathlib import Path

PROC = Path("/proc")


def held_open_for_writing(path: str | os.PathLike[str], proc: Path = PROC) -> bool:
    """True when a process we can see has ``path`` open write-only or read-write."""
    try:
        target = os.stat(path)
    except OSError:
        return False
    try:
        pids = [entry for entry in os.listdir(proc) if entry.isdigit()]
    except OSError:
        return False  # no /proc: nothing known
    for pid in pids:
        fd_dir = proc / pid / "fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue  # gone, or another user's
        for fd in fds:
            try:
                st = os.stat(fd_dir / fd)  # follows the link to the open file
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino) and _writable(
                proc / pid / "fdinfo" / fd
            ):
                return True
    return False


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
