"""kill -9 of a real daemon at random moments: no job lost, no decision twice, no partial file.

The short run CI affords; ``python -m tests.perf.kill_loop`` runs the long one (50 models, 10+ kills).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.acceptance.kill_loop import run_kill_loop

pytestmark = pytest.mark.slow


def test_kill_9_at_random_moments_loses_nothing_and_decides_once(tmp_path: Path) -> None:
    report = run_kill_loop(tmp_path, f"sqlite:///{tmp_path / 'dqd.db'}", models=6, kills=4, seed=3)
    assert (report.lost, report.duplicates, report.leftovers) == (0, 0, ()), report
    assert report.decided == report.published == 6, report
