"""The HTML report: a catalog index page and one page per model, plots inline as SVG.

Pages link to each other relatively (``models/<id>.html`` and ``../index.html``)
so the same HTML works served by the API under ``/report/`` and exported to a
folder. Everything from the catalog is escaped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from html import escape

from dqd.api.report_svg import Box, Point, box_plot, scatter, timeline
from dqd.catalog import Catalog
from dqd.catalog.views import BenchmarkView, DecisionView, ModelDetail, ModelSummary

MAX_BOX_PLOTS = 6  # per model page: the newest decisions' benchmarks
MAX_SCATTER_POINTS = 5000  # an evenly spaced sample beyond this: the page stays light for a browser
CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3} .fail{color:#b00} .pass{color:#070} svg.plot{display:block;margin:1em 0}
code{font-size:12px}
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
    counts = catalog.latest_outcome_counts()
    scatter_points = [
        Point(
            p.speedup,
            p.accuracy,
            f"{p.path} [{p.host_class}] {p.variant}: {p.speedup:.2f}x, {p.accuracy:.4f}",
            "selected" if p.selected else "passed gate" if p.passed else "failed gate",
        )
        for p in points[:: max(1, -(-len(points) // MAX_SCATTER_POINTS))]
    ]
    timeline_points = [
        (
            t.created_at,
            t.speedup if t.speedup is not None else 1.0,
            f"{t.created_at:%Y-%m-%d %H:%M} {t.host_class} onnxruntime {t.ort_version}: {t.outcome.value}",
            f"onnxruntime {t.ort_version}",
        )
        for t in history
    ]
    by_ort = Counter((t.ort_version, t.outcome.value) for t in history)
    body = [
        "<h1>dqd report</h1>",
        f"<p>{len(models)} models; latest decisions: "
        + ", ".join(f"{escape(cls)} {escape(outcome)}: {n}" for (cls, outcome), n in sorted(counts.items()))
        + "</p>",
        "<h2>Speed-up vs accuracy</h2>",
        scatter(
            "Speed-up vs accuracy (latest decisions"
            + (
                f", {len(scatter_points)} of {len(points)} shown)"
                if len(scatter_points) < len(points)
                else ")"
            ),
            scatter_points,
            "speed-up vs shipped FP32 (x)",
            "accuracy (worst output, decisive inputs)",
            x_reference=1.0,
        )
        or "<p>No benchmarked, accuracy-checked variants yet.</p>",
        "<h2>Decision history</h2>",
        timeline("Decisions over time (kept/skipped drawn at 1.0)", timeline_points, "speed-up (x)")
        or "<p>No decisions yet.</p>",
        _table(
            ["onnxruntime", "outcome", "decisions"],
            ([escape(ort), escape(outcome), str(n)] for (ort, outcome), n in sorted(by_ort.items())),
        ),
        "<h2>Models</h2>",
        _table(
            ["model", "host class", "outcome", "variant", "speed-up", "accuracy", "decided"],
            _model_rows(models),
        ),
    ]
    return _page("dqd report", body)


def _model_rows(models: Sequence[ModelSummary]) -> Iterable[list[str]]:
    for m in models:
        link = f'<a href="models/{m.path_id}.html">{escape(m.path)}</a>'
        if not m.decisions:
            yield [link, "-", "pending", "-", "-", "-", "-"]
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
                escape(d.outcome.value),
                escape(d.variant or "-"),
                _num(d.speedup, "x"),
                acc_text,
                f"{d.created_at:%Y-%m-%d %H:%M}",
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
        + "</p>",
        "<h2>Latency per variant</h2>",
        *(_latency_plots(detail) or ["<p>No benchmarks yet.</p>"]),
        "<h2>Accuracy</h2>",
        _accuracy_table(detail),
        "<h2>Decision history</h2>",
        timeline(
            "Decisions over time",
            [
                (
                    v.decision.created_at,
                    v.decision.speedup or 1.0,
                    f"{v.decision.host_class} onnxruntime {v.decision.ort_version}: "
                    f"{v.decision.outcome.value}",
                    f"onnxruntime {v.decision.ort_version}",
                )
                for v in detail.decisions
            ],
            "speed-up (x)",
        ),
        _decision_table(detail.decisions),
    ]
    return _page(f"dqd: {title}", body)


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
    # The shipped FP32 is timed against each candidate: name the step when a variant repeats.
    return bench.variant if names[bench.variant] == 1 else f"{bench.variant} ({bench.step})"


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
            escape(v.decision.outcome.value),
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
