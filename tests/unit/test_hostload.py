"""Foreign load: a fraction of the interval, from two samples of one source."""

from __future__ import annotations

import os

import pytest

from dqd import hostload
from dqd.hostload import PRESSURE, PROC, LoadSample, foreign_load


def test_pressure_is_stalled_time_over_wall_time() -> None:
    load = foreign_load(LoadSample(PRESSURE, 10.0, 5.0), LoadSample(PRESSURE, 12.0, 5.5))
    assert load is not None and load.value == pytest.approx(0.25) and load.source == PRESSURE


def test_proc_is_others_cpu_time_over_the_capacity_of_the_interval() -> None:
    load = foreign_load(LoadSample(PROC, 0.0, 100.0, 4), LoadSample(PROC, 2.0, 104.0, 4))
    assert load is not None and load.value == pytest.approx(0.5)


def test_unknown_mixed_or_empty_intervals_say_nothing_and_values_are_clamped() -> None:
    assert foreign_load(None, LoadSample(PRESSURE, 1.0, 0.0)) is None
    assert foreign_load(LoadSample(PRESSURE, 1.0, 0.0), LoadSample(PROC, 2.0, 1.0)) is None
    assert foreign_load(LoadSample(PRESSURE, 1.0, 0.0), LoadSample(PRESSURE, 1.0, 0.0)) is None
    high = foreign_load(LoadSample(PROC, 0.0, 0.0, 1), LoadSample(PROC, 1.0, 3.0, 1))
    low = foreign_load(LoadSample(PROC, 0.0, 5.0, 1), LoadSample(PROC, 1.0, 4.0, 1))  # own time > others'
    assert high is not None and high.value == 1.0 and low is not None and low.value == 0.0


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="Linux only")
def test_this_host_gives_a_sample_from_one_of_the_sources() -> None:
    # Linux always has /proc/stat; PSI where the kernel has it (the source then is pressure).
    sampled = hostload.sample()
    assert sampled is not None
    assert sampled.source == (PRESSURE if hostload.pressure_file() is not None else PROC)


def test_a_virtual_machines_stolen_time_adds_to_pressure() -> None:
    # 0.5 s of stall and 2 s of steal over 4 CPUs in 2 s: 0.25 + 0.25 of the interval.
    before = LoadSample(PRESSURE, 0.0, 1.0, steal=10.0, cpus=4)
    after = LoadSample(PRESSURE, 2.0, 1.5, steal=12.0, cpus=4)
    load = foreign_load(before, after)
    assert load is not None and load.value == pytest.approx(0.5)
