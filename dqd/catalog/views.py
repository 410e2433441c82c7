"""Read-side shapes returned by :mod:`dqd.catalog.queries`, and the page cursor codec.

Frozen dataclasses, so the CLI, the HTTP API (pydantic reads dataclasses for
its OpenAPI schema and serialization) and the report share one definition.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dqd.domain import DecisionRecord, InputSource, Job, ModelPath, Outcome, VariantRecord
from dqd.errors import UsageError


@dataclass(frozen=True)
class AccuracySummary:
    """The decisive accuracy evaluation of a decision's selected variant, in one line."""

    input_source: InputSource
    passed: bool
    metric: str | None  # the headline metric, e.g. "cosine_mean" (worst output)
    value: float | None
    reason: str


@dataclass(frozen=True)
class LatestDecision:
    """A model's newest decision for one host class."""

    decision_id: int
    host_class: str
    ort_version: str
    outcome: Outcome
    variant: str | None  # the selected variant's name
    variant_id: int | None
    speedup: float | None
    speedup_ci: tuple[float, float] | None
    accuracy: AccuracySummary | None
    created_at: datetime
    threads: int | None = None  # intra-op threads it was timed at (None: nothing timed)
    reason: str | None = None  # the decision's first reason
    source_precision: str = "fp32"  # the model as given (a kept FP16 original is FP16)


@dataclass(frozen=True)
class ModelListing:
    """A model (a path in the watched tree) and its latest decision per host class."""

    path_id: int
    path: str
    sha256: str | None
    size_bytes: int | None
    last_seen_at: datetime
    removed_at: datetime | None
    decisions: list[LatestDecision]
    refused_reason: str | None = None  # dqd will not process this path (a symlink out of the tree): final


@dataclass(frozen=True)
class BenchmarkView:
    id: int
    decision_id: int | None
    variant_id: int | None
    variant: str  # "fp32" for the shipped model
    host_class: str
    host_id: str | None
    ort_version: str
    step: str
    threads: int
    rounds: int
    median_ms: float
    p90_ms: float
    p99_ms: float
    speedup: float | None
    speedup_ci: tuple[float, float] | None
    peak_rss_bytes: int | None
    samples_ms: list[float]
    created_at: datetime
    foreign_load: float | None = None  # others' use of the CPU meanwhile (dqd.hostload)
    load_source: str | None = None


@dataclass(frozen=True)
class AccuracyView:
    id: int
    decision_id: int | None
    variant_id: int
    variant: str
    input_source: InputSource
    metrics: Mapping[str, Mapping[str, float | None]]
    passed: bool
    decisive: bool
    reason: str
    created_at: datetime


@dataclass(frozen=True)
class DecisionView:
    decision: DecisionRecord
    variant: str | None
    path: str | None  # the path the engine processed (content may live at several)


@dataclass(frozen=True)
class FreezeView:
    """``dqd freeze`` or ``rollback``: ``host_class`` ships ``decision_id``'s file, whatever comes later."""

    host_class: str
    decision_id: int
    reason: str  # freeze | rollback
    created_at: datetime


@dataclass(frozen=True)
class PathVersion:
    sha256: str
    seen_at: datetime
    superseded_at: datetime | None = None  # replaced before it was decided (e.g. a partial write)


@dataclass(frozen=True)
class ModelDetail:
    path: ModelPath | None  # None: content recorded without an observed path
    sha256: str
    size_bytes: int | None
    other_paths: list[str]  # other live paths holding the same content
    history: list[PathVersion]  # contents this path held, oldest first
    summary: Mapping[str, Any] | None  # preflight facts
    variants: list[VariantRecord]
    accuracy: list[AccuracyView]
    benchmarks: list[BenchmarkView]
    decisions: list[DecisionView]  # newest first
    freezes: list[FreezeView]  # per host class, what ships there instead of the latest decision


@dataclass(frozen=True)
class ModelPage:
    items: list[ModelListing]
    next_cursor: str | None


@dataclass(frozen=True)
class JobPage:
    items: list[Job]
    next_cursor: str | None


@dataclass(frozen=True)
class DecisionPage:
    items: list[DecisionView]
    next_cursor: str | None


@dataclass(frozen=True)
class RemovalBlock:
    """A watched root whose removals are held back (:mod:`dqd.catalog.removals`)."""

    root: str
    reason: str
    known: int  # live models the catalog knew under the root
    missing: int  # how many of them the scan did not find
    host_id: str | None
    blocked_at: datetime


@dataclass(frozen=True)
class ScatterPoint:
    """One benchmarked, accuracy-checked variant for the catalog-wide scatter."""

    path: str
    host_class: str
    variant: str
    speedup: float
    accuracy: float
    passed: bool
    selected: bool


@dataclass(frozen=True)
class TimelinePoint:
    """One decision on the catalog-wide timeline."""

    created_at: datetime
    host_class: str
    ort_version: str
    outcome: Outcome
    speedup: float | None


def encode_cursor(*key: Any) -> str:
    """An opaque keyset cursor: the sort key of the last row handed out."""
    raw = json.dumps(list(key), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    """The key inside a cursor; :class:`UsageError` (a 400, exit 2) when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise UsageError(f"invalid cursor {cursor!r}: pass back a next_cursor value unchanged") from None
    if not isinstance(key, list) or len(key) != arity or any(isinstance(v, dict | list) for v in key):
        raise UsageError(f"invalid cursor {cursor!r}: pass back a next_cursor value unchanged")
    return key
