"""The `dqd` query commands: formats and exit codes 0/1/2/3.

Most run in-process through ``dqd.cli.main`` (the real entry point, exit code
from SystemExit) to keep the suite fast; the script-facing ones (``best``'s
output, an unreachable catalog) also run as real subprocesses.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from dqd.catalog import Catalog
from dqd.cli import main
from dqd.cli.output import parse_table
from dqd.domain import Outcome
from dqd.hostinfo import this_host_class
from tests.query_factory import add_model, host, sha_of

DQD = [sys.executable, "-c", "from dqd.cli import main; main()"]

# A host class no test machine has (this one may be x86_64-amx, or any other x86 class).
ELSEWHERE = "aarch64-i8mm"


def subprocess_dqd(*args: str, cwd: Path, url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQD_")} | {"DQD_DATABASE_URL": url}
    return subprocess.run(
        [*DQD, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def run_dqd(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Ran]:
    for name in [n for n in os.environ if n.startswith("DQD_") and n != "DQD_TEST_POSTGRES_URL"]:
        monkeypatch.delenv(name)

    def run(*args: str, cwd: Path, url: str) -> Ran:
        monkeypatch.chdir(cwd)
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            main(["--database-url", url, *args])
        out, err = capsys.readouterr()
        return Ran(int(exited.value.code or 0), out, err)

    return run


@pytest.fixture
def filled_url(catalog: Catalog, catalog_url: str) -> str:
    add_model(catalog, "bert/1/model.onnx", host_info=host(this_host_class(), "here"))
    add_model(catalog, "resnet/1/model.onnx", outcome=Outcome.KEPT_FP32)
    add_model(catalog, "resnet/1/model.onnx", outcome=Outcome.KEPT_FP32, host_info=host(ELSEWHERE, "c"))
    catalog.observe_file("new/model.onnx", sha_of("new"), 1)
    catalog.enqueue(sha_of("new"), "x86_64-avx2", source_path="new/model.onnx")
    return catalog_url


def test_models_in_three_formats(filled_url: str, tmp_path: Path, run_dqd: Callable[..., Ran]) -> None:
    table = run_dqd("models", cwd=tmp_path, url=filled_url)
    assert table.returncode == 0, table.stderr
    rows = parse_table(table.stdout)
    assert [(r["PATH"], r["OUTCOME"]) for r in rows] == [
        ("bert/1/model.onnx", "quantized"),
        ("new/model.onnx", "pending"),
        ("resnet/1/model.onnx", "kept_fp32"),
        ("resnet/1/model.onnx", "kept_fp32"),
    ]
    assert rows[0]["SPEEDUP"] == "1.60x" and rows[0]["ACCURACY"].startswith("cosine_mean=0.9950")

    as_json = run_dqd("models", "--json", cwd=tmp_path, url=filled_url)
    data = json.loads(as_json.stdout)
    assert isinstance(data, list) and [m["path"] for m in data] == [r["PATH"] for r in rows[:3]]
    assert {d["host_class"] for d in data[2]["decisions"]} == {"x86_64-avx2", ELSEWHERE}

    as_csv = run_dqd("models", "--csv", "--host-class", ELSEWHERE, cwd=tmp_path, url=filled_url)
    read = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [(r["PATH"], r["HOST CLASS"], r["OUTCOME"]) for r in read] == [
        ("resnet/1/model.onnx", ELSEWHERE, "kept_fp32"),
    ]
    limited = json.loads(
        run_dqd("models", "--json", "--limit", "1", "--sort", "-path", cwd=tmp_path, url=filled_url).stdout
    )
    assert [m["path"] for m in limited] == ["resnet/1/model.onnx"]


def test_show(filled_url: str, tmp_path: Path, run_dqd: Callable[..., Ran]) -> None:
    shown = run_dqd("show", "bert/1/model.onnx", cwd=tmp_path, url=filled_url)
    assert shown.returncode == 0, shown.stderr
    for section in ("Variants:", "Accuracy:", "Benchmarks:", "Decisions (newest first):"):
        assert section in shown.stdout
    assert "u8u8 passed the gate" in shown.stdout
    detail = json.loads(
        run_dqd("show", sha_of("bert/1/model.onnx")[:10], "--json", cwd=tmp_path, url=filled_url).stdout
    )
    assert detail["path"]["path"] == "bert/1/model.onnx" and len(detail["benchmarks"]) == 3


def test_best_prints_only_the_path(filled_url: str, tmp_path: Path, run_dqd: Callable[..., Ran]) -> None:
    best = subprocess_dqd(
        "best", "bert/1/model.onnx", cwd=tmp_path, url=filled_url
    )  # default: this host's class
    assert best.returncode == 0, best.stderr
    assert best.stdout == "/srv/dqd-out/bert/1/model.u8u8.onnx\n"
    kept = run_dqd("best", "resnet/1/model.onnx", "--host-class", ELSEWHERE, cwd=tmp_path, url=filled_url)
    assert kept.stdout == f"{tmp_path / 'models' / 'resnet/1/model.onnx'}\n"  # the original, under watch_dir
    choice = json.loads(
        run_dqd(
            "best",
            "resnet/1/model.onnx",
            "--host-class",
            ELSEWHERE,
            "--json",
            cwd=tmp_path,
            url=filled_url,
        ).stdout
    )
    assert choice["is_original"] is True and choice["outcome"] == "kept_fp32"


def test_exit_codes(filled_url: str, tmp_path: Path, run_dqd: Callable[..., Ran]) -> None:
    none_yet = run_dqd("best", "new/model.onnx", "--host-class", "x86_64-avx2", cwd=tmp_path, url=filled_url)
    assert none_yet.returncode == 1 and none_yet.stdout == ""
    assert "no decision yet" in none_yet.stderr
    other_ort = run_dqd("best", "bert/1/model.onnx", "--ort-version", "1.0.0", cwd=tmp_path, url=filled_url)
    assert other_ort.returncode == 1
    assert run_dqd("show", "missing.onnx", cwd=tmp_path, url=filled_url).returncode == 1
    ambiguous = run_dqd("show", "model.onnx", cwd=tmp_path, url=filled_url)
    assert ambiguous.returncode == 2 and "several models" in ambiguous.stderr
    assert run_dqd("models", "--json", "--csv", cwd=tmp_path, url=filled_url).returncode == 2
    assert run_dqd("models", "--outcome", "great", cwd=tmp_path, url=filled_url).returncode == 2
    assert run_dqd("models", "--sort", "size", cwd=tmp_path, url=filled_url).returncode == 2


def test_jobs_and_hosts(filled_url: str, tmp_path: Path, run_dqd: Callable[..., Ran]) -> None:
    bare = run_dqd("jobs", cwd=tmp_path, url=filled_url)
    assert bare.returncode == 0, bare.stderr
    assert [r["PATH"] for r in parse_table(bare.stdout)] == ["new/model.onnx"]
    queued = json.loads(
        run_dqd("jobs", "list", "--state", "queued", "--json", cwd=tmp_path, url=filled_url).stdout
    )
    assert [j["state"] for j in queued] == ["queued"]
    assert (
        json.loads(
            run_dqd("jobs", "list", "--state", "failed", "--json", cwd=tmp_path, url=filled_url).stdout
        )
        == []
    )
    hosts = json.loads(run_dqd("hosts", "--json", cwd=tmp_path, url=filled_url).stdout)
    assert sorted(h["host_class"] for h in hosts) == sorted(["x86_64-avx2", ELSEWHERE, this_host_class()])


@pytest.mark.parametrize(
    "url",
    ["postgresql+psycopg://nobody@127.0.0.1:9/dqd", "sqlite:////proc/dqd-no-such-dir/dqd.db"],
    ids=["postgres-refused", "sqlite-unwritable"],
)
def test_unreachable_catalog_exits_3(url: str, tmp_path: Path, run_dqd: Callable[..., Ran]) -> None:
    result = subprocess_dqd("models", cwd=tmp_path, url=url)
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith("dqd: ") and "Traceback" not in result.stderr
    for args in (("best", "x.onnx"), ("jobs",), ("show", "x"), ("hosts",)):
        ran = run_dqd(*args, cwd=tmp_path, url=url)
        assert ran.returncode == 3, (args, ran.stderr)


def test_report_export(filled_url: str, tmp_path: Path, run_dqd: Callable[..., Ran]) -> None:
    out = tmp_path / "report"
    result = run_dqd("report", "--out", str(out), cwd=tmp_path, url=filled_url)
    assert result.returncode == 0, result.stderr
    index = (out / "index.html").read_text()
    assert index.count("<svg") == 2 and 'href="models/' in index
    pages = sorted((out / "models").glob("*.html"))
    assert len(pages) == 3
    assert any('class="plot boxplot"' in p.read_text() for p in pages)


def test_serve_binds_loopback_and_answers(sqlite_url: str, tmp_path: Path) -> None:
    import socket

    import httpx

    from dqd.catalog.migrate import upgrade

    empty = Catalog.from_url(sqlite_url)  # `dqd serve` reads a catalog, it never creates one
    upgrade(empty.engine)
    empty.close()

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQD_")} | {"DQD_DATABASE_URL": sqlite_url}
    server = subprocess.Popen(
        [*DQD, "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for _ in range(100):
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            pytest.fail("dqd serve did not answer")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/models").json() == {
            "items": [],
            "next_cursor": None,
        }
        listening = subprocess.run(
            ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=False
        )
        if listening.returncode == 0 and listening.stdout.strip():
            local_addresses = [line.split()[3] for line in listening.stdout.splitlines()]
            assert local_addresses == [f"127.0.0.1:{port}"]  # loopback only by default
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=10)
    assert "Uvicorn running on http://127.0.0.1:" in output


def test_models_shows_threads_and_the_first_reason(
    filled_url: str, tmp_path: Path, run_dqd: Callable[..., Ran]
) -> None:
    ran = run_dqd("models", "--host-class", ELSEWHERE, cwd=tmp_path, url=filled_url)
    (row,) = parse_table(ran.stdout)
    assert row["OUTCOME"] == "kept_fp32" and row["THREADS"] == "1"
    assert row["REASON"] not in ("", "-") and len(row["REASON"]) <= 60
    with_match = run_dqd("models", "--match", "resnet", "--csv", cwd=tmp_path, url=filled_url)
    old_flag = run_dqd("models", "--search", "resnet", "--csv", cwd=tmp_path, url=filled_url)
    assert with_match.stdout == old_flag.stdout and with_match.stdout.count("resnet/1/model.onnx") == 2


def test_plain_jobs_takes_the_list_options(
    filled_url: str, tmp_path: Path, run_dqd: Callable[..., Ran]
) -> None:
    plain = run_dqd("jobs", "--csv", "--state", "queued", cwd=tmp_path, url=filled_url)
    listed = run_dqd("jobs", "list", "--csv", "--state", "queued", cwd=tmp_path, url=filled_url)
    assert plain.returncode == 0 and plain.stdout == listed.stdout and "new/model.onnx" in plain.stdout


def test_a_global_option_after_the_command_gets_a_hint(tmp_path: Path) -> None:
    ran = subprocess_dqd("run", "--config", "x.toml", cwd=tmp_path, url=f"sqlite:///{tmp_path / 'x.db'}")
    assert ran.returncode == 2
    assert "global options go before the command: dqd --config x.toml run" in ran.stderr


@pytest.mark.parametrize("args", [("models", "--help"), ("--help",), ("jobs", "list", "--help")])
def test_flags_show_no_metavar(args: tuple[str, ...], tmp_path: Path, run_dqd: Callable[..., Ran]) -> None:
    ran = run_dqd(*args, cwd=tmp_path, url=f"sqlite:///{tmp_path / 'x.db'}")
    assert ran.returncode == 0 and "--help" in ran.stdout and "<bool>" not in ran.stdout


def test_show_hides_superseded_versions_unless_all(
    catalog: Catalog, catalog_url: str, tmp_path: Path, run_dqd: Callable[..., Ran]
) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import update

    from dqd.catalog.tables import PathVersionRow

    for part in ("partial-1", "partial-2", "complete"):
        catalog.observe_file("slow/model.onnx", sha_of(part), 1)
    add_model(catalog, "slow/model.onnx", sha256=sha_of("complete"))
    with catalog.tx.write() as session:  # as the daemon marks versions replaced before their decision
        session.execute(
            update(PathVersionRow)
            .where(PathVersionRow.sha256.in_([sha_of("partial-1"), sha_of("partial-2")]))
            .values(superseded_at=datetime(2026, 12, 1, 22, 0, tzinfo=UTC))
        )
    shown = run_dqd("show", "slow/model.onnx", cwd=tmp_path, url=catalog_url)
    assert shown.returncode == 0 and "history" not in shown.stdout  # one real version: no history line
    assert sha_of("partial-1")[:12] not in shown.stdout
    everything = run_dqd("show", "slow/model.onnx", "--all", cwd=tmp_path, url=catalog_url)
    (history,) = [line for line in everything.stdout.splitlines() if line.startswith("history")]
    assert f"{sha_of('partial-1')[:12]} (" in history and history.count("superseded 2026-12-01 22:00") == 2
    as_json = json.loads(run_dqd("show", "slow/model.onnx", "--json", cwd=tmp_path, url=catalog_url).stdout)
    assert [v["sha256"] for v in as_json["history"]] == [sha_of("complete")]
