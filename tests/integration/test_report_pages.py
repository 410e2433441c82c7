"""The report's pages on real catalogs (SQLite, Postgres): counts a reader can trust, labels to see."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from dqd.api.report_pages import render_index, render_model
from dqd.catalog import Catalog
from dqd.domain import Outcome
from tests.query_factory import add_model, engine_result, host, sha_of

START = datetime(2026, 11, 1, tzinfo=UTC)


def summary(page: str) -> str:
    found = re.search(r'<p class="summary">(.*?)</p>', page)
    assert found, page[:2000]
    return found.group(1)


def test_the_front_page_counts_the_latest_decision_of_each_listed_model(catalog: Catalog) -> None:
    # Three models, each first held a version that was decided and then replaced (a slow
    # copy, an update; c.onnx twice), and a fourth model was deleted: eight contents have
    # a latest decision, for the three models a reader sees.
    for i, name in enumerate(("a.onnx", "b.onnx", "c.onnx")):
        add_model(catalog, name, sha256=sha_of(f"{name}-partial"), now=START, outcome=Outcome.ERROR)
        add_model(catalog, name, seed=i, now=START + timedelta(hours=1 + i), outcome=Outcome.QUANTIZED)
    add_model(catalog, "c.onnx", seed=9, now=START + timedelta(hours=5), outcome=Outcome.KEPT_FP32)
    add_model(catalog, "gone.onnx", now=START, outcome=Outcome.QUANTIZED)
    catalog.mark_removed("gone.onnx", now=START + timedelta(hours=6))

    text = summary(render_index(catalog))

    assert text == "3 models; latest decisions (3): x86_64-avx2: 1 kept_fp32, 2 quantized"


def test_the_scatter_names_its_points_and_the_history_says_what_its_axis_shows(catalog: Catalog) -> None:
    add_model(catalog, "bert/1/model.onnx", now=START, u8u8_speedup=1.6)
    add_model(catalog, "minilm-l6.onnx", now=START + timedelta(minutes=1), u8u8_speedup=1.3, seed=1)

    page = render_index(catalog)

    labels = re.findall(r'<text class="point-label"[^>]*>([^<]*)</text>', page)
    assert {"bert u8u8", "bert u8s8", "minilm-l6 u8u8", "minilm-l6 u8s8"} <= set(labels)
    axis_titles = re.findall(r'<text class="axis-title [xy]"[^>]*>([^<]*)</text>', page)
    assert any("speed-up vs shipped FP32" in t for t in axis_titles)
    assert any("accuracy" in t for t in axis_titles)
    ticks = re.findall(r'<svg[^>]*class="plot timeline".*?</svg>', page, re.S)
    x_ticks = re.findall(r'<text class="tick x"[^>]*>([^<]*)</text>', ticks[0])
    assert len(x_ticks) == len(set(x_ticks)) >= 2  # one minute apart: no repeated labels


def test_a_single_decision_says_so_on_its_model_page(catalog: Catalog) -> None:
    add_model(catalog, "only.onnx", now=START, u8u8_speedup=1.42)
    path_id = catalog.list_models().items[0].path_id

    page = render_model(catalog, path_id)

    history = re.search(r'<svg[^>]*class="plot timeline".*?</svg>', page, re.S)
    assert history is not None
    note = re.search(r'<text class="note"[^>]*>([^<]*)</text>', history.group(0))
    assert note is not None and note.group(1).startswith("one decision so far: ")
    assert "quantized 1.42x" in note.group(1)


def test_the_model_list_says_why_fp32_was_kept(catalog: Catalog) -> None:
    add_model(catalog, "slow.onnx", now=START, outcome=Outcome.KEPT_FP32, u8u8_speedup=0.9, u8s8_speedup=0.8)

    rows = re.findall(r"<tr>(.*?)</tr>", render_index(catalog).split("<h2>Models</h2>")[1])

    cells = re.findall(r"<td>(.*?)</td>", rows[1])  # rows[0] is the header
    assert cells[2] == "kept_fp32" and cells[-1] == "u8u8 0.90x and u8s8 0.80x are not faster than FP32"


def test_a_kept_fp16_original_reads_as_fp16_on_both_pages(catalog: Catalog) -> None:
    result = replace(engine_result("half.onnx", outcome=Outcome.KEPT_FP32), source_precision="fp16")
    catalog.upsert_host(host(), now=START)
    catalog.observe_file("half.onnx", result.sha256, 4096, now=START)
    catalog.record_engine_result(host(), result, now=START)
    path_id = catalog.list_models().items[0].path_id

    for page in (render_index(catalog), render_model(catalog, path_id)):
        assert "<td>kept_fp16 (original)</td>" in page


def test_a_refused_path_reads_as_refused_with_its_reason(catalog: Catalog) -> None:
    catalog.mark_refused("escape.onnx", "symlink resolves outside the watched root: /etc/hostname", now=START)

    page = render_index(catalog)

    assert "<td>refused</td>" in page and "symlink resolves outside the watched root" in page
    assert "<td>pending</td>" not in page


def test_a_frozen_model_page_says_which_decision_ships(catalog: Catalog) -> None:
    decision_id = add_model(catalog, "held.onnx", now=START, outcome=Outcome.KEPT_FP32)  # ships the original
    path_id = catalog.list_models().items[0].path_id
    assert "frozen" not in render_model(catalog, path_id)

    catalog.freeze("held.onnx", host().host_class)

    page = render_model(catalog, path_id)
    assert f"decision #{decision_id} ships whatever is decided later (freeze)" in page
