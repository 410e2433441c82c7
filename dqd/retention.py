"""What ``dqd gc`` may remove: pure rules over what the catalog says and the disk shows.

A variant file goes when nothing can ask for it any more: no decision ``dqd best``
can return selects it (the latest per content, host class, onnxruntime version and
thread count), no freeze holds it, no running job works on its content, and it was
written more than ``retention.keep_days`` ago. It must also lie inside
``output_dir`` and be no source model: a variant path recorded by a catalog that
was pointed elsewhere never reaches a user's file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePath

SECONDS_PER_DAY = 86400.0


class Kept(StrEnum):
    """Why a variant file stays."""

    SELECTED = "selected"  # a latest or frozen decision ships it: `dqd best` can return it
    BUSY = "busy"  # a running job works on its content and may be reusing it
    RECENT = "recent"  # written less than keep_days ago
    FOREIGN = "foreign"  # outside output_dir, or a source model: never dqd's to remove


@dataclass(frozen=True)
class RetentionView:
    """The catalog's side of a collection."""

    variant_files: Mapping[str, frozenset[str]]  # recorded variant path -> contents whose variants name it
    selected: frozenset[str]  # variant paths a latest or frozen decision selects
    busy: frozenset[str] = frozenset()  # contents with a running job
    removed_models: tuple[str, ...] = ()  # watched-tree paths marked removed (and not back)
    removal_blocks: tuple[str, ...] = ()  # roots whose mass-removal guard is active
    sources: tuple[str, ...] = ()  # watched-tree paths of live models


def variant_verdict(
    path: PurePath,
    *,
    output_dir: PurePath,
    sources: frozenset[PurePath],
    selected: frozenset[PurePath],
    busy: bool,
    age_seconds: float,
    keep_days: float,
) -> Kept | None:
    """Why the variant file ``path`` stays, or None when it may go (paths absolute and resolved)."""
    if not path.is_relative_to(output_dir) or path == output_dir or path in sources:
        return Kept.FOREIGN
    if path in selected:
        return Kept.SELECTED
    if busy:
        return Kept.BUSY
    if age_seconds < keep_days * SECONDS_PER_DAY:
        return Kept.RECENT
    return None
