"""The HTML report: a catalog index page and one page per model, plots inline as SVG.

Pages link to each other relatively (``models/<id>.html`` and ``../index.html``)
so the same HTML works served by the API under ``/report/`` and exported to a
folder. Everything from the catalog is escaped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from html import escape

from dqd.api.report_svg import Box, Point, box_plot, scatter, timeline
from dqd.catalog import Catalog
from dqd.catalog.views import BenchmarkView, DecisionView, ModelDetail, ModelListing

MAX_BOX_PLOTS = 6  # per model page: the newest decisions' benchmarks
MAX_SCATTER_POINTS = 5000  # an evenly spaced sample beyond this: the page stays light for a browser
GATE_COLOURS = {"selected": "#2ca02c", "passed gate": "#1f77b4", "failed gate": "#d62728"}
HISTORY_TITLE = "Decisions over time (kept FP32 and skipped drawn at 1.0)"
CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3} .fail{color:#b00} .pass{color:#070} svg.plot{display:block;margin:1em 0}
code{font-size:12px} table.models td{white-space:nowrap} table.models td:last-child{white-space:normal}
"""


def _page(title: str, body: Iterable[str]) -> str:
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        + "".join(body)
        + f"<footer><small>generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by dqd</small></footer>"
        + "</body></html>"
    )


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], css_class: str = "") -> str:
    """Cells are HTML already (escaped by the caller), so links and marks can be used."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{css_class}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _verdict_class(passed: bool) -> str:
    return "pass" if passed else "fail"


def _num(value: float | None, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.4g}{suffix}"


# --- index ---


def render_index(catalog: Catalog) -> str:
    models = catalog.list_models(include_removed=False).items
    points = catalog.scatter_points()
    history = catalog.timeline_points()
    latest = latest_outcome_counts(models)
    # The most telling points get their names first: shipped variants, then the fastest.
    ranked = sorted(points, key=lambda p: (not p.selected, not p.passed, -p.speedup))
    scatter_points = [
        Point(
            p.speedup,
            p.accuracy,
            f"{p.path} [{p.host_class}] {p.variant}: {p.speedup:.2f}x, {p.accuracy:.4f}",
            "selected" if p.selected else "passed gate" if p.passed else "failed gate",
            f"{short_name(p.path)} {p.variant}",
        )
        for p in ranked[:: max(1, -(-len(ranked) // MAX_SCATTER_POINTS))]
    ]
    timeline_points = [
        (
            t.created_at,
            t.speedup if t.speedup is not None else 1.0,
            f"{t.created_at:%Y-%m-%d %H:%M} {t.host_class} onnxruntime {t.ort_version}: "
            + _outcome_text(t.outcome.value, t.speedup),
            f"onnxruntime {t.ort_version}",
        )
        for t in history
    ]
    by_ort = Counter((t.ort_version, t.outcome.value) for t in history)
    decided = sum(latest.values())
    body = [
        "<h1>dqd report</h1>",
        f'<p class="summary">{len(models)} model{"s" if len(models) != 1 else ""}; '
        + (
            f"latest decisions ({decided}): {escape(_by_host_class(latest))}"
            if latest
            else "no decisions yet"
        )
        + "</p>",
        "<h2>Speed-up vs accuracy</h2>",
        scatter(
            "Speed-up vs accuracy, every variant of the latest decisions"
            + (
                f" ({len(scatter_points)} of {len(points)} shown)"
                if len(scatter_points) < len(points)
                else ""
            ),
            scatter_points,
            "speed-up vs shipped FP32 (x); dashed: 1.0, no faster",
            "accuracy (worst output, decisive inputs)",
            x_reference=1.0,
            width=1000,
            height=440,
            colours=GATE_COLOURS,
        )
        or "<p>No benchmarked, accuracy-checked variants yet.</p>",
        "<h2>Decision history</h2>",
        timeline(HISTORY_TITLE, timeline_points, "speed-up (x)", width=1000) or "<p>No decisions yet.</p>",
        f"<p>Every decision recorded ({len(history)}), re-decisions and earlier versions included:</p>"
        if history
        else "",
        _table(
            ["onnxruntime", "outcome", "decisions"],
            ([escape(ort), escape(outcome), str(n)] for (ort, outcome), n in sorted(by_ort.items())),
        ),
        "<h2>Models</h2>",
        _table(
            ["model", "host class", "outcome", "variant", "speed-up", "accuracy", "decided", "why"],
            _model_rows(models, catalog.first_reasons([d.decision_id for m in models for d in m.decisions])),
            "models",
        ),
    ]
    return _page("dqd report", body)


def latest_outcome_counts(models: Sequence[ModelListing]) -> Counter[tuple[str, str]]:
    """(host class, outcome) over the models listed: one per content and host class, as the table shows.

    The catalog's own count covers every content ever decided (earlier versions,
    removed files), which is not what a reader of the model list expects.
    """
    seen: dict[tuple[str, str], str] = {}
    for m in models:
        for d in m.decisions:
            seen[(m.sha256 or m.path, d.host_class)] = d.outcome.value
    return Counter((cls, outcome) for (_, cls), outcome in seen.items())


def _by_host_class(counts: Counter[tuple[str, str]]) -> str:
    classes: dict[str, list[str]] = {}
    for (cls, outcome), n in sorted(counts.items()):
        classes.setdefault(cls, []).append(f"{n} {outcome}")
    return "; ".join(f"{cls}: {', '.join(parts)}" for cls, parts in classes.items())


def short_name(path: str, limit: int = 28) -> str:
    """A model's name for a plot label: its path without ``.onnx``, Triton's ``model`` and version folders."""
    parts = [p for p in path.removesuffix(".onnx").split("/") if p]
    while len(parts) > 1 and (parts[-1] == "model" or parts[-1].isdigit()):
        parts.pop()
    name = "/".join(parts) or path
    return name if len(name) <= limit else "…" + name[-(limit - 1) :]


def _shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _outcome_text(outcome: str, speedup: float | None) -> str:
    return f"{outcome} {speedup:.2f}x" if speedup is not None else f"{outcome} (drawn at 1.0)"


def _model_rows(models: Sequence[ModelListing], reasons: Mapping[int, str]) -> Iterable[list[str]]:
    for m in models:
        link = f'<a href="models/{m.path_id}.html">{escape(m.path)}</a>'
        if not m.decisions and m.refused_reason:  # final: dqd will not process it
            yield [link, "-", "refused", "-", "-", "-", "-", escape(m.refused_reason)]
        elif not m.decisions:
            yield [link, "-", "pending", "-", "-", "-", "-", "-"]
        for d in m.decisions:
            acc = d.accuracy
            acc_text = (
                "-"
                if acc is None or acc.value is None
                else (
                    f'<span class="{_verdict_class(acc.passed)}">'
                    f"{escape(str(acc.metric))} {acc.value:.4f}</span>"
                )
            )
            yield [
                link,
                escape(d.host_class),
                escape(d.outcome.label(d.source_precision)),
                escape(d.variant or "-"),
                _num(d.speedup, "x"),
                acc_text,
                f"{d.created_at:%Y-%m-%d %H:%M}",
                escape(_shorten(reasons.get(d.decision_id, "-"))),
            ]


# --- model page ---


def render_model(catalog: Catalog, path_id: int) -> str:
    detail = catalog.model_detail(catalog.model_path(path_id))
    title = detail.path.path if detail.path is not None else detail.sha256
    body = [
        '<p><a href="../index.html">← all models</a></p>',
        f"<h1>{escape(title)}</h1>",
        f"<p><code>sha256 {escape(detail.sha256)}</code>"
        + (f"<br>also at: {escape(', '.join(detail.other_paths))}" if detail.other_paths else "")
        + "".join(
            f"<br><strong>frozen</strong> on {escape(f.host_class)}: decision #{f.decision_id} ships "
            f"whatever is decided later ({escape(f.reason)})"
            for f in detail.freezes
        )
        + "</p>",
        "<h2>Latency per variant</h2>",
        *(_latency_plots(detail) or ["<p>No benchmarks yet.</p>"]),
        "<h2>Accuracy</h2>",
        _accuracy_table(detail),
        "<h2>Decision history</h2>",
        timeline(HISTORY_TITLE, _history_points(detail.decisions), "speed-up (x)"),
        _decision_table(detail.decisions),
    ]
    return _page(f"dqd: {title}", body)


def _history_points(decisions: Sequence[DecisionView]) -> list[tuple[datetime, float, str, str]]:
    points = []
    for v in decisions:
        d = v.decision
        what = _outcome_text(d.outcome.label(d.source_precision), d.speedup)
        tip = f"{d.created_at:%Y-%m-%d %H:%M} {d.host_class} onnxruntime {d.ort_version}: {what}"
        points.append((d.created_at, d.speedup or 1.0, tip, f"onnxruntime {d.ort_version}"))
    return points


def _latency_plots(detail: ModelDetail) -> list[str]:
    by_decision: dict[int | None, list[BenchmarkView]] = {}
    for bench in detail.benchmarks:
        by_decision.setdefault(bench.decision_id, []).append(bench)
    decisions = {v.decision.id: v.decision for v in detail.decisions}
    plots = []
    for decision_id in sorted(by_decision, key=lambda i: -(i or 0))[:MAX_BOX_PLOTS]:
        benches = by_decision[decision_id]
        d = decisions.get(decision_id or -1)
        title = (
            f"Decision #{decision_id}: {d.host_class}, onnxruntime {d.ort_version}, "
            f"{benches[0].threads} thread(s)"
            if d
            else "Benchmarks"
        )
        names = Counter(b.variant for b in benches)
        boxes = [
            Box.from_samples(_box_label(b, names), b.samples_ms)
            if len(b.samples_ms) >= 5
            else Box.from_percentiles(_box_label(b, names), b.median_ms, b.p90_ms, b.p99_ms, b.rounds)
            for b in benches
        ]
        plots.append(box_plot(title, boxes))
    return plots


def _box_label(bench: BenchmarkView, names: Counter[str]) -> str:
    """The variant, and the step when a variant repeats (FP32 is timed against each candidate).

    Ladder steps read ``ladder:<rung>:<name>`` or ``ladder:playoff``: only the last part tells
    boxes apart, and a rung's own step is its name, already shown.
    """
    if names[bench.variant] == 1:
        return bench.variant
    step = bench.step.rsplit(":", 1)[-1]
    if step == bench.variant:
        return bench.variant
    return f"fp32 vs {step}" if bench.variant == "fp32" and step != "playoff" else f"{bench.variant} ({step})"


def _accuracy_table(detail: ModelDetail) -> str:
    if not detail.accuracy:
        return "<p>No accuracy evaluations yet.</p>"
    rows = []
    for a in detail.accuracy:
        verdict = f'<span class="{"pass" if a.passed else "fail"}">{"pass" if a.passed else "FAIL"}</span>'
        for output, metrics in sorted(a.metrics.items()) or [("-", {})]:
            shown = ", ".join(f"{escape(k)}={_num(v)}" for k, v in sorted(metrics.items()))
            rows.append(
                [
                    str(a.decision_id),
                    escape(a.variant),
                    escape(a.input_source) + (" (decisive)" if a.decisive else ""),
                    escape(output),
                    shown,
                    f"{verdict} {escape(a.reason)}",
                ]
            )
    return _table(["decision", "variant", "inputs", "output", "metrics", "result"], rows)


def _decision_table(decisions: Sequence[DecisionView]) -> str:
    if not decisions:
        return "<p>No decisions yet.</p>"
    rows = [
        [
            f"#{v.decision.id}",
            f"{v.decision.created_at:%Y-%m-%d %H:%M}",
            escape(v.decision.host_class),
            escape(v.decision.ort_version),
            escape(v.decision.outcome.label(v.decision.source_precision)),
            escape(v.variant or "-"),
            _num(v.decision.speedup, "x"),
            "<br>".join(escape(r) for r in v.decision.reasons)
            + (f'<br><span class="fail">{escape(v.decision.error)}</span>' if v.decision.error else ""),
        ]
        for v in decisions
    ]
    return _table(
        ["decision", "when", "host class", "onnxruntime", "outcome", "variant", "speed-up", "reasons"], rows
    )
