"""`dqd process` as a real subprocess: the --json contract, exit codes and the catalog record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from dqd.catalog import Catalog
from dqd.hostinfo import detect_host
from tests import models
from tests.fast import FAST_BENCHMARK, as_env

DQD = [sys.executable, "-c", "from dqd.cli import main; main()"]
CONTRACT = {
    "path",
    "sha256",
    "outcome",
    "variant",
    "speedup",
    "speedup_ci",
    "accuracy",
    "reasons",
    "error",
    "seconds",
    "source_precision",
    "decision_id",
}


def run_process(tmp_path: Path, *args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQD_")}
    if config is not None:
        env["DQD_CONFIG"] = str(config)
    env.update(
        {
            "DQD_DATABASE_URL": f"sqlite:///{tmp_path / 'dqd.db'}",
            "DQD_OUTPUT_DIR": "out",  # relative to the cwd, as in the default configuration
            **as_env(FAST_BENCHMARK),
            "DQD_ACCURACY__SYNTHETIC_BATCH": "16",
        }
    )
    return subprocess.run(
        [*DQD, "process", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_json_lines_follow_the_contract_and_land_in_the_catalog(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    models.save(models.matmul_heavy(), folder / "mlp.onnx")
    models.save(models.ml_only(), folder / "sub" / "ml.onnx")

    done = run_process(tmp_path, str(folder), "--threads", "1", "--json")

    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [set(line) for line in lines] == [CONTRACT, CONTRACT]
    by_name = {Path(line["path"]).name: line for line in lines}
    mlp, ml = by_name["mlp.onnx"], by_name["ml.onnx"]
    # U8U8 or U8S8: which design step qualifies is timing, not the --json contract under test.
    assert mlp["outcome"] == "quantized" and mlp["variant"]["weight_type"] in ("U8U8", "U8S8")
    # Absolute, so `dqd best` hands deploy scripts a path that works from any cwd.
    assert Path(mlp["variant"]["output_path"]).is_absolute()
    assert Path(mlp["variant"]["output_path"]).is_file()
    assert mlp["speedup"] > 1 and mlp["speedup_ci"][0] <= mlp["speedup"] <= mlp["speedup_ci"][1]
    assert mlp["accuracy"]["input_source"] == "synthetic" and "y" in mlp["accuracy"]["metrics"]
    assert (
        ml["outcome"] == "skipped" and ml["variant"] is None and ml["speedup"] is None and ml["error"] is None
    )
    assert "[1/2] mlp.onnx: quantizing u8u8" in done.stderr  # progress goes to stderr

    catalog = Catalog.from_url(f"sqlite:///{tmp_path / 'dqd.db'}")
    try:
        decision = catalog.latest_decision(mlp["sha256"], detect_host().host_class)
    finally:
        catalog.close()
    assert decision is not None and decision.outcome.value == "quantized"
    assert decision.speedup == mlp["speedup"]


def test_exit_code_1_when_a_model_ends_in_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model")
    good = models.save(models.nothing_quantizable(), tmp_path / "add.onnx")

    done = run_process(tmp_path, str(bad), str(good), "--json")

    assert done.returncode == 1
    outcomes = [json.loads(line)["outcome"] for line in done.stdout.splitlines()]
    assert outcomes == ["error", "skipped"]  # the caller carried on after the error


def test_search_thorough_is_accepted_and_skips_a_model_with_nothing_to_quantize(tmp_path: Path) -> None:
    model = models.save(models.nothing_quantizable(), tmp_path / "add.onnx")
    done = run_process(tmp_path, str(model), "--search", "thorough", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["outcome"] == "skipped"


def test_human_output_without_json(tmp_path: Path) -> None:
    model = models.save(models.ml_only(), tmp_path / "ml.onnx")
    done = run_process(tmp_path, str(model))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ml.onnx: skipped") and "  - no ai.onnx domain" in done.stdout


def test_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    done = run_process(tmp_path, str(tmp_path / "nope.onnx"))
    assert done.returncode == 2 and "no such file" in done.stderr


def test_a_folder_yields_the_models_the_daemon_would_take(tmp_path: Path) -> None:
    """The daemon's PathFilter, not a glob of its own: dot-files, temporary and excluded files,
    and dqd's own output folder inside the tree are not models."""
    for rel in (
        "keep.onnx",
        "sub/keep.onnx",
        ".hidden.onnx",  # a dot-file (exclude ".*")
        ".cache/cached.onnx",  # under a dot-folder
        "download.onnx.tmp",  # a temporary download suffix
        "drafts/draft.onnx",  # the configured exclude
        "out/previous.onnx",  # dqd's output_dir (DQD_OUTPUT_DIR=out, under the folder given)
        "other.ort",  # not an include glob
    ):
        models.save(models.nothing_quantizable(), tmp_path / rel)
    config = tmp_path / "dqd.toml"
    config.write_text('[watch]\nexclude = [".*", "*.tmp", "drafts"]\n')

    done = run_process(tmp_path, str(tmp_path), "--json", config=config)

    assert done.returncode == 0, done.stderr
    paths = [
        Path(json.loads(line)["path"]).relative_to(tmp_path).as_posix() for line in done.stdout.splitlines()
    ]
    assert paths == ["keep.onnx", "sub/keep.onnx"]


def test_a_folder_without_models_names_the_rules(tmp_path: Path) -> None:
    models.save(models.nothing_quantizable(), tmp_path / "models" / ".hidden.onnx")
    done = run_process(tmp_path, str(tmp_path / "models"))
    assert done.returncode == 2 and "no models found" in done.stderr and "watch.include" in done.stderr
