"""Functions the isolation tests run in a child process (they must be importable by name)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

from dqd.errors import ModelError


def echo(report: Callable[[str], None], value: int) -> int:
    report("working")
    return value * 2


def hang(report: Callable[[str], None]) -> None:
    time.sleep(600)


def hog_memory(report: Callable[[str], None], megabytes: int) -> int:
    blocks = [
        bytearray(os.urandom(1)) * (1024 * 1024) for _ in range(megabytes)
    ]  # resident, not just reserved
    time.sleep(30)
    return len(blocks)


def segfault(report: Callable[[str], None]) -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def fail(report: Callable[[str], None], permanent: bool) -> None:
    raise ModelError("the model is broken", permanent=permanent)


def bug(report: Callable[[str], None]) -> None:
    raise KeyError("oops")


def report_pid_and_hang(report: Callable[[str], None]) -> None:
    report(f"pid {os.getpid()}")
    time.sleep(600)
