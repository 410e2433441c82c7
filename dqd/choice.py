"""What to load, and which accuracy number to show: pure picks over recorded decisions.

The catalog fetches the candidate decisions (rows, no judgement); these
functions choose, so the rule is unit-tested without a database and the API,
the CLI and the report share it. No SQL, no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dqd.domain import Outcome
from dqd.errors import DqdError, NotFound

# Preferred headline metrics, best first; all are "higher is better".
_HEADLINE = ("cosine_mean", "cosine_worst", "top1_agreement", "agreement")


class NoDecision(NotFound):
    """No decision yet for this model and host class."""


class ModelErrored(DqdError):
    """The latest decision for this model ended in ``error``: nothing to load."""

    exit_code = 1


@dataclass(frozen=True)
class BestChoice:
    """What to load on a host class: the selected variant's file or the FP32 original."""

    model: str  # the model's relative path
    sha256: str
    host_class: str
    ort_version: str
    outcome: Outcome
    variant: str | None
    load_path: str  # variant output path, or the original path relative to the watched root
    is_original: bool
    decision_id: int
    decided_at: datetime
    threads: int | None = None  # intra-op threads the decision was timed at (None: nothing timed)
    at_configured_threads: bool = True  # False: none at benchmark.threads, this is the latest at any
    note: str | None = None  # why this decision, when it is not at the configured thread count
    original_precision: str = "fp32"  # the model as given: with is_original, what the loaded file computes in
    frozen: bool = False  # `dqd freeze`/`dqd rollback` holds this decision, whatever was decided later


@dataclass(frozen=True)
class RecordedDecision:
    """One recorded decision of a model on a host class and onnxruntime version, as the pick needs it."""

    decision_id: int  # higher is later
    outcome: Outcome
    decided_at: datetime
    threads: int | None  # None: nothing was timed (a skip, a model error)
    error: str | None = None
    variant: str | None = None  # the selected variant's name; None: the FP32 original
    variant_output_path: str | None = None
    recorded_path: str | None = None  # the model's path as the decision recorded it
    source_precision: str = "fp32"  # the model as given (fp16, bf16, …)


def choose_best(
    candidates: Iterable[RecordedDecision],
    *,
    model_path: str | None,
    sha256: str,
    host_class: str,
    ort_version: str,
    threads: int | None = None,
    frozen: RecordedDecision | None = None,
) -> BestChoice:
    """What to load, per the latest of ``candidates`` (all for one model, host class, onnxruntime).

    With ``threads`` (the configured ``benchmark.threads``): the latest decision timed at
    that count (or that timed nothing: a skip or a model error holds at any count), so a
    one-shot run at another count does not replace the daemon's; failing that, the latest
    at any count, with a ``note`` saying so. The latest ending in error is an error
    (:class:`ModelErrored`), not "load the original". A ``frozen`` decision wins over all.
    """
    by_age = [frozen] if frozen else sorted(candidates, key=lambda c: c.decision_id, reverse=True)
    at_count = [c for c in by_age if frozen or threads is None or c.threads in (threads, None)]
    if not by_age:
        raise NoDecision(
            f"no decision yet for {model_path or sha256} on {host_class} under onnxruntime {ort_version}"
        )
    picked = (at_count or by_age)[0]
    at_configured = threads is None or bool(at_count)
    name = model_path or picked.recorded_path or sha256
    if picked.outcome is Outcome.ERROR:
        raise ModelErrored(f"{name} ended in error on {host_class}: {picked.error or 'no message'}")
    if picked.variant is not None and not picked.variant_output_path:
        raise NotFound(f"{name}: the selected variant {picked.variant} has no output file recorded")
    return BestChoice(
        model=name,
        sha256=sha256,
        host_class=host_class,
        ort_version=ort_version,
        outcome=picked.outcome,
        variant=picked.variant,
        load_path=picked.variant_output_path or name,
        is_original=picked.variant is None,
        decision_id=picked.decision_id,
        decided_at=picked.decided_at,
        threads=picked.threads,
        at_configured_threads=at_configured,
        original_precision=picked.source_precision,
        frozen=frozen is not None,
        note=_note(name, host_class, threads, picked, frozen=frozen is not None, at_configured=at_configured),
    )


def _note(
    name: str,
    host_class: str,
    threads: int | None,
    picked: RecordedDecision,
    *,
    frozen: bool,
    at_configured: bool,
) -> str | None:
    if frozen:
        return f"frozen at decision {picked.decision_id} (`dqd unfreeze {name}` follows the latest again)"
    if at_configured:
        return None
    return (
        f"no decision for {name} on {host_class} timed at {threads} threads "
        f"(benchmark.threads); this one was timed at {picked.threads}"
    )


def headline_accuracy(metrics: Mapping[str, Any] | None) -> tuple[str | None, float | None]:
    """The worst output's value of the most telling metric, e.g. ("cosine_mean", 0.991).

    ``metrics`` maps each output name to its metrics; the first of the preferred
    names that any output has wins, then any cosine-like one (sorted by name).
    """
    if not metrics:
        return None, None
    per_output = [m for m in metrics.values() if isinstance(m, Mapping)]
    names = {name for m in per_output for name in m}
    for name in (*_HEADLINE, *sorted(n for n in names if "cos" in n)):
        values = [m[name] for m in per_output if isinstance(m.get(name), int | float)]
        if values:
            return name, float(min(values))
    return None, None
