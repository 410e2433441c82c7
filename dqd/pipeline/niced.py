"""Run one step of the engine child at lower CPU and I/O priority, in a process of its own.

Pre-processing, quantization and accuracy checks are background work beside
the host's serving processes; the benchmark is not, and an unprivileged process
cannot raise its priority back once lowered. So each such step runs in a leaf
forked from the engine child, niced (``limits.background_nice``) and in the
lowest best-effort I/O class, and the child keeps its priority for timings
(under the exclusive host lock). Forked, the leaf shares the child's memory copy
on write: only the result crosses back, pickled. It opens its own onnxruntime
sessions (a session's threads do not survive a fork) and dies with the child
(a timeout or memory kill of the child ends it too).
"""

from __future__ import annotations

import ctypes
import os
import pickle
import platform
import signal
from collections.abc import Callable
from typing import TypeVar

from dqd.errors import EnvironmentFailure, ModelError
from dqd.pipeline.isolate import death_by_signal

T = TypeVar("T")
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
IOPRIO_WHO_PROCESS = 1
IOPRIO_CLASS_BE = 2
IOPRIO_LOWEST_BE = (IOPRIO_CLASS_BE << 13) | 7
# ioprio_set and ioprio_get by architecture (no libc wrapper exists).
IOPRIO_SYSCALLS = {"x86_64": (251, 252), "aarch64": (30, 31)}


class LeafCrashed(ModelError):
    """The niced step's process ended without a result (a crash in onnxruntime or the quantizer)."""


def run_niced(step: Callable[[], T], *, nice: int) -> T:
    """``step()`` in a forked leaf at ``nice`` (0: here, at this process's priority); its result or error."""
    if nice <= 0 or not hasattr(os, "fork"):
        return step()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the leaf: never returns
        os.close(read_end)
        _leaf(step, nice, write_end)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        raise _crashed(status)
    kind, payload = pickle.loads(data)
    if kind == "ok":
        return payload
    if kind == "environment":
        message, setting = payload
        raise EnvironmentFailure(message, setting=setting)
    if kind == "model":
        message, permanent = payload
        raise ModelError(message, permanent=permanent)
    raise RuntimeError(payload)


def io_priority() -> int | None:
    """This process's I/O priority value (class << 13 | level); None where it cannot be read."""
    numbers = IOPRIO_SYSCALLS.get(platform.machine())
    if numbers is None:
        return None
    value = int(ctypes.CDLL(None, use_errno=True).syscall(numbers[1], IOPRIO_WHO_PROCESS, 0))
    return None if value < 0 else value


def _leaf(step: Callable[[], object], nice: int, write_end: int) -> None:
    try:
        _lower_priority(nice)
        try:
            payload: tuple[str, object] = ("ok", step())
        except EnvironmentFailure as exc:
            payload = ("environment", (str(exc), exc.setting))
        except ModelError as exc:
            payload = ("model", (str(exc), exc.permanent))
        except BaseException as exc:
            payload = ("error", f"{type(exc).__name__}: {exc}")
        try:
            data = pickle.dumps(payload)
        except Exception as exc:
            data = pickle.dumps(("error", f"the step's result cannot be sent back: {exc}"))
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(data)
    finally:
        os._exit(0)  # no atexit handlers, no flushing of the parent's buffers twice


def _lower_priority(nice: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # dies with the engine child
    os.nice(nice)
    numbers = IOPRIO_SYSCALLS.get(platform.machine())
    if numbers is not None:
        libc.syscall(numbers[0], IOPRIO_WHO_PROCESS, 0, IOPRIO_LOWEST_BE)  # best effort: no error if refused


def _crashed(status: int) -> LeafCrashed:
    if os.WIFSIGNALED(status):
        cause, transient = death_by_signal(os.WTERMSIG(status))
        return LeafCrashed(
            f"the low-priority step (pre-processing, quantization or accuracy): {cause}",
            permanent=not transient,
        )
    return LeafCrashed(
        f"the low-priority step exited with code {os.WEXITSTATUS(status)} without a result", permanent=True
    )
