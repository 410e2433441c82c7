"""Server-side SVG plots: box plots, scatter plots and timelines, no JavaScript, no CDN.

Every label is escaped: model paths and variant names are user input. Plots
are plain ``<svg>`` strings so the report works offline and in any browser.
What a reader must see is drawn as text (point labels, axis titles, the
legend above the plot area where it hides nothing); tooltips only add detail.
Geometry decisions live in :mod:`dqd.api.report_layout`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

from dqd.api.report_layout import Rect, Scale, place_labels, text_width, time_ticks, wants_log

WIDTH, HEIGHT = 640, 300
LEFT, RIGHT, TITLE, BOTTOM = 64, 16, 24, 48
LEGEND_ROW = 14
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
TickMaker = Callable[[float, float], list[tuple[float, str]]]


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


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str  # tooltip
    series: str  # legend entry and colour
    name: str = ""  # drawn beside the point when there is room


@dataclass(frozen=True)
class _Layout:
    width: int
    height: int
    top: int  # below the title and the legend rows
    bottom: int = BOTTOM
    left: int = LEFT

    @property
    def area(self) -> Rect:
        return Rect(self.left, self.top, self.width - RIGHT, self.height - self.bottom)


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _legend_rows(series: Sequence[str], width: int) -> list[list[tuple[float, str]]]:
    """Legend entries left to right in rows above the plot area, so no point is ever behind them."""
    rows: list[list[tuple[float, str]]] = [[]]
    x = float(LEFT)
    for name in series:
        step = 12 + text_width(name, 10) + 16
        if rows[-1] and x + step > width - RIGHT:
            rows.append([])
            x = float(LEFT)
        rows[-1].append((x, name))
        x += step
    return rows if rows[0] else []


def _legend(rows: list[list[tuple[float, str]]], colour: dict[str, str]) -> list[str]:
    parts = []
    for r, row in enumerate(rows):
        y = TITLE + 8 + r * LEGEND_ROW
        for x, name in row:
            parts.append(
                f'<g class="legend"><circle cx="{x + 4:.1f}" cy="{y}" r="4" fill="{colour[name]}"/>'
                f'<text x="{x + 12:.1f}" y="{y + 4}" font-size="10">{escape(name)}</text></g>'
            )
    return parts


def _frame(title: str, x_label: str, y_label: str, body: list[str], css_class: str, layout: _Layout) -> str:
    w, h = layout.width, layout.height
    mid_y = (layout.top + h - layout.bottom) / 2
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot {css_class}" role="img" '
        f'viewBox="0 0 {w} {h}" width="{w}" height="{h}">'
        f"<title>{escape(title)}</title>"
        f'<text x="{w / 2}" y="16" text-anchor="middle" font-size="13" font-weight="bold">'
        f"{escape(title)}</text>"
        f'<text class="axis-title x" x="{(layout.left + w - RIGHT) / 2}" y="{h - 6}" text-anchor="middle" '
        f'font-size="11">{escape(x_label)}</text>'
        f'<text class="axis-title y" x="14" y="{mid_y}" text-anchor="middle" font-size="11" '
        f'transform="rotate(-90 14 {mid_y})">{escape(y_label)}</text>' + "".join(body) + "</svg>"
    )


def _y_axis(scale: Scale, layout: _Layout) -> list[str]:
    a = layout.area
    parts = [f'<line x1="{a.x0}" y1="{a.y0}" x2="{a.x0}" y2="{a.y1}" stroke="#333"/>']
    for tick in scale.ticks():
        y = scale(tick)
        parts.append(
            f'<line x1="{a.x0 - 4}" y1="{y:.1f}" x2="{a.x1}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text class="tick y" x="{a.x0 - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="10">'
            f"{_fmt(tick)}</text>"
        )
    return parts


def _x_axis(scale: Scale, layout: _Layout, labels: Sequence[tuple[float, str]]) -> list[str]:
    a = layout.area
    parts = [f'<line x1="{a.x0}" y1="{a.y1}" x2="{a.x1}" y2="{a.y1}" stroke="#333"/>']
    for value, label in labels:
        x = scale(value)
        half = text_width(label, 10) / 2
        # A label centred at the plot's edge would be clipped: anchor it inwards.
        anchor = "end" if x + half > layout.width else "start" if x - half < 0 else "middle"
        parts.append(
            f'<line x1="{x:.1f}" y1="{a.y1}" x2="{x:.1f}" y2="{a.y1 + 4}" stroke="#333"/>'
            f'<text class="tick x" x="{x:.1f}" y="{a.y1 + 16}" text-anchor="{anchor}" font-size="10">'
            f"{escape(label)}</text>"
        )
    return parts


def box_plot(title: str, boxes: Sequence[Box], y_label: str = "latency (ms)") -> str:
    """One box per distribution (e.g. per variant), sharing a y axis; log when they differ by 10x."""
    if not boxes:
        return ""
    width = max(WIDTH, min(1060, LEFT + RIGHT + 76 * len(boxes)))
    slot = (width - LEFT - RIGHT) / len(boxes)
    longest = max(text_width(b.label, 11) for b in boxes)
    # Labels wider than their slot would run into each other: slant them, with room below and
    # on the left for the first one (slanted text ends at its box and reaches down-left).
    slant = longest > slot - 8
    angle = math.radians(35)
    bottom = int(min(240, 40 + longest * math.sin(angle))) if slant else BOTTOM
    first = text_width(boxes[0].label, 11) * math.cos(angle)
    left = int(max(LEFT, min(240, first - slot / 2 + 8))) if slant else LEFT
    width = width + left - LEFT
    layout = _Layout(width, HEIGHT - BOTTOM + bottom, TITLE + 8, bottom, left)
    a = layout.area
    values = [v for b in boxes for v in (b.low, b.high)]
    log = wants_log(values)
    lo, hi = min(values), max(values)
    y = Scale(lo / 1.15, hi * 1.15, a.y1, a.y0, log=True) if log else Scale(lo * 0.95, hi * 1.05, a.y1, a.y0)
    x_label = "variant"
    if log:
        y_label = f"{y_label}, log scale"
        x_label = "variant (latency on a log scale: the variants differ by 10x or more)"
    body = _y_axis(y, layout)
    for i, b in enumerate(boxes):
        cx = a.x0 + slot * (i + 0.5)
        half = min(40.0, slot * 0.3)
        color = PALETTE[i % len(PALETTE)]
        tip = f"{b.label}: median {_fmt(b.median)} ms, IQR {_fmt(b.q1)} to {_fmt(b.q3)}, n={b.count}"
        label_y = a.y1 + 16
        placement = (
            f'text-anchor="end" transform="rotate(-35 {cx:.1f} {label_y})"'
            if slant
            else 'text-anchor="middle"'
        )
        body.append(
            f'<g class="box"><title>{escape(tip)}</title>'
            f'<line x1="{cx:.1f}" y1="{y(b.low):.1f}" x2="{cx:.1f}" y2="{y(b.high):.1f}" stroke="{color}"/>'
            f'<rect x="{cx - half:.1f}" y="{y(b.q3):.1f}" width="{2 * half:.1f}" '
            f'height="{max(1.0, y(b.q1) - y(b.q3)):.1f}" fill="{color}" fill-opacity="0.35" '
            f'stroke="{color}"/>'
            f'<line x1="{cx - half:.1f}" y1="{y(b.median):.1f}" x2="{cx + half:.1f}" y2="{y(b.median):.1f}" '
            f'stroke="#000" stroke-width="2"/></g>'
            f'<text class="box-label" x="{cx:.1f}" y="{label_y}" {placement} font-size="11">'
            f"{escape(b.label)}</text>"
        )
    return _frame(title, x_label, y_label, body, "boxplot", layout)


def scatter(
    title: str,
    points: Sequence[Point],
    x_label: str,
    y_label: str,
    *,
    x_reference: float | None = None,
    y_reference: float | None = None,
    x_ticks: TickMaker | None = None,
    note: str = "",
    css_class: str = "scatter",
    width: int = WIDTH,
    height: int = HEIGHT,
    colours: Mapping[str, str] | None = None,
) -> str:
    """Points coloured by series, named where there is room (earlier points first), with
    optional reference lines (e.g. speed-up 1.0) and a ``note`` written over the plot."""
    if not points:
        return ""
    series = sorted({p.series for p in points})
    colour = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(series)} | dict(colours or {})
    rows = _legend_rows(series, width)
    layout = _Layout(width, height, TITLE + 8 + len(rows) * LEGEND_ROW)
    a = layout.area
    xs = [p.x for p in points] + ([x_reference] if x_reference is not None else [])
    ys = [p.y for p in points] + ([y_reference] if y_reference is not None else [])
    x_pad = (max(xs) - min(xs)) * 0.05 or 0.05
    y_pad = max((max(ys) - min(ys)) * 0.08, abs(max(ys)) * 0.02) or 0.005
    x = Scale(min(xs) - x_pad, max(xs) + x_pad, a.x0, a.x1)
    y = Scale(min(ys) - y_pad, max(ys) + y_pad, a.y1, a.y0)
    labels = x_ticks(x.lo, x.hi) if x_ticks is not None else [(t, _fmt(t)) for t in x.ticks()]
    body = _y_axis(y, layout) + _x_axis(x, layout, labels)
    if x_reference is not None:
        body.append(
            f'<line x1="{x(x_reference):.1f}" y1="{a.y0}" x2="{x(x_reference):.1f}" y2="{a.y1}" '
            'stroke="#999" stroke-dasharray="4 3"/>'
        )
    if y_reference is not None:
        body.append(
            f'<line x1="{a.x0}" y1="{y(y_reference):.1f}" x2="{a.x1}" y2="{y(y_reference):.1f}" '
            'stroke="#999" stroke-dasharray="4 3"/>'
        )
    at = [(x(p.x), y(p.y)) for p in points]
    for p, (px, py) in zip(points, at, strict=True):
        body.append(
            f'<circle class="point" cx="{px:.1f}" cy="{py:.1f}" r="3.5" fill="{colour[p.series]}" '
            f'fill-opacity="0.75"><title>{escape(p.label)}</title></circle>'
        )
    named = [(px, py, p.name) for p, (px, py) in zip(points, at, strict=True)]
    placed = place_labels(named, a)
    for label in placed:
        body.append(
            f'<text class="point-label" x="{label.x:.1f}" y="{label.y:.1f}" text-anchor="{label.anchor}" '
            f'font-size="10" fill="#333">{escape(points[label.index].name)}</text>'
        )
    wanted = sum(1 for p in points if p.name)
    if len(placed) < wanted:
        body.append(
            f'<text class="names-note" x="{a.x1}" y="{TITLE + 12}" text-anchor="end" font-size="10" '
            f'fill="#555">names on {len(placed)} of {wanted} points; hover for the rest</text>'
        )
    if note:
        # Where the points leave room: mid-height when they sit high (a reference line may run
        # along the bottom), else along the top.
        upper = sum(py for _, py in at) / len(at) < (a.y0 + a.y1) / 2
        note_y = (a.y0 + a.y1) / 2 + 4 if upper else a.y0 + 14
        body.append(
            f'<text class="note" x="{(a.x0 + a.x1) / 2:.1f}" y="{note_y}" text-anchor="middle" '
            f'font-size="11" fill="#555">{escape(note)}</text>'
        )
    return _frame(title, x_label, y_label, body + _legend(rows, colour), css_class, layout)


def timeline(
    title: str, points: Sequence[tuple[datetime, float, str, str]], y_label: str, *, width: int = WIDTH
) -> str:
    """(time, value, tooltip, series) points on a time axis, e.g. decisions by onnxruntime version.

    A single point says so and what it is: a lone dot on an empty axis reads as a broken plot.
    """
    if not points:
        return ""
    converted = [Point(t.timestamp(), v, label, series) for t, v, label, series in points]
    note = f"one decision so far: {points[0][2]}" if len(points) == 1 else ""
    return scatter(
        title,
        converted,
        "decided at (UTC)",
        y_label,
        y_reference=1.0,
        x_ticks=time_ticks,
        note=note,
        css_class="timeline",
        width=width,
    )
