"""The report's plot geometry and SVG, as pure functions: what a reader can see without hovering."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from dqd.api.report_layout import Rect, Scale, log_ticks, place_labels, text_width, time_ticks, wants_log
from dqd.api.report_pages import short_name
from dqd.api.report_svg import Box, Point, box_plot, scatter, timeline

T0 = datetime(2026, 12, 1, 22, 37, 10, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    "span",
    [0.5, 20, 90, 200, 3 * 3600, 30 * 3600, 5 * 86400, 70 * 86400, 800 * 86400],
    ids=lambda s: f"{s}s",
)
def test_time_ticks_never_repeat_a_label_and_stay_in_range(span: float) -> None:
    ticks = time_ticks(T0, T0 + span)
    labels = [label for _, label in ticks]
    assert 1 <= len(ticks) <= 7
    assert len(labels) == len(set(labels)), labels
    assert all(T0 <= t <= T0 + span for t, _ in ticks)


def test_time_ticks_carry_the_date_once_and_then_the_clock() -> None:
    labels = [label for _, label in time_ticks(T0, T0 + 200)]
    assert labels[0] == "2026-12-01 22:38" and labels[1:] == ["22:39", "22:40"]
    days = [label for _, label in time_ticks(T0, T0 + 5 * 86400)]
    assert days[0] == "2026-12-02" and all(len(d) == 10 for d in days)


def test_log_scale_only_when_values_differ_tenfold() -> None:
    assert wants_log([3.0, 35.0]) and not wants_log([35.0, 295.0]) and not wants_log([0.0, 50.0])
    scale = Scale(1.0, 100.0, 0.0, 200.0, log=True)
    assert scale(10.0) == pytest.approx(100.0)
    assert log_ticks(1.0, 100.0) == [1, 2, 5, 10, 20, 50, 100]


def test_linear_ticks_print_round_numbers() -> None:
    assert Scale(0.0, 0.35, 0, 100).ticks() == [0.0, 0.1, 0.2, 0.3]


def test_labels_never_overlap_each_other_or_leave_the_plot() -> None:
    area = Rect(64, 40, 624, 252)
    anchors = [(100 + (i % 6) * 8.0, 100 + (i // 6) * 4.0, f"model-{i} u8u8") for i in range(30)]
    placed = place_labels(anchors, area)
    boxes = [
        Rect(
            p.x - (w if p.anchor == "end" else w / 2 if p.anchor == "middle" else 0),
            p.y - 10,
            p.x + (0 if p.anchor == "end" else w / 2 if p.anchor == "middle" else w),
            p.y + 2,
        )
        for p in placed
        for w in [text_width(anchors[p.index][2], 10)]
    ]
    assert 0 < len(placed) < 30  # a crowd: some get names, the rest keep their tooltip
    assert all(b.inside(area) for b in boxes)
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])


def test_short_names_drop_the_suffix_and_triton_folders() -> None:
    assert short_name("minilm-l6.onnx") == "minilm-l6"
    assert short_name("bert/1/model.onnx") == "bert"
    assert short_name("zoo/m3/model.onnx") == "zoo/m3"
    assert short_name("a/" * 30 + "x.onnx").startswith("…")


def test_scatter_draws_names_axis_titles_and_a_legend_above_the_points() -> None:
    points = [
        Point(0.6, 0.999, "tip", "passed gate", "ppocr-cls u8u8"),
        Point(2.1, 0.96, "tip", "selected", "b"),
    ]
    svg = scatter("t", points, "speed-up (x)", "accuracy", x_reference=1.0)
    assert re.findall(r'class="point-label"[^>]*>([^<]*)<', svg) == ["ppocr-cls u8u8", "b"]
    assert 'class="axis-title x"' in svg and ">speed-up (x)<" in svg and ">accuracy<" in svg
    legend_y = [float(y) for y in re.findall(r'<g class="legend"><circle cx="[^"]*" cy="([^"]*)"', svg)]
    point_y = [float(y) for y in re.findall(r'<circle class="point" cx="[^"]*" cy="([^"]*)"', svg)]
    assert len(legend_y) == 2 and max(legend_y) + 4 < min(point_y) - 3.5  # nothing hides behind it


def test_a_single_point_timeline_says_what_it_is() -> None:
    when = datetime(2026, 12, 1, 22, 39, tzinfo=UTC)
    svg = timeline("history", [(when, 1.28, "22:39 quantized 1.28x", "onnxruntime 1.32.0")], "speed-up (x)")
    assert re.search(r'class="note"[^>]*>one decision so far: 22:39 quantized 1.28x<', svg)
    two = timeline(
        "history",
        [(when, 1.0, "a", "s"), (when + timedelta(days=1), 1.2, "b", "s")],
        "speed-up (x)",
    )
    assert 'class="note"' not in two


def test_box_plot_goes_log_when_variants_differ_tenfold_and_says_so() -> None:
    boxes = [Box.from_samples("fp32", [30.0, 31, 33, 35]), Box.from_samples("u8s8", [300.0, 310, 330, 350])]
    svg = box_plot("latency", boxes)
    assert "log scale" in svg
    near = [Box.from_samples("fp32", [30.0, 31, 33]), Box.from_samples("u8u8", [60.0, 61, 62])]
    assert "log scale" not in box_plot("latency", near)


def test_crowded_box_labels_are_slanted_not_overprinted() -> None:
    boxes = [Box.from_samples(f"u8s8-pc-gemm+matmul-{i} (playoff)", [1.0, 2.0, 3.0]) for i in range(14)]
    svg = box_plot("latency", boxes)
    assert svg.count('class="box-label"') == 14 and svg.count("rotate(-35") == 14
