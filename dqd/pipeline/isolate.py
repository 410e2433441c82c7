"""Run a function in a child process with a wall-clock timeout and a memory limit.

A crash, hang or memory blow-up in onnxruntime kills the child, not the caller.
Memory is policed by the parent watching the child's resident set size:
``RLIMIT_AS`` would trip on the large virtual reservations onnxruntime makes
that never become resident.

Children are forked by multiprocessing's fork server, a clean process started
once that has imported onnx, onnxruntime and its quantization tools
(:data:`PRELOAD`): a child is ready in about 20 ms instead of the 0.9 s a
freshly spawned interpreter spends importing them (measured on an AVX2 host),
which a folder of broken files would pay per file. Forking the caller itself
would copy its threads and open sessions; the fork server has neither.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import select
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from enum import StrEnum
from multiprocessing.connection import Connection
from typing import Any, TypeVar

import psutil

from dqd.errors import EnvironmentFailure, HostBusy, ModelError
from dqd.scratch import process_running

T = TypeVar("T")
POLL_SECONDS = 0.1
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# What every engine child imports; a module that fails to import is skipped by the fork server
# (the child then meets the ImportError itself, and reports the broken install).
PRELOAD = [
    "dqd.pipeline.analyse",
    "onnxruntime.quantization",
    "onnxruntime.quantization.shape_inference",
    "onnxruntime.quantization.matmul_nbits_quantizer",
]
ORT_TELEMETRY_ENV = "ORT_DISABLE_TELEMETRY"
ORPHANED_EXIT_CODE = 70  # the child found its parent gone before it could start work
ProgressCallback = Callable[[str], None]


class ChildFailure(StrEnum):
    """How the child failed; recorded as ``details["failure"]`` of the error decision."""

    TIMEOUT = "timeout"
    MEMORY = "memory"  # over limits.memory_mb, measured by the parent
    CRASH = "crash"  # killed by a signal, or exited without a result
    EXCEPTION = "exception"  # raised inside the child


class IsolationError(ModelError):
    """The child process failed: crashed, hung, exceeded its memory or raised."""

    def __init__(self, message: str, *, kind: ChildFailure, permanent: bool, path: str | None = None) -> None:
        self.kind = kind
        super().__init__(message, path=path, permanent=permanent)


class ChildReporter:
    """Handed to the child function: sends progress lines to the parent's callback."""

    def __init__(self, conn: Connection | None) -> None:
        self._conn = conn

    def __call__(self, message: str) -> None:
        if self._conn is not None:
            self._conn.send(("progress", message))


def run_isolated(
    function: Callable[..., T],
    *args: Any,
    timeout_seconds: float,
    memory_mb: int,
    progress: ProgressCallback | None = None,
    label: str = "",
) -> T:
    """``function(ChildReporter, *args)`` in a child process; its return value must pickle.

    Raises :class:`IsolationError` on timeout, memory limit, crash or an
    exception in the child; a :class:`ModelError` raised by the child keeps its
    ``permanent`` flag; an :class:`EnvironmentFailure` is raised as itself.
    """
    context = _context()
    parent_conn, child_conn = context.Pipe(duplex=False)
    # The child dies with this thread (see die_with_parent): the thread waits here until the child ends.
    process = context.Process(target=_child_main, args=(child_conn, os.getpid(), function, args), daemon=True)
    process.start()
    child_conn.close()
    deadline = time.monotonic() + timeout_seconds
    limit = memory_mb * 1024 * 1024
    peak = 0
    what = f" for {label}" if label else ""
    try:
        while True:
            if parent_conn.poll(POLL_SECONDS):
                try:
                    kind, payload = parent_conn.recv()
                except EOFError:
                    break
                if kind == "progress":
                    if progress is not None:
                        progress(payload)
                    continue
                process.join(timeout=10)
                return _unwrap(kind, payload, label)
            if not process.is_alive() and not parent_conn.poll(0):
                break
            rss = _tree_rss(process.pid, limit)
            peak = max(peak, rss)
            if rss > limit:
                _kill(process)
                raise IsolationError(
                    f"worker exceeded the memory limit{what}: {rss / 2**20:.0f} MiB resident > "
                    f"{memory_mb} MiB (raise limits.memory_mb if the model needs more)",
                    kind=ChildFailure.MEMORY,
                    permanent=True,
                )
            if time.monotonic() > deadline:
                _kill(process)
                raise IsolationError(
                    f"worker timed out{what} after {timeout_seconds:.0f} s (raise limits.timeout_seconds, "
                    "or lower benchmark.max_seconds)",
                    kind=ChildFailure.TIMEOUT,
                    permanent=False,
                )
    finally:
        parent_conn.close()
        if process.is_alive():
            _kill(process)
    process.join(timeout=10)
    code = process.exitcode
    if code is not None and code < 0:
        cause, transient = death_by_signal(-code)
        raise IsolationError(f"worker {cause}{what}", kind=ChildFailure.CRASH, permanent=not transient)
    raise IsolationError(
        f"worker exited with code {code}{what} without a result", kind=ChildFailure.CRASH, permanent=True
    )


