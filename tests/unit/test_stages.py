"""The daemon's stage names for the engine's progress messages, and their durations."""

from __future__ import annotations

from datetime import datetime

import pytest

from dqd.daemon.stages import StageLog, stage_name


@pytest.mark.parametrize(
    ("message", "stage"),
    [
        ("preflight", "preflight"),
        ("pre-processing", "pre-process"),
        ("running FP32 on the inputs", "reference FP32"),
        ("quantizing u8s8", "quantize u8s8"),
        ("checking accuracy of u8s8", "gate u8s8"),
        ("benchmarking u8s8 against FP32", "benchmark u8s8"),
        ("rung 3: quantizing u8s8-pc", "rung 3: quantize u8s8-pc"),
        ("rung 3: benchmarking u8s8-pc against FP32", "rung 3: benchmark u8s8-pc"),
        ("playoff: timing a, b together against FP32", "playoff"),
        ("something new", "something new"),
    ],
)
def test_stage_names(message: str, stage: str) -> None:
    assert stage_name(message) == stage


def test_each_stage_is_stored_once_and_timed_until_the_next() -> None:
    now = [0.0]
    stored: list[str] = []

    def store(stage: str, _at: datetime) -> None:
        stored.append(stage)

    log = StageLog(1, store, clock=lambda: now[0])
    log.report("preflight")
    now[0] = 2.0
    log.report("quantizing u8u8")
    log.report("quantizing u8u8")  # repeated: still one stage
    now[0] = 5.5
    log.finish()
    assert stored == ["preflight", "quantize u8u8"]
    assert log.durations == [("preflight", 2.0), ("quantize u8u8", 3.5)]
    assert log.current is None
