"""Server-side SVG plots: box plots, scatter plots and timelines, no JavaScript, no CDN.

Every label is escaped: model paths and variant names are user input. Plots
are plain ``<svg>`` strings so the report works offline and in any browser.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

WIDTH, HEIGHT = 640, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 24, 48
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


@dataclass(frozen=True)
class Box:
    """One distribution: quartiles and whiskers (1.5 IQR, clipped to the data)."""

    label: str
    low: float
    q1: float
    median: float
    q3: float
    high: float
    count: int

    @classmethod
    def from_samples(cls, label: str, samples: Sequence[float]) -> Box:
        data = sorted(samples)
        if len(data) < 2:
            value = data[0] if data else 0.0
            return cls(label, value, value, value, value, value, len(data))
        q1, median, q3 = statistics.quantiles(data, n=4, method="inclusive")
        iqr = q3 - q1
        low = min(v for v in data if v >= q1 - 1.5 * iqr)
        high = max(v for v in data if v <= q3 + 1.5 * iqr)
        return cls(label, low, q1, median, q3, high, len(data))

    @classmethod
    def from_percentiles(cls, label: str, median: float, p90: float, p99: float, rounds: int) -> Box:
        """Without raw samples: the median as the box centre, p90 and p99 above it."""
        return cls(label, median, median, median, p90, p99, rounds)


class _Scale:
    def __init__(self, lo: float, hi: float, out_lo: float, out_hi: float) -> None:
        if not math.isfinite(lo) or not math.isfinite(hi):
            lo, hi = 0.0, 1.0
        if hi - lo < 1e-12:
            pad = abs(hi) * 0.05 or 1.0
            lo, hi = lo - pad, hi + pad
        self.lo, self.hi, self.out_lo, self.out_hi = lo, hi, out_lo, out_hi

    def __call__(self, value: float) -> float:
        return self.out_lo + (value - self.lo) / (self.hi - self.lo) * (self.out_hi - self.out_lo)

    def ticks(self, count: int = 5) -> list[float]:
        step = _nice_step((self.hi - self.lo) / count)
        first = math.ceil(self.lo / step) * step
        return [first + i * step for i in range(count + 2) if first + i * step <= self.hi + step * 1e-9]


def _nice_step(raw: float) -> float:
    exponent = math.floor(math.log10(raw)) if raw > 0 else 0
    for multiple in (1, 2, 2.5, 5, 10):
        step = multiple * 10**exponent
        if step >= raw:
            return float(step)
    return float(10 ** (exponent + 1))


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _frame(title: str, x_label: str, y_label: str, body: list[str], css_class: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot {css_class}" role="img" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}">'
        f"<title>{escape(title)}</title>"
        f'<text x="{WIDTH / 2}" y="16" text-anchor="middle" font-size="13" font-weight="bold">'
        f"{escape(title)}</text>"
        f'<text x="{WIDTH / 2}" y="{HEIGHT - 6}" text-anchor="middle" font-size="11">{escape(x_label)}</text>'
        f'<text x="14" y="{HEIGHT / 2}" text-anchor="middle" font-size="11" '
        f'transform="rotate(-90 14 {HEIGHT / 2})">{escape(y_label)}</text>' + "".join(body) + "</svg>"
    )


def _y_axis(scale: _Scale) -> list[str]:
    parts = [f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{HEIGHT - BOTTOM}" stroke="#333"/>']
    for tick in scale.ticks():
        y = scale(tick)
        parts.append(
            f'<line x1="{LEFT - 4}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="10">{_fmt(tick)}</text>'
        )
    return parts


def _x_axis(scale: _Scale, labels: Sequence[tuple[float, str]] | None = None) -> list[str]:
    base = HEIGHT - BOTTOM
    parts = [f'<line x1="{LEFT}" y1="{base}" x2="{WIDTH - RIGHT}" y2="{base}" stroke="#333"/>']
    for value, label in labels if labels is not None else [(t, _fmt(t)) for t in scale.ticks()]:
        x = scale(value)
        # Long labels (dates) at the plot's edges would be clipped if centred.
        anchor = "end" if x > WIDTH - RIGHT - 40 else "start" if x < LEFT + 20 else "middle"
        parts.append(
            f'<line x1="{x:.1f}" y1="{base}" x2="{x:.1f}" y2="{base + 4}" stroke="#333"/>'
            f'<text x="{x:.1f}" y="{base + 16}" text-anchor="{anchor}" font-size="10">{escape(label)}</text>'
        )
    return parts


def box_plot(title: str, boxes: Sequence[Box], y_label: str = "latency (ms)") -> str:
    """One box per distribution (e.g. per variant), sharing a y axis."""
    if not boxes:
        return ""
    values = [v for b in boxes for v in (b.low, b.high)]
    y = _Scale(min(values) * 0.95, max(values) * 1.05, HEIGHT - BOTTOM, TOP)
    slot = (WIDTH - LEFT - RIGHT) / len(boxes)
    body = _y_axis(y)
    for i, b in enumerate(boxes):
        cx = LEFT + slot * (i + 0.5)
        half = min(40.0, slot * 0.3)
        color = PALETTE[i % len(PALETTE)]
        tip = f"{b.label}: median {_fmt(b.median)} ms, IQR {_fmt(b.q1)} to {_fmt(b.q3)}, n={b.count}"
        body.append(
            f'<g class="box"><title>{escape(tip)}</title>'
            f'<line x1="{cx:.1f}" y1="{y(b.low):.1f}" x2="{cx:.1f}" y2="{y(b.high):.1f}" stroke="{color}"/>'
            f'<rect x="{cx - half:.1f}" y="{y(b.q3):.1f}" width="{2 * half:.1f}" '
            f'height="{max(1.0, y(b.q1) - y(b.q3)):.1f}" fill="{color}" fill-opacity="0.35" '
            f'stroke="{color}"/>'
            f'<line x1="{cx - half:.1f}" y1="{y(b.median):.1f}" x2="{cx + half:.1f}" y2="{y(b.median):.1f}" '
            f'stroke="#000" stroke-width="2"/></g>'
            f'<text x="{cx:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" font-size="11">'
            f"{escape(b.label)}</text>"
        )
    return _frame(title, "variant", y_label, body, "boxplot")


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str  # tooltip
    series: str  # legend entry and colour


def _legend(series: Sequence[str]) -> list[str]:
    parts = []
    for i, name in enumerate(series[: len(PALETTE)]):
        y = TOP + 4 + i * 14
        parts.append(
            f'<circle cx="{WIDTH - RIGHT - 120}" cy="{y}" r="4" fill="{PALETTE[i]}"/>'
            f'<text x="{WIDTH - RIGHT - 112}" y="{y + 4}" font-size="10">{escape(name)}</text>'
        )
    return parts


def scatter(
    title: str,
    points: Sequence[Point],
    x_label: str,
    y_label: str,
    *,
    x_reference: float | None = None,
    x_tick_labels: Sequence[tuple[float, str]] | None = None,
    css_class: str = "scatter",
) -> str:
    """Points coloured by series, with an optional vertical reference line (e.g. speed-up 1.0)."""
    if not points:
        return ""
    xs = [p.x for p in points] + ([x_reference] if x_reference is not None else [])
    ys = [p.y for p in points]
    x_pad = (max(xs) - min(xs)) * 0.05 or 0.05
    y_pad = (max(ys) - min(ys)) * 0.05 or 0.005
    x = _Scale(min(xs) - x_pad, max(xs) + x_pad, LEFT, WIDTH - RIGHT)
    y = _Scale(min(ys) - y_pad, max(ys) + y_pad, HEIGHT - BOTTOM, TOP)
    series = sorted({p.series for p in points})
    colour = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(series)}
    body = _y_axis(y) + _x_axis(x, x_tick_labels)
    if x_reference is not None:
        rx = x(x_reference)
        body.append(
            f'<line x1="{rx:.1f}" y1="{TOP}" x2="{rx:.1f}" y2="{HEIGHT - BOTTOM}" '
            'stroke="#999" stroke-dasharray="4 3"/>'
        )
    for p in points:
        body.append(
            f'<circle class="point" cx="{x(p.x):.1f}" cy="{y(p.y):.1f}" r="3.5" fill="{colour[p.series]}" '
            f'fill-opacity="0.75"><title>{escape(p.label)}</title></circle>'
        )
    return _frame(title, x_label, y_label, body + _legend(series), css_class)


def timeline(title: str, points: Sequence[tuple[datetime, float, str, str]], y_label: str) -> str:
    """(time, value, tooltip, series) points on a time axis, e.g. decisions by onnxruntime version."""
    if not points:
        return ""
    stamps = [t.timestamp() for t, *_ in points]
    lo, hi = min(stamps), max(stamps)
    ticks = [lo + (hi - lo) * i / 3 for i in range(4)] if hi > lo else [lo]
    labels = [(t, datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M")) for t in ticks]
    converted = [Point(s, v, label, series) for s, (_, v, label, series) in zip(stamps, points, strict=True)]
    return scatter(title, converted, "decided at", y_label, x_tick_labels=labels, css_class="timeline")
