"""When is "these models are gone" too big to believe?

A folder that failed to mount, or an NFS server returning an empty export,
looks exactly like every model having been deleted. Marking them all removed
would silently empty the catalog's current view (and, to the team, look like
data loss), so a scan that finds an empty root where models used to be, or
that would remove more than half of the known models at once (when there are
at least ``MIN_KNOWN``), removes nothing and asks a person: the folder coming
back clears the block, ``dqd prune`` confirms the removals.

Pure: counts in, a reason (or None) out.
"""

from __future__ import annotations

MIN_KNOWN = 3  # below this, "more than half" is one or two files: ordinary deletions


def removal_block_reason(known: int, missing: int, *, root_empty: bool, root: str) -> str | None:
    """Why removing ``missing`` of ``known`` models must wait for a person; None when it need not."""
    if missing <= 0:
        return None
    advice = (
        f"check that {root} is mounted and complete; if the models were deleted on purpose, "
        "run `dqd prune --yes` to mark them removed"
    )
    if root_empty:
        return (
            f"the watched folder {root} is empty but the catalog knows {known} models there: "
            f"none marked removed; {advice}"
        )
    if known >= MIN_KNOWN and missing * 2 > known:
        return (
            f"{missing} of the {known} known models under {root} are missing at once: "
            f"none marked removed; {advice}"
        )
    return None
