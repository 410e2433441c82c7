"""Host class from CPU flags."""

from __future__ import annotations

import pytest

from dqd.domain import HostInfo
from dqd.hostinfo import declared, host_class_for, normalize_arch, parse_cpuinfo
from tests.query_factory import host

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
    return host("x86_64-avx2", "h")


def test_a_declared_identity_replaces_id_and_class_and_keeps_the_detected_flags() -> None:
    chosen = declared(_detected(), "bench-01", "x86_64-amx")
    assert (chosen.host_id, chosen.host_class, chosen.isa_flags, chosen.declared) == (
        "bench-01",
        "x86_64-amx",
        _detected().isa_flags,
        True,
    )
    assert declared(_detected(), None, "x86_64-amx").host_id == _detected().host_id
    assert declared(_detected(), None, None) == _detected()
    assert not _detected().declared
