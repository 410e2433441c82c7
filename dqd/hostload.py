"""How busy the rest of the host was while dqd timed a benchmark ("foreign load").

Two sources, the first found wins:

- **cpu pressure** (Linux PSI): the share of wall time during which some task
  waited for a CPU (the ``some`` line's ``total``, in µs), from the cgroup's own
  ``cpu.pressure`` (cgroup v2: what a pod sees) or else ``/proc/pressure/cpu``.
  Work that competes with the benchmark for the CPU shows here whoever runs it.
  A virtual machine's steal time (``/proc/stat``: its CPUs given to other guests,
  which PSI does not see) is added, as a share of the CPUs' time.
- **proc cpu time**: other processes' CPU time (``/proc/stat``'s busy time minus
  this process's and its parent's, dqd's own) over wall time times the CPUs.

Both give a fraction of the interval in [0, 1] (the unit of
``benchmark.max_foreign_load``): 0 is a quiet host, 0.5 means competition half
the time (pressure) or half the CPU capacity used by others (proc). A host with
neither (not Linux) reports nothing and is never judged busy.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

PRESSURE = "cpu pressure"
PROC = "proc cpu time"
_CGROUP_ROOT = Path("/sys/fs/cgroup")
_HOST_PRESSURE = Path("/proc/pressure/cpu")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class LoadSample:
    source: str
    wall: float  # seconds, monotonic
    busy: float  # seconds: of stalled time (pressure) or of others' CPU time (proc), cumulative
    capacity: int = 1  # CPUs the proc source divides by
    steal: float = 0.0  # pressure source: seconds of the host's CPUs stolen by the hypervisor, cumulative
    cpus: int = 1  # what steal is shared over


@dataclass(frozen=True)
class ForeignLoad:
    value: float  # a fraction of the interval, see the module docstring
    source: str


def foreign_load(before: LoadSample | None, after: LoadSample | None) -> ForeignLoad | None:
    """The foreign load between two samples of one source; None when unknown."""
    if before is None or after is None or before.source != after.source:
        return None
    wall = after.wall - before.wall
    if wall <= 0:
        return None
    share = (after.busy - before.busy) / (wall * max(1, after.capacity))
    share += (after.steal - before.steal) / (wall * max(1, after.cpus))
    return ForeignLoad(min(1.0, max(0.0, share)), after.source)


def sample() -> LoadSample | None:
    """The host's counters now; None when neither source can be read."""
    now = time.monotonic()
    stalled = _pressure_some_seconds()
    if stalled is not None:
        stolen = _stolen_seconds()
        return LoadSample(PRESSURE, now, stalled, steal=stolen or 0.0, cpus=os.cpu_count() or 1)
    others = _others_cpu_seconds()
    if others is not None:
        return LoadSample(PROC, now, others, capacity=len(os.sched_getaffinity(0)))
    return None


def pressure_file() -> Path | None:
    """This process's cgroup v2 ``cpu.pressure`` when present, else the host's; None without PSI."""
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                own = _CGROUP_ROOT / line[3:].lstrip("/") / "cpu.pressure"
                if own.is_file():
                    return own
    except OSError:
        pass
    return _HOST_PRESSURE if _HOST_PRESSURE.is_file() else None


def _pressure_some_seconds() -> float | None:
    path = pressure_file()
    if path is None:
        return None
    try:
        text = path.read_text()
    except OSError:  # PSI compiled in but disabled (psi=0): reading fails with EOPNOTSUPP
        return None
    for line in text.splitlines():
        if line.startswith("some "):
            fields = dict(part.split("=", 1) for part in line.split()[1:])
            return int(fields["total"]) / 1e6
    return None


def _stolen_seconds() -> float | None:
    try:
        return int(Path("/proc/stat").read_text().split(maxsplit=9)[8]) / _CLOCK_TICKS
    except (OSError, ValueError, IndexError):
        return None


def _others_cpu_seconds() -> float | None:
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
        own = _process_cpu_ticks(os.getpid()) + _process_cpu_ticks(os.getppid())
    except (OSError, ValueError, IndexError):
        return None
    return (user + nice + system + irq + softirq + steal - own) / _CLOCK_TICKS


def _process_cpu_ticks(pid: int) -> int:
    """User + system ticks of ``pid`` (its threads included; waited-for children too)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat[stat.rindex(")") + 2 :].split()
    return sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
