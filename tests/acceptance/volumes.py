"""Real small filesystems for fault tests: a tmpfs that fills up, or turns read-only, on demand.

Mounting needs root (CI runs as root); elsewhere the tests that need one skip,
naming why, and the fault-injection tests in tests/integration cover the same
code paths with a hook.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, check=False)


@contextmanager
def small_tmpfs(path: Path, size_kib: int) -> Iterator[Path]:
    """A tmpfs of ``size_kib`` mounted on ``path`` for the block; skips when mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = _mount("-t", "tmpfs", "-o", f"size={size_kib}k,mode=0755", "tmpfs", str(path))
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        _mount("-o", "remount,rw", str(path))
        subprocess.run(["umount", "-l", str(path)], check=False)


def set_read_only(path: Path, read_only: bool) -> None:
    done = _mount("-o", f"remount,{'ro' if read_only else 'rw'}", str(path))
    assert done.returncode == 0, done.stderr


def fill(volume: Path) -> Path:
    """Write one file until the volume has no space left; the file, to delete when space should return."""
    filler = volume / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    return filler


def files_under(volume: Path, *, besides: tuple[Path, ...] = ()) -> list[Path]:
    """Every regular file on ``volume`` except ``besides``: what a failed job must not leave behind."""
    return sorted(p for p in volume.rglob("*") if p.is_file() and p not in besides)
