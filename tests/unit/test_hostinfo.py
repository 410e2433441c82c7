"""Host class from CPU flags."""

from __future__ import annotations

import pytest

from dqd.domain import HostInfo
from dqd.hostinfo import declared, host_class_for, normalize_arch, parse_cpuinfo

X86_CPUINFO = """processor\t: 0
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse4_1 avx avx2 avx512f avx512bw avx512_vnni
"""
ARM_CPUINFO = """processor\t: 0
Features\t: fp asimd evtstrm aes asimddp sha512
CPU implementer\t: 0x41
"""


def test_parse_x86() -> None:
    model, flags = parse_cpuinfo(X86_CPUINFO)
    assert model == "AMD EPYC 9R14"
    assert flags == ("sse4_1", "avx2", "avx512f", "avx512bw", "avx512_vnni")


def test_parse_arm() -> None:
    _, flags = parse_cpuinfo(ARM_CPUINFO)
    assert flags == ("asimd", "asimddp")


@pytest.mark.parametrize(
    ("arch", "flags", "expected"),
    [
        ("x86_64", ["avx2", "sse4_1"], "x86_64-avx2"),
        ("x86_64", ["avx2", "avx512f", "avx512bw"], "x86_64-avx512"),
        ("x86_64", ["avx2", "avx512bw", "avx512_vnni"], "x86_64-avx512vnni"),
        ("x86_64", ["avx2", "avx_vnni"], "x86_64-avxvnni"),
        ("x86_64", ["avx512_vnni", "amx_int8"], "x86_64-amx"),
        ("aarch64", ["asimd", "asimddp"], "aarch64-dotprod"),
        ("aarch64", ["asimd", "asimddp", "i8mm"], "aarch64-i8mm"),
        ("riscv64", [], "riscv64-generic"),
    ],
)
def test_host_class(arch: str, flags: list[str], expected: str) -> None:
    assert host_class_for(arch, flags) == expected


def test_normalize_arch() -> None:
    assert normalize_arch("AMD64") == "x86_64"
    assert normalize_arch("arm64") == "aarch64"


def _detected() -> HostInfo:
    return HostInfo(
        host_id="abc",
        hostname="h",
        host_class="x86_64-avx2",
        arch="x86_64",
        cpu_model="cpu",
        isa_flags=("avx2",),
        usable_cores=2,
        os="Linux",
        ort_version="1",
        onnx_version="1",
        dqd_version="1",
    )


def test_a_declared_identity_replaces_id_and_class_and_keeps_the_detected_flags() -> None:
    host = declared(_detected(), "bench-01", "x86_64-amx")
    assert (host.host_id, host.host_class, host.isa_flags, host.declared) == (
        "bench-01",
        "x86_64-amx",
        ("avx2",),
        True,
    )
    assert declared(_detected(), None, "x86_64-amx").host_id == "abc"
    assert declared(_detected(), None, None) == _detected()
    assert not _detected().declared
