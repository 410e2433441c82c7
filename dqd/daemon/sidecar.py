"""Per-model settings: ``[models."<glob>"]`` in the configuration, then a ``<stem>.dqd.toml`` sidecar.

Globs match the path relative to the watched root or the file name; every
matching section applies in file order, and the sidecar beside the model
applies last, so the most specific word wins. A sidecar that does not parse
is reported and ignored: one bad file must not stop the daemon.
"""

from __future__ import annotations

import logging
import tomllib
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import ValidationError

from dqd.daemon.filters import SIDECAR_SUFFIX
from dqd.settings import ModelOverrides, Settings

logger = logging.getLogger(__name__)


def sidecar_path(model: Path) -> Path:
    """``a/model.onnx`` → ``a/model.dqd.toml``."""
    return model.with_name(model.stem + SIDECAR_SUFFIX)


def read_sidecar(model: Path) -> dict[str, Any]:
    path = sidecar_path(model)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        logger.error("ignoring %s: %s", path, exc, extra={"action": "sidecar_invalid", "path": str(path)})
        return {}
    return data


def merge_overrides(layers: list[dict[str, Any]]) -> dict[str, Any]:
    """Later layers win; dict-valued keys (input_shapes, accuracy) merge key by key."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "pin":
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
    return merged


def overrides_for(settings: Settings, root: Path, rel_path: str) -> ModelOverrides:
    rel = PurePosixPath(rel_path)
    layers = [
        section.model_dump(exclude_unset=True)
        for pattern, section in settings.models.items()
        if fnmatchcase(rel_path, pattern) or fnmatchcase(rel.name, pattern)
    ]
    sidecar = read_sidecar(root / rel_path)
    if sidecar:
        layers.append(sidecar)
    try:
        return ModelOverrides.model_validate(merge_overrides(layers))
    except ValidationError as exc:
        logger.error(
            "ignoring the sidecar of %s: %s",
            rel_path,
            exc.errors()[0]["msg"],
            extra={"action": "sidecar_invalid", "path": rel_path},
        )
        return ModelOverrides.model_validate(merge_overrides(layers[:-1] if sidecar else layers))


def escape_glob(text: str) -> str:
    """A glob matching exactly ``text``."""
    return "".join(f"[{c}]" if c in "*?[]" else c for c in text)


def settings_for_model(settings: Settings, rel_path: str, overrides: ModelOverrides) -> Settings:
    """Settings the engine sees for this model: the merged overrides under an exact-path glob.

    The engine applies ``[models."<glob>"]`` sections itself, so adding the
    sidecar's merged result as the last, exact section hands it over unchanged.
    """
    if overrides == ModelOverrides():
        return settings
    models = {k: v for k, v in settings.models.items()}
    models[escape_glob(rel_path)] = overrides
    return settings.model_copy(update={"models": models})
