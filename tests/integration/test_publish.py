"""Publishing on real files and a real catalog: what goes with a model, back-fill, idempotence.

The daemon-level scenario (issue 9, scenario 3) is tests/acceptance/test_publishing.py;
these pin the file rules and :class:`Publisher` on their own.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from dqd.catalog import Catalog
from dqd.daemon.publish import publish_plan
from dqd.daemon.publisher import Publisher
from dqd.domain import EngineResult, Outcome, VariantResult, VariantSpec, WeightType
from dqd.hostinfo import detect_host
from tests import models

INCLUDE = ["*.onnx"]


def plan_names(chosen: Path, root: Path, rel: str, publish: Path) -> list[tuple[str, str]]:
    plan = publish_plan(
        chosen, root=root, rel_path=rel, publish_dir=publish, host_class="hc", include=INCLUDE
    )
    return [
        (c.source.relative_to(c.source.parents[1]).as_posix(), c.target.relative_to(publish).as_posix())
        for c in plan
    ]


def test_a_flat_folder_gives_only_the_models_own_files(tmp_path: Path) -> None:
    root = tmp_path / "models"
    models.save(models.matmul_heavy(hidden=8, layers=1), root / "magika-v4.onnx")
    models.save_with_external_data(models.matmul_heavy(hidden=8, layers=1), root / "minilm-l6.onnx")
    for name in (
        "magika-v4.labels.txt",
        "magika-v4.samples.npz",
        "magika-v4.dqd.toml",
        "minilm-l6.samples.npz",
    ):
        (root / name).write_text(name)
    (root / "magika-v4.samples").mkdir()
    plan = plan_names(root / "magika-v4.onnx", root, "magika-v4.onnx", tmp_path / "pub")
    assert plan == [
        ("models/magika-v4.labels.txt", "hc/magika-v4.labels.txt"),
        ("models/magika-v4.onnx", "hc/magika-v4.onnx"),
    ]
    # The FP32 original with external data takes its data file along, not a neighbour's samples.
    plan = plan_names(root / "minilm-l6.onnx", root, "minilm-l6.onnx", tmp_path / "pub")
    assert plan == [
        ("models/minilm-l6.onnx.data", "hc/minilm-l6.onnx.data"),
        ("models/minilm-l6.onnx", "hc/minilm-l6.onnx"),
    ]


def test_a_variant_carries_its_own_data_not_the_originals(tmp_path: Path) -> None:
    root = tmp_path / "models"
    models.save_with_external_data(models.matmul_heavy(hidden=8, layers=1), root / "m" / "1" / "model.onnx")
    (root / "m" / "config.pbtxt").write_text('name: "m"')
    (root / "config.pbtxt").write_text("not m's")
    variant = models.save_with_external_data(
        models.matmul_heavy(hidden=8, layers=1), tmp_path / "out" / "u8u8.onnx"
    )
    plan = plan_names(variant, root, "m/1/model.onnx", tmp_path / "pub")
    assert plan == [
        ("m/config.pbtxt", "hc/m/config.pbtxt"),
        ("out/u8u8.onnx.data", "hc/m/1/u8u8.onnx.data"),
        ("out/u8u8.onnx", "hc/m/1/model.onnx"),
    ]


def test_publisher_backfills_every_path_once_and_never_one_outside_the_root(
    catalog: Catalog, tmp_path: Path
) -> None:
    root = tmp_path / "models"
    source = models.save(models.matmul_heavy(hidden=8, layers=1), root / "a" / "1" / "model.onnx")
    (root / "b" / "1").mkdir(parents=True)
    (root / "b" / "1" / "model.onnx").write_bytes(source.read_bytes())
    outside = tmp_path / "elsewhere" / "x.onnx"
    outside.parent.mkdir()
    outside.write_bytes(source.read_bytes())
    variant = tmp_path / "out" / "u8u8.onnx"
    variant.parent.mkdir()
    variant.write_bytes(b"int8 bytes")
    host = detect_host()
    catalog.upsert_host(host)
    sha = "f" * 64
    for rel in ("a/1/model.onnx", "b/1/model.onnx", str(outside)):  # dqd process records outside paths whole
        catalog.observe_file(rel, sha, source.stat().st_size)
    spec = VariantSpec(WeightType.U8U8)
    catalog.record_engine_result(host, _result(sha, Outcome.QUANTIZED, spec, variant))
    publish = tmp_path / "pub"
    publisher = Publisher(
        catalog, root=root, publish_dir=publish, host_class=host.host_class, include=INCLUDE
    )

    assert publisher.publish_missing() == 2
    out = publish / host.host_class
    assert (out / "a/1/model.onnx").read_bytes() == b"int8 bytes" == (out / "b/1/model.onnx").read_bytes()
    assert sorted(p.relative_to(publish).as_posix() for p in publish.rglob("*") if p.is_file()) == [
        f"{host.host_class}/a/1/model.onnx",
        f"{host.host_class}/a/1/model.onnx.dqd.json",  # its provenance (dqd.daemon.provenance)
        f"{host.host_class}/b/1/model.onnx",
        f"{host.host_class}/b/1/model.onnx.dqd.json",
    ]
    record = json.loads((out / "a/1/model.onnx.dqd.json").read_text())
    assert (record["model"], record["variant"], record["is_original"]) == ("a/1/model.onnx", "u8u8", False)
    assert publisher.publish_missing() == 0  # idempotent: nothing copied again

    # A newer decision (FP32 kept) replaces the published file; ERROR decisions publish nothing.
    catalog.record_engine_result(host, _result(sha, Outcome.KEPT_FP32, None, None))
    assert publisher.publish_missing({sha}) == 2
    assert (out / "a/1/model.onnx").read_bytes() == source.read_bytes()
    record = json.loads((out / "a/1/model.onnx.dqd.json").read_text())
    assert (record["outcome"], record["is_original"], record["spec"]) == ("kept_fp32", True, None)
    assert publisher.publish_missing({"0" * 64}) == 0


def _result(sha: str, outcome: Outcome, spec: VariantSpec | None, variant: Path | None) -> EngineResult:
    variants = (VariantResult(spec, "1.32.0", str(variant), "e" * 64, 10, 0.5),) if spec and variant else ()
    return EngineResult(
        path="a/1/model.onnx",
        sha256=sha,
        outcome=outcome,
        selected=spec,
        speedup=1.5 if spec else None,
        speedup_ci=None,
        reasons=(),
        error=None,
        seconds=0.1,
        search_mode="design",
        policy_version="design-two-step/1",
        ort_version="1.32.0",
        variants=variants,
    )


def test_a_name_at_the_file_name_limit_publishes(tmp_path: Path) -> None:
    from dqd.daemon.publish import copy_atomic

    name = "m" * 250 + ".onnx"  # 255 bytes: the longest name Linux filesystems take
    source = models.save(models.matmul_heavy(hidden=8, layers=1), tmp_path / "models" / name)
    target = tmp_path / "pub" / "hc" / name
    copy_atomic(source, target)  # its scratch name must fit too
    assert target.read_bytes() == source.read_bytes()
    assert [p.name for p in target.parent.iterdir()] == [name]  # no scratch file left behind


def test_a_same_sized_file_made_moments_later_is_not_taken_for_the_published_copy(tmp_path: Path) -> None:
    """Size and mtime alone said "current" for two versions of a small model decided within the
    mtime slack; the bytes decide then."""
    from dqd.daemon.publish import Copy, is_current

    source, target = tmp_path / "new.onnx", tmp_path / "published.onnx"
    target.write_bytes(b"version one")
    source.write_bytes(b"version two")
    stamp = target.stat().st_mtime_ns
    os.utime(source, ns=(stamp + 500_000_000, stamp + 500_000_000))
    assert not is_current(Copy(source, target))
    source.write_bytes(b"version one")
    os.utime(source, ns=(stamp + 500_000_000, stamp + 500_000_000))
    assert is_current(Copy(source, target))  # a coarse-mtime copy of the same bytes
    os.utime(source, ns=(stamp, stamp))
    assert is_current(Copy(source, target))
