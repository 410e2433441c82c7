"""The daemon on the in-process engine says what it said when recorded (tests/golden/daemon.py).

Covers what a refactor of per-model settings (ModelPlan) or of the decision
records must not change: catalog rows, `dqd process --json` objects, the HTTP
API, the query commands and the invalid-sidecar log line.
"""

from __future__ import annotations

from tests.golden import daemon


def test_daemon_outputs_match_recorded_outputs() -> None:
    actual = daemon.record()
    expected = {path.stem: path.read_text() for path in sorted(daemon.EXPECTED.glob("*.jsonl"))}
    assert sorted(actual) == sorted(expected), "the set of recorded outputs changed"
    report = [
        f"{name}:\n" + "\n".join("  " + line for line in daemon.changes(expected[name], text))
        for name, text in sorted(actual.items())
        if text != expected[name]
    ]
    assert not report, (
        "the daemon's outputs changed (record/path: expected -> actual); "
        "if intended: python -m tests.golden.daemon --write\n" + "\n".join(report)
    )
