"""Plot geometry for the report, as pure functions: scales, ticks, time ticks and label placement.

No SVG here: numbers in, numbers and strings out, so the choices a reader
sees (log or linear, which tick labels, which points get a visible label)
are unit-tested without a browser.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

LOG_RATIO = 10.0  # values spanning this factor or more get a log axis: small ones stay visible
CHAR_WIDTH = 0.6  # of the font size: DejaVu Sans / Liberation Sans average, a little generous


def text_width(text: str, font_size: float) -> float:
    return len(text) * font_size * CHAR_WIDTH


class Scale:
    """Maps data values onto pixels, linearly or in log10 (``log``: values must be positive)."""

    def __init__(self, lo: float, hi: float, out_lo: float, out_hi: float, *, log: bool = False) -> None:
        if not math.isfinite(lo) or not math.isfinite(hi):
            lo, hi = 0.0, 1.0
        if log and (lo <= 0 or hi <= 0):
            log = False
        if hi - lo < 1e-12:
            pad = abs(hi) * 0.05 or 1.0
            lo, hi = (lo / 1.1, hi * 1.1) if log else (lo - pad, hi + pad)
        self.lo, self.hi, self.out_lo, self.out_hi, self.log = lo, hi, out_lo, out_hi, log

    def _t(self, value: float) -> float:
        return math.log10(value) if self.log else value

    def __call__(self, value: float) -> float:
        if self.log and value <= 0:
            value = self.lo
        span = self._t(self.hi) - self._t(self.lo)
        return self.out_lo + (self._t(value) - self._t(self.lo)) / span * (self.out_hi - self.out_lo)

    def ticks(self, count: int = 5) -> list[float]:
        if self.log:
            return log_ticks(self.lo, self.hi)
        step = nice_step((self.hi - self.lo) / count)
        first = math.ceil(self.lo / step) * step
        # Rounded to the step's precision: 0.1 + 0.2 must print as 0.3, not 0.30000000000000004.
        digits = max(0, -math.floor(math.log10(step)) + 2)
        return [
            round(first + i * step, digits)
            for i in range(count + 2)
            if first + i * step <= self.hi + step * 1e-9
        ]


def nice_step(raw: float) -> float:
    exponent = math.floor(math.log10(raw)) if raw > 0 else 0
    for multiple in (1, 2, 2.5, 5, 10):
        step = multiple * 10**exponent
        if step >= raw:
            return float(step)
    return float(10 ** (exponent + 1))


def log_ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 per decade, only the powers of ten when that would be crowded."""
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    for multiples in ((1, 2, 5), (1,)):
        ticks = [m * 10.0**e for e in range(first, last + 1) for m in multiples if lo <= m * 10.0**e <= hi]
        if len(ticks) <= 8:
            break
    return ticks or [lo, hi]


def wants_log(values: Sequence[float]) -> bool:
    positive = [v for v in values if v > 0]
    return len(positive) == len(values) > 1 and max(positive) / min(positive) >= LOG_RATIO


# --- time axis ---

_TIME_STEPS = (
    *(1, 2, 5, 10, 15, 30),
    *(60 * m for m in (1, 2, 5, 10, 15, 30)),
    *(3600 * h for h in (1, 2, 3, 6, 12)),
    *(86400 * d for d in (1, 2, 7, 14, 30, 91, 182, 365)),
)


def time_ticks(lo: float, hi: float, max_ticks: int = 6) -> list[tuple[float, str]]:
    """Round instants (UTC) between ``lo`` and ``hi`` (epoch seconds), each label distinct.

    Labels carry only what changes at the step: seconds below a minute, a
    clock time below a day (with the date where it changes), else the date.
    """
    span = hi - lo
    if span <= 0:
        return [(lo, _utc(lo).strftime("%Y-%m-%d %H:%M"))]
    step = next((s for s in _TIME_STEPS if span / s <= max_ticks - 1), _TIME_STEPS[-1])
    ticks = _multiples(lo, hi, step)
    if not ticks:  # the span holds no round instant of its own size: label its middle
        middle = (lo + hi) / 2
        return [(middle, _utc(middle).strftime("%Y-%m-%d %H:%M:%S"))]
    labels: list[tuple[float, str]] = []
    previous_day = ""
    for tick in ticks:
        moment = _utc(tick)
        day = moment.strftime("%Y-%m-%d")
        if step >= 86400:
            text = day
        else:
            clock = moment.strftime("%H:%M:%S" if step < 60 else "%H:%M")
            text = f"{day} {clock}" if day != previous_day else clock
        previous_day = day
        if not labels or labels[-1][1] != text:
            labels.append((tick, text))
    return labels


