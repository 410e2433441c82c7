"""``dqd show``'s readable form: one model's paths, variants, accuracy, benchmarks and decisions."""

from __future__ import annotations

from operator import itemgetter
from pathlib import Path

import typer

from dqd.catalog.views import AccuracyView, BenchmarkView, DecisionView, FreezeView, ModelDetail, PathVersion
from dqd.cli.output import Column, format_table, human_cell
from dqd.domain import VariantRecord
from dqd.text import human_size


def _version(version: PathVersion) -> str:
    superseded = f", superseded {human_cell(version.superseded_at)}" if version.superseded_at else ""
    return f"{version.sha256[:12]} ({human_cell(version.seen_at)}{superseded})"


def _ci(ci: tuple[float, float] | None) -> str:
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "-"


VARIANT_COLUMNS = (
    Column("ID", lambda v: v.id),
    Column("NAME", lambda v: v.spec.name),
    Column("WEIGHTS", lambda v: v.spec.weight_type.value if v.spec.weight_type else "fp32"),
    Column("PER CHANNEL", lambda v: v.spec.per_channel),
    Column("REDUCE RANGE", lambda v: v.spec.reduce_range),
    Column("OP TYPES", lambda v: list(v.spec.op_types) or None),
    Column("PREPROCESS", lambda v: v.spec.preprocess or None),
    Column("ORT", lambda v: v.ort_version),
    Column("SIZE", lambda v: v.size_bytes, lambda s: human_size(s)),
    Column("OUTPUT / ERROR", lambda v: v.error or _output(v.output_path)),
)


def _output(path: str | None) -> str | None:
    """The variant's file, and whether this host sees it (``dqd gc`` removes files nothing ships)."""
    if path is None or Path(path).exists():
        return path
    return f"{path} (missing here: removed by dqd gc, or the output volume is not mounted)"


BENCH_COLUMNS = (
    Column("DECISION", lambda b: b.decision_id),
    Column("HOST CLASS", lambda b: b.host_class),
    Column("ORT", lambda b: b.ort_version),
    Column("STEP", lambda b: b.step),
    Column("VARIANT", lambda b: b.variant),
    Column("THREADS", lambda b: b.threads),
    Column("ROUNDS", lambda b: b.rounds),
    Column("MEDIAN MS", lambda b: b.median_ms),
    Column("P90 MS", lambda b: b.p90_ms),
    Column("P99 MS", lambda b: b.p99_ms),
    Column("SPEEDUP", lambda b: b.speedup, lambda v: f"{v:.2f}x" if v else "-"),
    Column("95% CI", lambda b: _ci(b.speedup_ci)),
    Column("PEAK RSS", lambda b: b.peak_rss_bytes, lambda s: human_size(s)),
    Column("FOREIGN LOAD", lambda b: b.foreign_load, lambda v: "-" if v is None else f"{v:.2f}"),
)


def _accuracy_rows(rows: list[AccuracyView]) -> str:
    """One line per (evaluation, output): the metrics differ per output, so they are flattened."""
    lines = [
        {
            "DECISION": a.decision_id,
            "VARIANT": a.variant,
            "SOURCE": a.input_source + (" (decisive)" if a.decisive else ""),
            "OUTPUT": output,
            "METRICS": ", ".join(f"{k}={human_cell(v)}" for k, v in sorted(metrics.items())),
            "RESULT": ("pass" if a.passed else "FAIL") + f": {a.reason}",
        }
        for a in rows
        for output, metrics in (sorted(a.metrics.items()) or [("-", {})])
    ]
    columns = [Column(name, itemgetter(name)) for name in lines[0]] if lines else []
    return format_table(lines, columns)


def _decisions(rows: list[DecisionView], freezes: list[FreezeView]) -> list[str]:
    frozen = {f.decision_id: f for f in freezes}
    lines = []
    for view in rows:
        d = view.decision
        speed = f" {d.speedup:.2f}x {_ci(d.speedup_ci)}" if d.speedup else ""
        held = f"  [{frozen[d.id].reason.upper()}: ships on {d.host_class}]" if d.id in frozen else ""
        lines.append(
            f"#{d.id} {human_cell(d.created_at)}  {d.host_class}  onnxruntime {d.ort_version}  "
            f"{d.search_mode}/policy {d.policy_version}: {d.outcome.label(d.source_precision)}"
            f"{' → ' + view.variant if view.variant else ''}{speed}{held}"
        )
        lines.extend(f"    - {human_cell(reason)}" for reason in d.reasons)
        if d.error:
            lines.append(f"    error: {human_cell(d.error)}")
    return lines


def print_detail(detail: ModelDetail) -> None:
    echo = typer.echo
    if detail.path is not None:
        removed = f" (removed {human_cell(detail.path.removed_at)})" if detail.path.removed_at else ""
        echo(f"model    {human_cell(detail.path.path)}{removed}")
    echo(f"sha256   {detail.sha256}")
    echo(f"size     {human_size(detail.size_bytes)}")
    if detail.other_paths:
        echo(f"also at  {', '.join(human_cell(p) for p in detail.other_paths)}")
    if len(detail.history) > 1 or any(h.superseded_at for h in detail.history):
        echo("history  " + ", ".join(_version(h) for h in detail.history))
    for freeze in detail.freezes:
        echo(
            f"frozen   {freeze.host_class} ships decision #{freeze.decision_id} whatever is decided later "
            f"({freeze.reason}, {human_cell(freeze.created_at)}; dqd unfreeze to follow new decisions)"
        )
    sections: list[tuple[str, list[VariantRecord] | list[AccuracyView] | list[BenchmarkView], str]] = [
        (
            "Variants",
            detail.variants,
            format_table(detail.variants, VARIANT_COLUMNS) if detail.variants else "",
        ),
        ("Accuracy", detail.accuracy, _accuracy_rows(detail.accuracy) if detail.accuracy else ""),
        (
            "Benchmarks",
            detail.benchmarks,
            format_table(detail.benchmarks, BENCH_COLUMNS) if detail.benchmarks else "",
        ),
    ]
    for title, rows, text in sections:
        echo(f"\n{title}:")
        echo(text.rstrip("\n") if rows else "  (none)")
    echo("\nDecisions (newest first):")
    echo("\n".join(_decisions(detail.decisions, detail.freezes)) if detail.decisions else "  (none yet)")
