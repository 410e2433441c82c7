"""Which files under the watched root are models, which are ignored, which are refused.

Rules, in order: anything under dqd's own output or publish directory is
ignored (dqd must never process what it wrote); a path with an excluded
component (dot-files and dot-folders, temporary download suffixes) is
ignored; a file matching an include glob is a model, unless it resolves
outside the root through a symlink, which is refused (and recorded by the
caller: a link out of the tree could expose any file on the host), or is not
a regular file: a FIFO (opening one would block until someone writes), a
socket or device, a dangling symlink or a symlink loop, refused the same way
with the reason. Other
files are *companions*: external-data files, ``config.pbtxt`` and the like,
whose writes delay the model they sit beside.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from enum import StrEnum
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath

from dqd.sidecar import SIDECAR_SUFFIX


class Kind(StrEnum):
    MODEL = "model"
    COMPANION = "companion"
    IGNORED = "ignored"
    REFUSED = "refused"


@dataclass(frozen=True)
class Verdict:
    kind: Kind
    rel_path: str | None  # POSIX path relative to the root; None when outside it
    reason: str = ""


class PathFilter:
    def __init__(
        self,
        root: Path,
        include: list[str],
        exclude: list[str],
        skip_dirs: list[Path] | tuple[Path, ...] = (),
    ) -> None:
        self.root = Path(os.path.abspath(root))
        self.real_root = Path(os.path.realpath(root))
        self.include = list(include)
        self.exclude = list(exclude)
        # Output and publish folders configured inside the tree: never watch what dqd writes.
        self.skip_rel: list[PurePosixPath] = []
        for directory in skip_dirs:
            rel = self._relative(Path(os.path.abspath(directory)))
            if rel is None:
                rel = self._relative(Path(os.path.realpath(directory)), real=True)
            if rel is not None and str(rel) != ".":
                self.skip_rel.append(rel)

    def _relative(self, path: Path, real: bool = False) -> PurePosixPath | None:
        base = self.real_root if real else self.root
        try:
            return PurePosixPath(path.relative_to(base).as_posix())
        except ValueError:
            return None

    def rel_path(self, path: str | os.PathLike[str]) -> str | None:
        rel = self._relative(Path(os.path.abspath(path)))
        return None if rel is None or str(rel) == "." else str(rel)

    def is_skipped_dir(self, rel: PurePosixPath) -> bool:
        return any(rel == skip or skip in rel.parents for skip in self.skip_rel)

    def excluded(self, rel: PurePosixPath) -> str | None:
        """The exclude rule ``rel`` hits, if any (globs without '/' apply to every component)."""
        if self.is_skipped_dir(rel):
            return "dqd output/publish directory"
        text = str(rel)
        for pattern in self.exclude:
            if "/" in pattern:
                if fnmatchcase(text, pattern):
                    return pattern
            elif any(fnmatchcase(part, pattern) for part in rel.parts):
                return pattern
        return None

    def is_model_name(self, rel: PurePosixPath) -> bool:
        text = str(rel)
        return any(fnmatchcase(rel.name, p) or ("/" in p and fnmatchcase(text, p)) for p in self.include)

    def models_beside(self, companion_rel: str) -> list[str]:
        """The models (relative paths) a companion file belongs to, as its folder holds them now."""
        folder = PurePosixPath(companion_rel).parent
        try:
            names = sorted(e.name for e in os.scandir(self.root / folder) if e.is_file())
        except OSError:
            return []
        models = [n for n in names if self.is_model_name(folder / n) and self.excluded(folder / n) is None]
        owners = models_of_companion(PurePosixPath(companion_rel).name, models)
        return [str(folder / name) for name in owners]

    def classify(self, path: str | os.PathLike[str], *, check_links: bool = True) -> Verdict:
        """Classify a file path (absolute, or relative to the current directory).

        ``check_links=False`` skips the filesystem (for paths that no longer exist).
        """
        rel = self._relative(Path(os.path.abspath(path)))
        if rel is None or str(rel) == ".":
            return Verdict(Kind.IGNORED, None, "outside the watched root")
        hit = self.excluded(rel)
        if hit is not None:
            return Verdict(Kind.IGNORED, str(rel), f"excluded by {hit}")
        if rel.name.endswith(SIDECAR_SUFFIX):
            return Verdict(Kind.COMPANION, str(rel), "per-model settings")
        if not self.is_model_name(rel):
            return Verdict(Kind.COMPANION, str(rel))
        if check_links:
            real = Path(os.path.realpath(path))
            if self._relative(real, real=True) is None:
                return Verdict(Kind.REFUSED, str(rel), f"symlink resolves outside the watched root: {real}")
            unusable = not_a_regular_file(path)
            if unusable is not None:
                return Verdict(Kind.REFUSED, str(rel), unusable)
        return Verdict(Kind.MODEL, str(rel))


def models_of_companion(companion: str, models_in_folder: list[str]) -> list[str]:
    """Which models of its folder a companion file belongs to (file names; pure).

    A sidecar ``x.dqd.toml`` is ``x.onnx``'s (whatever x.* is a model); another companion
    (``x.onnx.data``, ``x_weights.bin``) is each model whose name or stem begins its name,
    else the folder's only model (a Triton version folder's ``model.onnx`` and its weights).
    """
    if companion.endswith(SIDECAR_SUFFIX):
        stem = companion[: -len(SIDECAR_SUFFIX)]
        return [m for m in models_in_folder if PurePosixPath(m).stem == stem]
    owners = [m for m in models_in_folder if companion.startswith((m, PurePosixPath(m).stem))]
    return owners or (list(models_in_folder) if len(models_in_folder) == 1 else [])


def not_a_regular_file(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot be read as a model file without hanging or failing, or None.

    Only ``stat`` is used: never ``open``, which blocks on a FIFO. A path that
    is simply gone is None: whoever reads it next finds it missing.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return f"dangling symlink: its target {os.readlink(path)} does not exist"
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symlink loop: following the link never reaches a file"
        return None  # e.g. a permission problem: the reader reports it
    if stat.S_ISREG(st.st_mode):
        return None
    kinds = {stat.S_ISFIFO: "a FIFO", stat.S_ISSOCK: "a socket", stat.S_ISDIR: "a folder"}
    kind = next((name for test, name in kinds.items() if test(st.st_mode)), "a device")
    return f"not a regular file ({kind}): dqd reads models from regular files only"