def death_by_signal(number: int) -> tuple[str, bool]:
    """How a process killed by signal ``number`` died, and whether trying again may succeed."""
    # SIGKILL from outside is usually the kernel's OOM killer: memory elsewhere may free up.
    if number == signal.SIGKILL:
        return "killed (likely out of memory)", True
    return f"crashed with {_signal_name(number)}", False


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _unwrap(kind: str, payload: Any, label: str) -> Any:
    if kind == "result":
        return payload
    if kind == "busy":
        message, load, source = payload
        raise HostBusy(message, load=load, source=source)
    if kind == "environment":  # the host's failure, whatever model ran: not an IsolationError
        message, setting = payload
        raise EnvironmentFailure(message, setting=setting)
    message, permanent, trace = payload
    what = f" ({label})" if label else ""
    error = IsolationError(f"{message}{what}", kind=ChildFailure.EXCEPTION, permanent=permanent)
    raise error from _RemoteTraceback(trace)


class _RemoteTraceback(Exception):
    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _context() -> multiprocessing.context.SpawnContext | multiprocessing.context.ForkServerContext:
    """The fork server where it is safe, else spawn.

    onnxruntime's telemetry keeps an SQLite database open from its import on
    (``~/.cache/Microsoft/DeveloperTools/.onnxruntime/onnxruntime.db``), and an
    SQLite handle must not be used across a fork: dqd runs onnxruntime with its
    telemetry off unless ``ORT_DISABLE_TELEMETRY`` is set, and spawns (each
    child opens its own handle) when it is set to anything but 1.
    """
    os.environ.setdefault(ORT_TELEMETRY_ENV, "1")
    if os.environ[ORT_TELEMETRY_ENV] != "1" or "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def die_with_parent(parent_pid: int) -> None:
    """In a child: be killed when the caller ``parent_pid`` dies, even by SIGKILL.

    ``daemon=True`` only helps when the parent exits cleanly; after ``kill -9``
    of the daemon or ``dqd process`` the child would otherwise run to the end
    of its work, burning CPU and disturbing the next benchmark. A thread waits
    on the caller's pidfd and ends the child the moment the caller is gone; the
    fork server, which would outlive the caller while a child of its lives, ends
    with it. Linux's ``PR_SET_PDEATHSIG`` covers the fork server's own death,
    and under spawn the caller's. Elsewhere only the start-up check runs.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # best effort: the parent's kill on timeout still applies
        try:
            pidfd = os.pidfd_open(parent_pid)
        except ProcessLookupError:
            os._exit(ORPHANED_EXIT_CODE)
        except OSError:
            pidfd = None  # a kernel before 5.3: the start-up check below is all there is
        if pidfd is not None:
            threading.Thread(target=_exit_when_readable, args=(pidfd,), daemon=True).start()
    # The caller may have died before we could watch it.
    if not process_running(parent_pid):
        os._exit(ORPHANED_EXIT_CODE)


def _exit_when_readable(pidfd: int) -> None:
    select.select([pidfd], [], [])  # a pidfd turns readable when its process exits
    os._exit(ORPHANED_EXIT_CODE)


def _child_main(
    conn: Connection, parent_pid: int, function: Callable[..., Any], args: tuple[Any, ...]
) -> None:
    die_with_parent(parent_pid)
    try:
        result = function(ChildReporter(conn), *args)
        conn.send(("result", result))
    except HostBusy as exc:
        conn.send(("busy", (str(exc), exc.load, exc.source)))
    except EnvironmentFailure as exc:
        conn.send(("environment", (str(exc), exc.setting)))
    except BaseException as exc:
        permanent = exc.permanent if isinstance(exc, ModelError) else True
        message = str(exc) if isinstance(exc, ModelError) else f"{type(exc).__name__}: {exc}"
        conn.send(("error", (message, permanent, traceback.format_exc())))
    finally:
        conn.close()


def _tree_rss(pid: int | None, limit: int) -> int:
    """The memory of ``pid`` and its descendants (see below for a forked leaf); 0 when it is gone."""
    if pid is None:
        return 0
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in processes:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    if total > limit and len(processes) > 1:
        # A niced leaf (dqd.pipeline.niced) is forked from the child: their resident sets share the
        # child's pages copy on write, so over the limit each counts its proportional share instead
        # (read only then: the kernel walks every page table to compute it).
        shares = [_proportional_set(proc.pid) for proc in processes]
        if all(share is not None for share in shares):
            return sum(share or 0 for share in shares)
    return total


def _proportional_set(pid: int) -> int | None:
    """The process's PSS in bytes (``/proc/PID/smaps_rollup``, Linux 4.14+); None where unknown."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as rollup:
            for line in rollup:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _kill(process: multiprocessing.process.BaseProcess) -> None:
    process.kill()
    process.join(timeout=10)
