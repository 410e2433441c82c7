"""The decision logic replayed on fixed measurements gives the recorded outputs (tests/golden)."""

from __future__ import annotations

import json

import pytest

from tests.golden import replay


@pytest.mark.parametrize("name", sorted(replay.CASES))
def test_replay_matches_recorded_outputs(name: str) -> None:
    expected_file = replay.EXPECTED / f"{name}.jsonl"
    expected = {}
    for line in expected_file.read_text().splitlines():
        expected.update(json.loads(line))
    actual = json.loads(json.dumps(replay.CASES[name](), sort_keys=True))
    assert sorted(actual) == sorted(expected), "the set of replayed cases changed"
    changed = [key for key in expected if actual[key] != expected[key]]
    assert not changed, (
        f"{len(changed)} of {len(expected)} {name} cases decide differently, e.g. {changed[:3]}; "
        "if the change is intended: python -m tests.golden.replay --write"
    )
