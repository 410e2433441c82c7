"""Catalog round trips on SQLite and Postgres (each test runs on both)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from dqd.catalog import Catalog
from dqd.catalog.rows import variant_from_row
from dqd.catalog.tables import VariantRow
from dqd.domain import (
    AccuracyResult,
    BenchmarkResult,
    EngineResult,
    HostInfo,
    InputSource,
    LatencyStats,
    Outcome,
    VariantRecord,
    VariantResult,
    VariantSpec,
    WeightType,
)
from dqd.records import DecisionDetails
from tests.query_factory import graph_summary

SHA_A = "a" * 64
SHA_B = "b" * 64
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make_host(host_id: str = "h1", host_class: str = "x86_64-avx2") -> HostInfo:
    return HostInfo(
        host_id=host_id,
        hostname=f"host-{host_id}",
        host_class=host_class,
        arch="x86_64",
        cpu_model="Test CPU",
        isa_flags=("avx2",),
        usable_cores=2,
        os="Linux",
        ort_version="1.32.0",
        onnx_version="1.23.2",
        dqd_version="0.1.0",
    )


def test_paths_keep_history_and_share_content(catalog: Catalog) -> None:
    first = catalog.observe_file("bert/1/model.onnx", SHA_A, 100, 1, now=T0)
    assert first.new_content and first.changed
    again = catalog.observe_file("bert/1/model.onnx", SHA_A, 100, 1, now=T0 + timedelta(seconds=1))
    assert not again.new_content and not again.changed
    twin = catalog.observe_file("copy/model.onnx", SHA_A, 100, 2, now=T0)
    assert not twin.new_content and twin.changed
    assert catalog.paths_for_content(SHA_A) == ["bert/1/model.onnx", "copy/model.onnx"]

    newer = catalog.observe_file("bert/1/model.onnx", SHA_B, 120, 3, now=T0 + timedelta(hours=1))
    assert newer.new_content and newer.changed
    assert catalog.known_paths()["bert/1/model.onnx"].sha256 == SHA_B

    assert catalog.mark_removed("copy/model.onnx", now=T0 + timedelta(hours=2))
    assert not catalog.mark_removed("copy/model.onnx")
    assert "copy/model.onnx" not in catalog.known_paths()
    removed = catalog.known_paths(include_removed=True)["copy/model.onnx"]
    assert removed.removed_at == T0 + timedelta(hours=2)
    back = catalog.observe_file("copy/model.onnx", SHA_A, 100, 2, now=T0 + timedelta(hours=3))
    assert back.changed and back.path.removed_at is None


def test_hosts_and_live_classes(catalog: Catalog) -> None:
    catalog.upsert_host(make_host("h1", "x86_64-avx2"), now=T0)
    catalog.upsert_host(make_host("h2", "aarch64-dotprod"), now=T0 - timedelta(hours=1))
    assert catalog.live_host_classes(300, now=T0) == ["x86_64-avx2"]
    catalog.heartbeat("h2", now=T0)
    assert catalog.live_host_classes(300, now=T0) == ["aarch64-dotprod", "x86_64-avx2"]
    hosts = catalog.list_hosts()
    assert [h.host_id for h, _, _ in hosts] == ["h2", "h1"]
    assert hosts[1][0].isa_flags == ("avx2",)


def _result(outcome: Outcome, selected: VariantSpec | None) -> EngineResult:
    u8u8 = VariantSpec(WeightType.U8U8, preprocess="skip_symbolic_shape")
    u8s8 = VariantSpec(WeightType.U8S8, preprocess="skip_symbolic_shape")
    latency = LatencyStats(10.0, 11.0, 12.0, 40, (9.9, 10.0, 10.1))
    return EngineResult(
        path="bert/1/model.onnx",
        sha256=SHA_A,
        outcome=outcome,
        selected=selected,
        speedup=1.5 if selected else None,
        speedup_ci=(1.4, 1.6) if selected else None,
        reasons=("U8U8 passed the gate and is 1.50x faster [1.40, 1.60]",),
        error=None,
        seconds=12.5,
        search_mode="design",
        policy_version="design-1",
        ort_version="1.32.0",
        source_size_bytes=100,
        variants=(
            VariantResult(u8u8, "1.32.0", "/out/a.onnx", SHA_B, 40, 1.2),
            VariantResult(u8s8, "1.32.0", None, None, None, None, error="quantizer failed"),
        ),
        accuracy=(
            AccuracyResult(u8u8, InputSource.SAMPLES, {"out": {"cosine_mean": 0.99}}, True, "ok", True),
            AccuracyResult(u8u8, InputSource.SYNTHETIC, {"out": {"cosine_mean": 0.95}}, True, "ok", False),
        ),
        benchmarks=(
            BenchmarkResult(None, 1, LatencyStats(15.0, 16.0, 17.0, 40), None, None, 10_000_000, "u8u8"),
            BenchmarkResult(u8u8, 1, latency, 1.5, (1.4, 1.6), 9_000_000, "u8u8"),
        ),
        details=DecisionDetails(checked=True, preflight=graph_summary()),
    )


def _find_variant(catalog: Catalog, sha256: str, spec: VariantSpec, ort_version: str) -> VariantRecord | None:
    """The variant row recorded for this content, spec and onnxruntime version (its unique key)."""
    with catalog.tx.read() as session:
        row = session.scalar(
            select(VariantRow).where(
                VariantRow.source_sha256 == sha256, VariantRow.spec_key == spec.key(ort_version)
            )
        )
        return variant_from_row(row) if row is not None else None


def test_record_engine_result_round_trip(catalog: Catalog) -> None:
    host = make_host()
    catalog.upsert_host(host)
    u8u8 = VariantSpec(WeightType.U8U8, preprocess="skip_symbolic_shape")
    decision_id = catalog.record_engine_result(host, _result(Outcome.QUANTIZED, u8u8), now=T0)
    decision = catalog.latest_decision(SHA_A, host.host_class)
    assert decision is not None and decision.id == decision_id
    assert decision.outcome is Outcome.QUANTIZED
    assert decision.speedup_ci == (1.4, 1.6)
    assert decision.created_at == T0
    assert decision.variant_id is not None
    variant = catalog.get_variant(decision.variant_id)
    assert variant is not None and variant.spec == u8u8 and variant.output_path == "/out/a.onnx"
    reused = _find_variant(catalog, SHA_A, u8u8, "1.32.0")
    assert reused is not None and reused.id == variant.id
    assert _find_variant(catalog, SHA_A, u8u8, "1.33.0") is None

    # A second decision (another ORT run) keeps history and reuses the variant row.
    later = catalog.record_engine_result(host, _result(Outcome.KEPT_FP32, None), now=T0 + timedelta(days=1))
    latest = catalog.latest_decision(SHA_A, host.host_class)
    assert latest is not None and latest.id == later and latest.outcome is Outcome.KEPT_FP32
    assert catalog.latest_decisions_for_class(host.host_class)[SHA_A].id == later
    assert catalog.latest_decision(SHA_A, "aarch64-dotprod") is None


def test_catalog_unreachable_is_a_clear_error() -> None:
    from dqd.errors import CatalogUnavailable

    catalog = Catalog.from_url("postgresql+psycopg://nobody:secret@127.0.0.1:1/none")
    with pytest.raises(CatalogUnavailable) as caught:
        catalog.ping()
    assert "secret" not in str(caught.value)
    assert caught.value.exit_code == 3
