"""Per-model settings: ``[models."<glob>"]`` in the configuration, then a ``<stem>.dqd.toml`` sidecar.

Globs match the path relative to the watched root or the file name; every
matching section applies in file order, and the sidecar beside the model
applies last, so the most specific word wins. The daemon logs and ignores a
sidecar that does not parse or validate (one bad file must not stop it);
``dqd process`` reports it as that model's error instead. This module reads
and merges; :mod:`dqd.pipeline.plan` turns the result into a model's plan.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import Any

from dqd.errors import DqdError
from dqd.pathtext import fits
from dqd.settings import Settings

SIDECAR_SUFFIX = ".dqd.toml"


def sidecar_path(model: Path) -> Path:
    """``a/model.onnx`` → ``a/model.dqd.toml``."""
    return model.with_name(model.stem + SIDECAR_SUFFIX)


class SidecarError(DqdError):
    """A ``<stem>.dqd.toml`` that cannot be read or does not validate."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        super().__init__(f"invalid per-model settings in {path}: {problem}")


def load_sidecar(model: Path) -> dict[str, Any]:
    """The sidecar's table, ``{}`` when there is none; :class:`SidecarError` when it does not parse."""
    path = sidecar_path(model)
    if not fits(path):
        return {}
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SidecarError(path, str(exc)) from exc


def merge_overrides(layers: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Later layers win; dict-valued keys (input_shapes, accuracy) merge key by key, a pin never."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "pin":
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
    return merged


def matching_sections(settings: Settings, rel_path: str) -> list[dict[str, Any]]:
    """The ``[models."<glob>"]`` sections matching the path or the file name, in file order."""
    name = PurePosixPath(rel_path).name
    return [
        section.model_dump(exclude_unset=True)
        for pattern, section in settings.models.items()
        if fnmatchcase(rel_path, pattern) or fnmatchcase(name, pattern)
    ]
