"""The removal guard: when "these models are gone" is too big to believe (issue 9, scenario 4)."""

from __future__ import annotations

import pytest

from dqd.daemon.removal_guard import removal_block_reason


@pytest.mark.parametrize(
    ("known", "missing", "empty", "blocked"),
    [
        (7, 7, True, True),  # an NFS mount that failed to mount: the folder is empty
        (1, 1, True, True),  # an empty root where a model used to be
        (7, 4, False, True),  # more than half at once
        (4, 2, False, False),  # exactly half: ordinary clean-up
        (7, 3, False, False),
        (2, 2, False, False),  # below three models: one or two ordinary deletions
        (3, 2, False, True),
        (5, 0, True, False),  # nothing would be removed
    ],
)
def test_when_removals_are_held_back(known: int, missing: int, empty: bool, blocked: bool) -> None:
    reason = removal_block_reason(known, missing, root_empty=empty, root="/mnt/models")
    assert (reason is not None) == blocked
    if reason is not None:
        assert "/mnt/models" in reason and "dqd prune --yes" in reason
        assert ("empty" in reason) == empty
