"""Issue 16 §3 on a real catalog (SQLite and Postgres) and real files: what ``dqd gc`` removes and keeps."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dqd.catalog import Catalog
from dqd.daemon.provenance import provenance_path
from dqd.daemon.retention import collect_garbage
from dqd.domain import EngineResult, Outcome, VariantResult, VariantSpec, WeightType
from dqd.settings import Settings, load
from tests.integration.test_store import make_host
from tests.models import matmul_heavy, save, save_with_external_data

SHA = "e" * 64
CLASS = "x86_64-avx2"
U8U8 = VariantSpec(WeightType.U8U8)
U8S8 = VariantSpec(WeightType.U8S8)
U8U8_PC = VariantSpec(WeightType.U8U8, per_channel=True)
DAY = 86400.0


def settings(tmp_path: Path, **overrides: object) -> Settings:
    return load(
        overrides={
            "output_dir": str(tmp_path / "out"),
            "watch_dir": str(tmp_path / "models"),
            "publish_dir": str(tmp_path / "pub"),
            "retention.keep_days": 0,
            **overrides,
        }
    )


def variant_file(tmp_path: Path, spec: VariantSpec, *, external: bool = False) -> Path:
    path = tmp_path / "out" / "team" / "model" / SHA[:12] / f"{spec.name}.onnx"
    model = matmul_heavy(hidden=16, layers=1)
    return save_with_external_data(model, path) if external else save(model, path)


def decide(catalog: Catalog, selected: VariantSpec, files: dict[str, Path]) -> int:
    specs = {spec.name: spec for spec in (U8U8, U8S8, U8U8_PC)}
    variants = tuple(
        VariantResult(specs[name], "1.32.0", str(path), "d" * 64, 10, 0.1) for name, path in files.items()
    )
    return catalog.record_engine_result(
        make_host("h1", CLASS),
        EngineResult(
            path="team/model.onnx",
            sha256=SHA,
            outcome=Outcome.QUANTIZED,
            selected=selected,
            speedup=1.5,
            speedup_ci=(1.4, 1.6),
            reasons=("test",),
            error=None,
            seconds=1.0,
            search_mode="design",
            policy_version="design-1",
            ort_version="1.32.0",
            source_size_bytes=100,
            variants=variants,
        ),
    )


@pytest.fixture
def known(catalog: Catalog, tmp_path: Path) -> Catalog:
    catalog.upsert_host(make_host("h1", CLASS))
    catalog.observe_file("team/model.onnx", SHA, 100, 1)
    return catalog


def test_keeps_what_the_latest_or_a_frozen_decision_selects_and_removes_the_rest(
    known: Catalog, tmp_path: Path
) -> None:
    files = {U8U8.name: variant_file(tmp_path, U8U8, external=True), U8S8.name: variant_file(tmp_path, U8S8)}
    first = decide(known, U8U8, files)
    decide(known, U8S8, files)
    known.freeze("team/model.onnx", CLASS, decision_id=first)
    dry = collect_garbage(known, settings(tmp_path), dry_run=True)
    assert dry.removed == [] and dry.kept == {"selected": 2}

    known.unfreeze("team/model.onnx", CLASS)
    data = files[U8U8.name].with_name(files[U8U8.name].name + ".data")
    listed = collect_garbage(known, settings(tmp_path), dry_run=True)
    # The model first, then its data: a reader finding the model finds its data.
    assert [Path(r.path) for r in listed.removed] == [files[U8U8.name], data]
    assert files[U8U8.name].is_file() and data.is_file()

    done = collect_garbage(known, settings(tmp_path))
    assert done.removed == listed.removed and done.kept == {"selected": 1}
    assert done.bytes_freed == sum(r.bytes for r in listed.removed) > 0
    assert not files[U8U8.name].exists() and not data.exists() and files[U8S8.name].is_file()
    assert collect_garbage(known, settings(tmp_path)).removed == []  # idempotent


def test_keeps_recent_files_busy_contents_and_anything_outside_output_dir(
    known: Catalog, tmp_path: Path
) -> None:
    outside = save(matmul_heavy(hidden=16, layers=1), tmp_path / "models" / "team" / "u8u8.onnx")
    files = {U8U8_PC.name: outside, U8S8.name: variant_file(tmp_path, U8S8)}
    decide(known, U8S8, files)
    decide(known, U8S8, {U8U8.name: variant_file(tmp_path, U8U8), U8S8.name: files[U8S8.name]})

    recent = collect_garbage(known, settings(tmp_path, **{"retention.keep_days": 1}))
    assert recent.removed == [] and recent.kept == {"selected": 1, "recent": 1, "foreign": 1}

    known.enqueue(SHA, CLASS)
    assert known.claim_next_job(CLASS, "worker", 60) is not None
    busy = collect_garbage(known, settings(tmp_path))
    assert busy.removed == [] and busy.kept["busy"] == 1

    # A week later, once the job is over: the unselected variant goes; the file outside stays.
    job = known.list_jobs()[0]
    known.complete_job(job.id, "worker")
    later = collect_garbage(
        known, settings(tmp_path, **{"retention.keep_days": 1}), now=time.time() + 2 * DAY
    )
    assert [Path(r.path).name for r in later.removed] == ["u8u8.onnx"]
    assert outside.is_file() and later.kept["foreign"] == 1
    assert not (tmp_path / "out" / "team" / "model" / SHA[:12] / "u8u8.onnx").exists()


def test_unpublishes_removed_models_only_when_asked_and_never_while_guarded(
    known: Catalog, tmp_path: Path
) -> None:
    known.observe_file("team/gone.onnx", "f" * 64, 100, 1)
    published = {}
    for rel in ("team/model.onnx", "team/gone.onnx"):
        target = save_with_external_data(matmul_heavy(hidden=16, layers=1), tmp_path / "pub" / CLASS / rel)
        provenance_path(target).write_text("{}")
        published[rel] = target
    known.mark_removed("team/gone.onnx")
    gone = published["team/gone.onnx"]
    gone_files = {gone, gone.with_name(gone.name + ".data"), provenance_path(gone)}

    assert collect_garbage(known, settings(tmp_path)).removed == []  # off by default
    asked = settings(tmp_path, **{"retention.unpublish_removed": True})
    known.block_removals(str(tmp_path / "models"), "too many at once", known=10, missing=9)
    guarded = collect_garbage(known, asked)
    assert guarded.removed == [] and "mass-removal guard" in guarded.notes[0]
    assert all(f.is_file() for f in gone_files)

    known.clear_removal_block(str(tmp_path / "models"))
    done = collect_garbage(known, asked)
    assert {Path(r.path) for r in done.removed} == gone_files
    assert {r.kind for r in done.removed} == {"published"}
    assert published["team/model.onnx"].is_file()  # a live model's copy stays
    assert not gone.parent.exists() or any(gone.parent.iterdir())