def _multiples(lo: float, hi: float, step: float) -> list[float]:
    first = math.ceil(lo / step) * step
    count = int((hi - first) // step) + 1 if hi >= first else 0
    return [first + i * step for i in range(count)]


def _utc(stamp: float) -> datetime:
    return datetime.fromtimestamp(stamp, UTC)


# --- point labels ---


@dataclass(frozen=True)
class Rect:
    x0: float
    y0: float
    x1: float
    y1: float

    def overlaps(self, other: Rect) -> bool:
        return self.x0 < other.x1 and other.x0 < self.x1 and self.y0 < other.y1 and other.y0 < self.y1

    def inside(self, other: Rect) -> bool:
        return self.x0 >= other.x0 and self.x1 <= other.x1 and self.y0 >= other.y0 and self.y1 <= other.y1


@dataclass(frozen=True)
class PlacedLabel:
    index: int  # into the anchors given
    x: float  # text position, as SVG's text element takes it
    y: float
    anchor: str  # "start", "middle" or "end"


# (dx, dy, anchor) around a point of radius ~4, for text whose baseline is at y.
_SPOTS = ((7, 4, "start"), (-7, 4, "end"), (0, -7, "middle"), (0, 15, "middle"), (6, -6, "start"),
          (-6, -6, "end"), (6, 14, "start"), (-6, 14, "end"))  # fmt: skip


def place_labels(
    anchors: Sequence[tuple[float, float, str]],
    area: Rect,
    *,
    font_size: float = 10,
    radius: float = 4,
    limit: int = 60,
) -> list[PlacedLabel]:
    """Greedy, in the order given (most important first): the first spot around each point
    whose text box stays in ``area`` and clears every point and every label placed so far.
    A point with no free spot goes unlabelled (its tooltip remains)."""
    points = _Grid([Rect(x - radius, y - radius, x + radius, y + radius) for x, y, _ in anchors])
    taken: list[Rect] = []
    placed: list[PlacedLabel] = []
    # A dense cloud has no room for names: stop looking well before trying every point.
    for index, (x, y, text) in enumerate(anchors[: limit * 4]):
        if len(placed) >= limit or not text:
            continue
        width = text_width(text, font_size)
        for dx, dy, anchor in _SPOTS:
            left = x + dx - (width if anchor == "end" else width / 2 if anchor == "middle" else 0)
            box = Rect(left, y + dy - font_size, left + width, y + dy + 2)
            if box.inside(area) and not points.hits(box) and not any(box.overlaps(r) for r in taken):
                taken.append(box)
                placed.append(PlacedLabel(index, x + dx, y + dy, anchor))
                break
    return placed


class _Grid:
    """Rectangles bucketed by cell, so a label is checked against nearby points only."""

    CELL = 32.0

    def __init__(self, rects: Sequence[Rect]) -> None:
        self.cells: dict[tuple[int, int], list[Rect]] = {}
        for rect in rects:
            for key in self._keys(rect):
                self.cells.setdefault(key, []).append(rect)

    def _keys(self, rect: Rect) -> list[tuple[int, int]]:
        c = self.CELL
        xs = range(math.floor(rect.x0 / c), math.floor(rect.x1 / c) + 1)
        ys = range(math.floor(rect.y0 / c), math.floor(rect.y1 / c) + 1)
        return [(i, j) for i in xs for j in ys]

    def hits(self, box: Rect) -> bool:
        return any(box.overlaps(r) for key in self._keys(box) for r in self.cells.get(key, ()))
