"""CPU fingerprint and host class.

The host class is ``<arch>-<best int8 feature>``: the right quantized variant
depends on which integer dot-product kernels onnxruntime can use, so
benchmarks and decisions are kept per class.
"""

from __future__ import annotations

import hashlib
import platform
import socket
import sys
from collections.abc import Iterable
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

from dqd import __version__
from dqd.cores import usable_cores
from dqd.domain import HostInfo
from dqd.errors import EnvironmentFailure
from dqd.settings import Settings

# x86 flags (as /proc/cpuinfo names them) that matter for INT8 kernels, and
# the arm64 equivalents ("asimddp" is the dot-product extension).
INT8_FLAGS = (
    "sse4_1",
    "avx2",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx_vnni",
    "amx_int8",
    "asimd",
    "asimddp",
    "i8mm",
)

# Best first: the first feature a CPU has names its class.
_CLASS_ORDER: dict[str, tuple[tuple[str, str], ...]] = {
    "x86_64": (
        ("amx_int8", "amx"),
        ("avx512_vnni", "avx512vnni"),
        ("avx_vnni", "avxvnni"),
        ("avx512bw", "avx512"),
        ("avx2", "avx2"),
        ("sse4_1", "sse4"),
    ),
    "aarch64": (("i8mm", "i8mm"), ("asimddp", "dotprod"), ("asimd", "neon")),
}


def normalize_arch(machine: str) -> str:
    machine = machine.lower()
    return {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


def host_class_for(arch: str, flags: Iterable[str]) -> str:
    present = set(flags)
    for flag, label in _CLASS_ORDER.get(arch, ()):
        if flag in present:
            return f"{arch}-{label}"
    return f"{arch}-generic"


def parse_cpuinfo(text: str) -> tuple[str, tuple[str, ...]]:
    """CPU model name and the INT8-relevant flags from /proc/cpuinfo text."""
    model = ""
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in {"model name", "cpu model", "hardware"} and not model:
            model = value.strip()
        elif key in {"flags", "features"}:
            flags.update(value.split())
    return model, tuple(flag for flag in INT8_FLAGS if flag in flags)


def _machine_id() -> str:
    for candidate in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            return Path(candidate).read_text().strip()
        except OSError:
            continue
    return ""


@lru_cache(maxsize=1)
def detect_host() -> HostInfo:
    try:
        import onnx
        import onnxruntime
    except ModuleNotFoundError as exc:  # a broken install: exit 3 naming it, not a traceback
        raise EnvironmentFailure(
            f"{exc.name} is not installed for {sys.executable}: reinstall dqd there (pip install dqd)"
        ) from exc

    arch = normalize_arch(platform.machine())
    try:
        model, flags = parse_cpuinfo(Path("/proc/cpuinfo").read_text())
    except OSError:
        model, flags = platform.processor(), ()
    hostname = socket.gethostname()
    host_id = hashlib.sha256(f"{hostname}\0{_machine_id()}".encode()).hexdigest()[:16]
    return HostInfo(
        host_id=host_id,
        hostname=hostname,
        host_class=host_class_for(arch, flags),
        arch=arch,
        cpu_model=model or platform.processor() or "unknown",
        isa_flags=flags,
        usable_cores=usable_cores(),
        os=f"{platform.system()} {platform.release()}",
        ort_version=onnxruntime.__version__,
        onnx_version=onnx.__version__,
        dqd_version=__version__,
    )


def declared(detected: HostInfo, host_id: str | None, host_class: str | None) -> HostInfo:
    """``detected`` under a declared id and/or class (settings allowed it); ISA flags stay the real ones."""
    if host_id is None and host_class is None:
        return detected
    return replace(
        detected,
        host_id=host_id or detected.host_id,
        host_class=host_class or detected.host_class,
        declared=True,
    )


def host_identity(settings: Settings) -> HostInfo:
    """This host as dqd records it: detected, or declared by ``host_id``/``host_class`` when allowed."""
    return declared(detect_host(), settings.host_id, settings.host_class)


def installed_version(package: str) -> str:
    """An installed package's version without importing it (onnxruntime's import takes a second)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "none"


def installed_ort_version() -> str:
    return installed_version("onnxruntime")


def this_host_class(settings: Settings | None = None) -> str:
    """This host's class (a declared one first), without the onnx/onnxruntime imports of detect_host()."""
    if settings is not None and settings.host_class is not None:
        return settings.host_class
    try:
        _, flags = parse_cpuinfo(Path("/proc/cpuinfo").read_text())
    except OSError:
        flags = ()
    return host_class_for(normalize_arch(platform.machine()), flags)
