"""Read-side catalog queries on SQLite and Postgres, over catalogs filled like the engine fills them."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from dqd.catalog import Catalog
from dqd.choice import ModelErrored, NoDecision
from dqd.domain import JobState, Outcome
from dqd.errors import NotFound, UsageError
from tests.query_factory import ORT, add_model, engine_result, host, sha_of

T0 = datetime(2026, 11, 1, tzinfo=UTC)
AVX2, VNNI = host("x86_64-avx2", "a"), host("x86_64-avx512vnni", "b")


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def filled(catalog: Catalog) -> Catalog:
    add_model(catalog, "bert/1/model.onnx", now=at(1), host_info=AVX2)
    add_model(catalog, "bert/1/model.onnx", now=at(2), host_info=VNNI, u8u8_speedup=2.1)
    add_model(catalog, "resnet/1/model.onnx", now=at(3), host_info=AVX2, outcome=Outcome.KEPT_FP32)
    add_model(catalog, "vad/silero.onnx", now=at(4), host_info=AVX2, outcome=Outcome.SKIPPED)
    catalog.observe_file("pending/model.onnx", sha_of("pending"), 10, now=at(5))
    return catalog


def test_models_carry_latest_decision_per_host_class(filled: Catalog) -> None:
    page = filled.list_models()
    assert [m.path for m in page.items] == [
        "bert/1/model.onnx",
        "pending/model.onnx",
        "resnet/1/model.onnx",
        "vad/silero.onnx",
    ]
    bert = page.items[0]
    assert [(d.host_class, d.outcome, d.variant, d.speedup) for d in bert.decisions] == [
        ("x86_64-avx2", Outcome.QUANTIZED, "u8u8", 1.6),
        ("x86_64-avx512vnni", Outcome.QUANTIZED, "u8u8", 2.1),
    ]
    accuracy = bert.decisions[0].accuracy
    assert accuracy is not None and accuracy.input_source == "samples"
    assert (accuracy.metric, accuracy.value, accuracy.passed) == ("cosine_mean", 0.995, True)
    assert page.items[1].decisions == []
    assert page.next_cursor is None


def test_a_newer_decision_replaces_the_older_one(filled: Catalog) -> None:
    add_model(
        filled,
        "bert/1/model.onnx",
        now=at(10),
        host_info=AVX2,
        outcome=Outcome.KEPT_FP32,
        ort_version="1.33.0",
    )
    bert = filled.list_models(search="bert").items[0]
    avx2 = next(d for d in bert.decisions if d.host_class == "x86_64-avx2")
    assert (avx2.outcome, avx2.ort_version, avx2.variant) == (Outcome.KEPT_FP32, "1.33.0", None)
    assert len(bert.decisions) == 2


@pytest.mark.parametrize("sort", ["path", "-path", "seen", "-seen"])
def test_keyset_pages_cover_every_model_once(filled: Catalog, sort: str) -> None:
    for i in range(7):
        filled.observe_file(f"extra/{i}.onnx", sha_of(f"extra{i}"), 1, now=at(5))  # ties on last_seen
    everything = [m.path for m in filled.list_models(sort=sort).items]
    seen: list[str] = []
    cursor = None
    while True:
        page = filled.list_models(sort=sort, limit=3, cursor=cursor)
        seen.extend(m.path for m in page.items)
        assert len(page.items) <= 3
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == everything and len(seen) == 11
    if sort == "path":
        assert seen == sorted(seen)
    assert [m.path for m in filled.list_models(sort=sort, limit=3, offset=3).items] == everything[3:6]


def test_filters(filled: Catalog) -> None:
    assert [m.path for m in filled.list_models(outcome=Outcome.KEPT_FP32).items] == ["resnet/1/model.onnx"]
    vnni = filled.list_models(host_class="x86_64-avx512vnni").items
    assert [m.path for m in vnni] == ["bert/1/model.onnx"]
    assert [d.host_class for d in vnni[0].decisions] == ["x86_64-avx512vnni"]
    assert filled.list_models(host_class="x86_64-avx512vnni", outcome=Outcome.SKIPPED).items == []
    assert [m.path for m in filled.list_models(search=sha_of("vad/silero.onnx")[:10]).items] == [
        "vad/silero.onnx"
    ]
    assert [m.path for m in filled.list_models(search="%").items] == []  # LIKE wildcards are literal
    filled.mark_removed("vad/silero.onnx", now=at(20))
    assert "vad/silero.onnx" not in [m.path for m in filled.list_models().items]
    removed = [m for m in filled.list_models(include_removed=True).items if m.path == "vad/silero.onnx"]
    assert removed and removed[0].removed_at is not None


def test_bad_sort_and_cursor_are_usage_errors(filled: Catalog) -> None:
    with pytest.raises(UsageError, match="sort"):
        filled.list_models(sort="size")
    for cursor in ("!!!", "WzFd", "e30", "WyJhIiwxLDJd"):  # garbage, wrong arity, an object, three values
        with pytest.raises(UsageError, match="cursor"):
            filled.list_models(limit=1, cursor=cursor, sort="seen")


def test_model_detail(filled: Catalog) -> None:
    detail = filled.model_detail("bert/1/model.onnx")
    assert detail.sha256 == sha_of("bert/1/model.onnx")
    assert [v.spec.name for v in detail.variants] == ["u8u8", "u8s8"]
    assert all(v.output_path and v.output_path.endswith(".onnx") for v in detail.variants)
    assert len(detail.benchmarks) == 6  # fp32 + two variants, on two host classes
    fp32 = detail.benchmarks[0]
    assert fp32.variant == "fp32" and fp32.speedup is None and len(fp32.samples_ms) == 60
    assert {(b.variant, b.speedup) for b in detail.benchmarks if b.host_class == "x86_64-avx512vnni"} == {
        ("fp32", None),
        ("u8u8", 2.1),
        ("u8s8", 1.1),
    }
    assert {(a.variant, a.input_source, a.decisive) for a in detail.accuracy} == {
        ("u8u8", "samples", True),
        ("u8u8", "synthetic", False),
        ("u8s8", "samples", True),
    }
    assert [d.decision.host_class for d in detail.decisions] == ["x86_64-avx512vnni", "x86_64-avx2"]
    assert detail.decisions[0].variant == "u8u8" and detail.decisions[0].decision.reasons
    assert detail.decisions[0].path == "bert/1/model.onnx"


def test_detail_follows_content_across_paths_and_versions(filled: Catalog) -> None:
    filled.observe_file("copy/model.onnx", sha_of("bert/1/model.onnx"), 4096, now=at(6))
    detail = filled.model_detail("bert/1/model.onnx")
    assert detail.other_paths == ["copy/model.onnx"]
    filled.observe_file("bert/1/model.onnx", sha_of("bert v2"), 4096, now=at(7))
    detail = filled.model_detail("bert/1/model.onnx")
    assert [h.sha256 for h in detail.history] == [sha_of("bert/1/model.onnx"), sha_of("bert v2")]
    assert detail.decisions == []  # the new content has no decision yet
    assert filled.model_detail("copy/model.onnx").decisions  # the old content keeps its history


def test_resolve_by_name_and_prefix(filled: Catalog) -> None:
    assert filled.resolve_model("silero.onnx")[0].path == "vad/silero.onnx"  # type: ignore[union-attr]
    assert filled.resolve_model("./vad/silero.onnx")[1] == sha_of("vad/silero.onnx")
    assert filled.resolve_model(sha_of("resnet/1/model.onnx")[:8])[0].path == "resnet/1/model.onnx"  # type: ignore[union-attr]
    with pytest.raises(UsageError, match="several models"):
        filled.resolve_model("model.onnx")
    with pytest.raises(NotFound):
        filled.resolve_model("nope.onnx")
    with pytest.raises(NotFound):
        filled.resolve_model("abc")  # too short to be a prefix


def test_best_choice(filled: Catalog) -> None:
    best = filled.best_choice("bert/1/model.onnx", "x86_64-avx2", ORT)
    assert best.load_path.endswith("bert/1/model.u8u8.onnx") and not best.is_original
    kept = filled.best_choice("resnet/1/model.onnx", "x86_64-avx2", ORT)
    assert (kept.load_path, kept.is_original, kept.outcome) == (
        "resnet/1/model.onnx",
        True,
        Outcome.KEPT_FP32,
    )
    assert filled.best_choice("silero.onnx", "x86_64-avx2", ORT).load_path == "vad/silero.onnx"
    with pytest.raises(NoDecision):
        filled.best_choice("resnet/1/model.onnx", "x86_64-avx512vnni", ORT)
    with pytest.raises(NoDecision):
        filled.best_choice("bert/1/model.onnx", "x86_64-avx2", "1.19.0")  # another onnxruntime
    with pytest.raises(NoDecision):
        filled.best_choice("pending/model.onnx", "x86_64-avx2", ORT)
    add_model(filled, "broken.onnx", now=at(8), outcome=Outcome.ERROR)
    with pytest.raises(ModelErrored, match="truncated"):
        filled.best_choice("broken.onnx", "x86_64-avx2", ORT)


def test_best_choice_prefers_the_configured_thread_count(catalog: Catalog) -> None:
    """The catalog hands choose_best the latest decision per thread count (None included)."""
    path = "bert/1/model.onnx"

    def record(threads: int, minute: int, outcome: Outcome = Outcome.QUANTIZED) -> int:
        result = engine_result(path, outcome=outcome)
        timed = tuple(replace(b, threads=threads) for b in result.benchmarks)
        catalog.upsert_host(AVX2, now=at(minute))
        catalog.observe_file(path, result.sha256, 4096, now=at(minute))
        return catalog.record_engine_result(AVX2, replace(result, benchmarks=timed), now=at(minute))

    older_at_4 = record(4, 1, Outcome.KEPT_FP32)
    at_4 = record(4, 2)
    at_8 = record(8, 3)
    best = catalog.best_choice(path, AVX2.host_class, ORT, threads=4)
    assert (best.decision_id, best.threads, best.at_configured_threads) == (at_4, 4, True)
    assert not best.is_original and best.decision_id != older_at_4
    assert catalog.best_choice(path, AVX2.host_class, ORT).decision_id == at_8
    other = catalog.best_choice(path, AVX2.host_class, ORT, threads=2)
    assert (other.decision_id, other.at_configured_threads) == (at_8, False)
    assert other.note is not None and "timed at 2 threads" in other.note
    skipped = add_model(catalog, path, now=at(4), host_info=AVX2, outcome=Outcome.SKIPPED)  # timed nothing
    assert catalog.best_choice(path, AVX2.host_class, ORT, threads=4).decision_id == skipped


def test_decision_history_pages(filled: Catalog) -> None:
    ids: list[int] = []
    cursor = None
    while True:
        page = filled.decisions_page(limit=2, cursor=cursor)
        ids.extend(v.decision.id for v in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(ids) == 4 and ids == sorted(ids, reverse=True)
    skipped = filled.decisions_page(outcome=Outcome.SKIPPED).items
    assert [v.path for v in skipped] == ["vad/silero.onnx"]
    assert len(filled.decisions_page(sha256=sha_of("bert/1/model.onnx")).items) == 2


def test_jobs_page(catalog: Catalog) -> None:
    for i in range(5):
        catalog.observe_file(f"m{i}.onnx", sha_of(f"m{i}"), 1)
        catalog.enqueue(sha_of(f"m{i}"), "x86_64-avx2", source_path=f"m{i}.onnx")
    claimed = catalog.claim_next_job("x86_64-avx2", "worker", 60)
    assert claimed is not None
    first = catalog.jobs_page(limit=3)
    second = catalog.jobs_page(limit=3, cursor=first.next_cursor)
    assert [j.id for j in first.items + second.items] == sorted(
        (j.id for j in catalog.list_jobs()), reverse=True
    )
    assert second.next_cursor is None
    running = catalog.jobs_page(states=[JobState.RUNNING]).items
    assert [j.id for j in running] == [claimed.id]


def test_outcome_counts_are_of_live_models_only(filled: Catalog) -> None:
    """A path's earlier version and a deleted file keep their decisions but are nobody's model now."""
    add_model(filled, "resnet/1/model.onnx", now=at(6), host_info=AVX2, sha256=sha_of("resnet-v2"))
    filled.mark_removed("vad/silero.onnx", now=at(7))
    assert filled.latest_outcome_counts() == {
        ("x86_64-avx2", "quantized"): 2,
        ("x86_64-avx512vnni", "quantized"): 1,
    }


def test_aggregates(filled: Catalog) -> None:
    assert filled.latest_outcome_counts() == {
        ("x86_64-avx2", "quantized"): 1,
        ("x86_64-avx2", "kept_fp32"): 1,
        ("x86_64-avx2", "skipped"): 1,
        ("x86_64-avx512vnni", "quantized"): 1,
    }
    points = filled.scatter_points()
    # bert on two classes and resnet on one, two variants each; selected only where quantized
    assert len(points) == 6
    assert {(p.path, p.host_class) for p in points if p.selected} == {
        ("bert/1/model.onnx", "x86_64-avx2"),
        ("bert/1/model.onnx", "x86_64-avx512vnni"),
    }
    assert all(0.9 < p.accuracy <= 1.0 for p in points)
    timeline = filled.timeline_points()
    assert [t.created_at for t in timeline] == sorted(t.created_at for t in timeline) and len(timeline) == 4


def test_engine_result_factory_is_consistent() -> None:
    result = engine_result("x.onnx")
    assert result.selected is not None and result.speedup == 1.6
    assert {a.spec.name for a in result.accuracy} <= {v.spec.name for v in result.variants}


def test_a_kept_fp16_original_is_recorded_and_read_back_as_fp16(catalog: Catalog) -> None:
    result = replace(engine_result("half/model.onnx", outcome=Outcome.KEPT_FP32), source_precision="fp16")
    catalog.upsert_host(AVX2, now=at(1))
    catalog.observe_file("half/model.onnx", result.sha256, 4096, now=at(1))
    catalog.record_engine_result(AVX2, result, now=at(1))

    (listed,) = catalog.list_models().items[0].decisions
    assert listed.source_precision == "fp16"
    assert listed.outcome.label(listed.source_precision) == "kept_fp16 (original)"
    detail = catalog.model_detail("half/model.onnx")
    assert detail.decisions[0].decision.source_precision == "fp16"
    choice = catalog.best_choice("half/model.onnx", AVX2.host_class, ORT)
    assert choice.is_original and choice.original_precision == "fp16"
