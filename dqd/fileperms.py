"""One permission rule for every file dqd writes for others to read.

Reports, variants and published models are read by other users (a web
server, Triton, a serving pod): they get the mode a plain ``open()`` would
give under the process umask, and are never world-writable whatever the
umask says. ``tempfile.mkstemp`` creates files 0600, so files written under
a temporary name and renamed into place must be given this mode explicitly.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

from dqd.scratchnames import TMP_SUFFIX

_lock = threading.Lock()


def current_umask() -> int:
    """The process umask (reading it means setting it; the lock keeps threads from seeing 0)."""
    with _lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def shared_file_mode() -> int:
    return 0o666 & ~current_umask() & ~0o002


def make_shared(path: Path | str) -> None:
    """Give ``path`` the shared-file mode (call before renaming it into place)."""
    os.chmod(path, shared_file_mode())


def write_text_shared(path: Path, text: str, *, prefix: str = ".") -> None:
    """Write ``text`` beside ``path`` under a scratch name (``prefix``…``.tmp``), give it the shared
    mode, and rename it into place: a reader sees the old file or the whole new one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        make_shared(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
