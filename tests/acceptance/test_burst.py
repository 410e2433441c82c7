"""Issue 15: a burst of files at once, the CI-sized version of tests/perf/burst.py (500 files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.acceptance.burst import run_burst

pytestmark = pytest.mark.slow


def test_a_burst_of_copies_and_junk_ends_with_every_path_final_and_each_content_decided_once(
    tmp_path: Path,
) -> None:
    report = run_burst(tmp_path, files=80, valid=4)
    assert report.daemon_alive
    assert report.listed == report.files and report.pending == 0
    assert report.duplicates == 0
    # Every distinct valid model is decided; junk contents are decided (as errors) too.
    assert report.decided_contents >= report.distinct_valid
