"""Names of files that are not models yet: other tools' partial downloads and dqd's own scratch.

One definition for the watcher's default excludes (settings), the publisher's
skip list and the places dqd writes scratch files, so a name dqd writes is
always one the watcher and the publisher leave alone.
"""

from __future__ import annotations

TMP_SUFFIX = ".tmp"  # dqd's own atomic writes (publish copies, report export) and many tools'
# Partial downloads and copies: curl/wget/rsync-style tools, browsers (Chrome's .crdownload).
PARTIAL_SUFFIXES = (TMP_SUFFIX, ".part", ".partial", ".crdownload")

# dqd's scratch folders beside the files it builds. The dot prefix hides them from the
# watcher (dot-files are excluded by default) when output_dir lies inside a watched tree.
BUILD_PREFIX = ".dqd-build-"  # quantize.py: one variant being built
WORK_PREFIX = ".dqd-work-"  # engine.py: one model's working folder
PREPARE_PREFIX = "dqd-pre-"  # prepare.py: inside a build folder already, so no dot needed


def default_exclude_globs() -> list[str]:
    """The watcher's default ``watch.exclude``: dot-files and partial files."""
    return [".*", *(f"*{suffix}" for suffix in PARTIAL_SUFFIXES)]
