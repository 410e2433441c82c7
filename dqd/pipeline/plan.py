"""A model's plan: everything that decides how one model is processed, resolved once.

Precedence, lowest to highest: the global settings, every ``[models."<glob>"]``
section matching the path or the file name (in file order), the model's
``<stem>.dqd.toml`` sidecar, then a command-line flag (``--search``). Each
field of the plan says which of these it came from.

:func:`resolve_plan` is pure: the caller reads the sidecar and hands its table
in, so tests need no files. :func:`plan_for` is its shell, the one call the
scheduler's staleness check, the worker and ``dqd process`` make at their
boundary: it reads the sidecar and says what a bad one means there (the daemon
logs it and goes on without it; ``dqd process`` makes it the model's error).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dqd.domain import SearchMode, VariantSpec
from dqd.pipeline.policy import policy_version_for
from dqd.settings import AccuracySettings, ModelOverrides, Settings
from dqd.sidecar import SidecarError, load_sidecar, matching_sections, merge_overrides, sidecar_path

logger = logging.getLogger(__name__)

PLAN_FIELDS = ("search", "exclude", "pin", "nodes_to_exclude", "input_shapes", "accuracy")


class Source(StrEnum):
    SETTINGS = "settings"  # the global configuration (or its built-in default)
    MODELS = "models"  # a [models."<glob>"] section
    SIDECAR = "sidecar"  # <stem>.dqd.toml beside the model
    FLAG = "flag"  # a command-line flag


class InvalidSidecar(ValueError):
    """The sidecar's table does not validate; ``key`` names the offending setting."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}")


@dataclass(frozen=True)
class ModelPlan:
    rel_path: str
    search: SearchMode
    policy_version: str
    exclude: bool = False
    pin: VariantSpec | None = None  # build, gate, time and ship exactly this spec
    pin_fp32: bool = False  # ship the original without loading it
    nodes_to_exclude: tuple[str, ...] = ()  # kept in FP32 by every quantized candidate (the pin's too)
    accuracy: AccuracySettings = field(default_factory=AccuracySettings)
    sources: Mapping[str, Source] = field(default_factory=dict)  # PLAN_FIELDS -> where each came from

    def fingerprint(self) -> str:
        """What a decision depends on, hashed: a changed plan makes earlier decisions stale."""
        facts = {
            "search": self.search.value,
            "policy_version": self.policy_version,
            "exclude": self.exclude,
            "pin": self.pin.to_dict() if self.pin else ("fp32" if self.pin_fp32 else None),
            "nodes_to_exclude": list(self.nodes_to_exclude),
            "accuracy": self.accuracy.model_dump(mode="json"),
        }
        return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]


def validate_sidecar(sidecar: Mapping[str, Any]) -> dict[str, Any]:
    """The sidecar's table as validated per-model settings (only the keys it sets)."""
    try:
        return ModelOverrides.model_validate(dict(sidecar)).model_dump(exclude_unset=True)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"] if part != "[key]")
        raise InvalidSidecar(key, error["msg"]) from None


def resolve_plan(
    settings: Settings,
    sidecar: Mapping[str, Any] | None,
    rel_path: str,
    *,
    search_flag: SearchMode | str | None = None,
) -> ModelPlan:
    """The model's plan; :class:`InvalidSidecar` when the sidecar's table does not validate.

    ``sidecar`` is the parsed ``<stem>.dqd.toml`` (``None`` or ``{}``: there is none).
    """
    sections = matching_sections(settings, rel_path)
    own = validate_sidecar(sidecar) if sidecar else {}
    layers: list[tuple[Source, Mapping[str, Any]]] = [(Source.MODELS, s) for s in sections]
    layers.append((Source.SIDECAR, own))
    merged = ModelOverrides.model_validate(merge_overrides([layer for _, layer in layers]))
    sources = {name: Source.SETTINGS for name in PLAN_FIELDS}
    for source, layer in layers:
        sources.update({name: source for name in layer if name in sources})

    search = SearchMode(merged.search or settings.search)
    if search_flag is not None:
        search, sources["search"] = SearchMode(search_flag), Source.FLAG

    pin = VariantSpec.from_dict(merged.pin) if isinstance(merged.pin, dict) else None
    # A pin's own nodes_to_exclude join the model's: the engine checks them all against the graph.
    nodes = tuple(dict.fromkeys((*merged.nodes_to_exclude, *(pin.nodes_to_exclude if pin else ()))))
    shapes = {**settings.accuracy.input_shapes, **merged.input_shapes}
    accuracy = settings.accuracy.model_copy(update={**merged.accuracy, "input_shapes": shapes})
    return ModelPlan(
        rel_path=rel_path,
        search=search,
        policy_version=policy_version_for(search),
        exclude=merged.exclude,
        pin=replace(pin, nodes_to_exclude=()) if pin else None,
        pin_fp32=merged.pin == "fp32",
        nodes_to_exclude=nodes,
        accuracy=accuracy,
        sources=sources,
    )


def plan_for(
    settings: Settings,
    root: Path,
    rel_path: str,
    *,
    strict: bool,
    search_flag: SearchMode | str | None = None,
) -> ModelPlan:
    """The plan of ``root / rel_path`` with its sidecar read from disk.

    A sidecar that does not parse or validate is :class:`SidecarError` when
    ``strict``; otherwise it is logged and the plan is resolved without it
    (the configuration's sections were validated when it loaded).
    """
    model = root / rel_path
    try:
        table = load_sidecar(model)
        return resolve_plan(settings, table, rel_path, search_flag=search_flag)
    except SidecarError as exc:
        error = exc
    except InvalidSidecar as exc:
        error = SidecarError(sidecar_path(model), str(exc))
    if strict:
        raise error
    logger.error("ignoring %s", error, extra={"action": "sidecar_invalid", "path": str(error.path)})
    return resolve_plan(settings, None, rel_path, search_flag=search_flag)
