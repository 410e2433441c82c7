"""Query performance on a large catalog (on demand; CI does not run tests/perf).

Fills a catalog with 10,000 models and 100,000 benchmark rows, serves it with
the real ``dqd serve`` (uvicorn, loopback), drives the paginated list
endpoints with 20 concurrent keep-alive clients and prints p50/p95 per
endpoint; then times ``dqd models --json`` over the whole catalog, start-up
included. Targets: p95 <= 100 ms, models --json <= 2 s.

    .venv/bin/python tests/perf/bench_query.py                       # SQLite
    .venv/bin/python tests/perf/bench_query.py --postgres URL         # and Postgres (a server URL)
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from dqd.catalog import Catalog
from dqd.catalog.bulk import bulk_insert
from dqd.catalog.db import normalize_url
from dqd.catalog.migrate import upgrade
from dqd.catalog.tables import (
    AccuracyRow,
    BenchmarkRow,
    DecisionRow,
    HostRow,
    JobRow,
    ModelPathRow,
    ModelVersionRow,
    PathVersionRow,
    VariantRow,
)

DQD = [sys.executable, "-c", "from dqd.cli import main; main()"]
T0 = datetime(2026, 9, 1, tzinfo=UTC)
CLASSES = ("x86_64-avx2", "x86_64-avx512vnni")
BENCH_PER_DECISION = 5  # fp32 + u8u8 (step u8u8), fp32 + u8s8 (step u8s8), a re-timing of the winner


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def generate(catalog: Catalog, models: int, seed: int = 0) -> dict[str, int]:
    """Rows shaped like the engine's: per model two variants; decisions on two host classes plus an
    older one from before an onnxruntime upgrade; five benchmark rows and two accuracy rows per decision."""
    rng = random.Random(seed)
    hosts = [
        {
            "id": f"host{i}",
            "hostname": f"build-{i}",
            "host_class": cls,
            "arch": "x86_64",
            "cpu_model": "Xeon",
            "isa_flags": ["avx2"],
            "usable_cores": 2,
            "os": "Linux",
            "ort_version": "1.32.0",
            "onnx_version": "1.17",
            "dqd_version": "0.1.0",
            "first_seen_at": T0,
            "last_heartbeat_at": T0,
        }
        for i, cls in enumerate(CLASSES)
    ]
    versions, paths, path_versions, variants, decisions, benches, accuracy, jobs = ([] for _ in range(8))
    for i in range(models):
        digest, seen = sha(f"perf-{i}"), T0 + timedelta(minutes=i)
        path = f"zoo/{i // 100:03d}/m{i:05d}/model.onnx"
        versions.append(
            {"sha256": digest, "size_bytes": 4_000_000 + i, "first_seen_at": seen, "summary": None}
        )
        paths.append(
            {
                "id": i + 1,
                "path": path,
                "sha256": digest,
                "size_bytes": 4_000_000 + i,
                "mtime_ns": i,
                "first_seen_at": seen,
                "last_seen_at": seen + timedelta(days=rng.random()),
                "removed_at": None,
                "refused_reason": None,
            }
        )
        path_versions.append({"id": i + 1, "path_id": i + 1, "sha256": digest, "seen_at": seen})
        for k, (name, weight) in enumerate((("u8u8", "U8U8"), ("u8s8", "U8S8"))):
            variants.append(
                {
                    "id": 2 * i + k + 1,
                    "source_sha256": digest,
                    "spec_key": sha(f"{i}{name}")[:16],
                    "name": name,
                    "weight_type": weight,
                    "per_channel": False,
                    "reduce_range": False,
                    "op_types": [],
                    "nodes_to_exclude": [],
                    "extra_options": {},
                    "preprocess": "symbolic",
                    "ort_version": "1.32.0",
                    "output_path": f"/srv/dqd-out/{path[:-5]}.{name}.onnx",
                    "output_sha256": sha(f"{i}{name}out"),
                    "size_bytes": 1_200_000,
                    "quantize_seconds": 1.5,
                    "error": None,
                    "created_at": seen,
                }
            )
        runs = [("x86_64-avx2", "1.32.0"), ("x86_64-avx512vnni", "1.32.0")]
        runs = runs if i % 2 == 0 else [("x86_64-avx2", "1.31.0"), ("x86_64-avx2", "1.32.0")]
        for when, (cls, ort) in enumerate(runs):
            did = len(decisions) + 1
            fp32 = 5 + 20 * rng.random()
            speedups = {"u8u8": rng.uniform(0.7, 2.4), "u8s8": rng.uniform(0.7, 1.8)}
            winner = "u8u8" if speedups["u8u8"] > 1.1 else "u8s8" if speedups["u8s8"] > 1.1 else None
            created = seen + timedelta(days=3 + when)
            decisions.append(
                {
                    "id": did,
                    "sha256": digest,
                    "host_class": cls,
                    "host_id": f"host{CLASSES.index(cls)}",
                    "job_id": None,
                    "ort_version": ort,
                    "search_mode": "design",
                    "policy_version": "1",
                    "outcome": "quantized" if winner else "kept_fp32",
                    "variant_id": 2 * i + (1 if winner == "u8u8" else 2) if winner else None,
                    "speedup": speedups[winner] if winner else None,
                    "speedup_ci_low": speedups[winner] - 0.05 if winner else None,
                    "speedup_ci_high": speedups[winner] + 0.05 if winner else None,
                    "reasons": [f"u8u8 {speedups['u8u8']:.2f}x, u8s8 {speedups['u8s8']:.2f}x"],
                    "details": {},
                    "path": path,
                    "threads": 1,
                    "error": None,
                    "seconds": 12.0,
                    "created_at": created,
                }
            )
            timed = [
                (None, "u8u8", 1.0),
                (2 * i + 1, "u8u8", speedups["u8u8"]),
                (None, "u8s8", 1.0),
                (2 * i + 2, "u8s8", speedups["u8s8"]),
                (None, "final", 1.0),
            ]
            for vid, step, speedup in timed[:BENCH_PER_DECISION]:
                median = fp32 / speedup
                benches.append(
                    {
                        "decision_id": did,
                        "sha256": digest,
                        "variant_id": vid,
                        "host_id": f"host{CLASSES.index(cls)}",
                        "host_class": cls,
                        "ort_version": ort,
                        "step": step,
                        "threads": 2,
                        "rounds": 50,
                        "median_ms": median,
                        "p90_ms": median * 1.1,
                        "p99_ms": median * 1.3,
                        "speedup": speedup if vid else None,
                        "speedup_ci_low": speedup - 0.05 if vid else None,
                        "speedup_ci_high": speedup + 0.05 if vid else None,
                        "peak_rss_bytes": 200_000_000,
                        "samples_ms": [round(median * rng.uniform(0.9, 1.2), 3) for _ in range(50)],
                        "created_at": created,
                    }
                )
            for k, name in enumerate(("u8u8", "u8s8")):
                cosine = rng.uniform(0.95, 0.9999)
                accuracy.append(
                    {
                        "decision_id": did,
                        "variant_id": 2 * i + k + 1,
                        "input_source": "synthetic",
                        "metrics": {
                            "output": {
                                "cosine_mean": cosine,
                                "cosine_worst": cosine - 0.01,
                                "relative_l2": 1 - cosine,
                                "max_abs_diff": 0.1,
                            }
                        },
                        "passed": cosine > 0.98,
                        "decisive": True,
                        "reason": name,
                        "created_at": created,
                    }
                )
        state = "done" if i % 20 else rng.choice(["queued", "failed", "running"])
        jobs.append(
            {
                "id": i + 1,
                "kind": "quantize",
                "sha256": digest,
                "host_class": "x86_64-avx2",
                "state": state,
                "attempts": 1,
                "max_attempts": 3,
                "priority": 0,
                "idempotency_key": f"quantize:{digest}:x86_64-avx2",
                "source_path": path,
                "last_error": "timeout" if state == "failed" else None,
                "lease_owner": None,
                "lease_expires_at": None,
                "not_before": None,
                "created_at": seen,
                "updated_at": seen,
                "started_at": seen,
                "finished_at": seen,
            }
        )
    for table, rows in (
        (HostRow, hosts),
        (ModelVersionRow, versions),
        (ModelPathRow, paths),
        (PathVersionRow, path_versions),
        (VariantRow, variants),
        (JobRow, jobs),
        (DecisionRow, decisions),
        (BenchmarkRow, benches),
        (AccuracyRow, accuracy),
    ):
        bulk_insert(catalog.tx, table, rows)
    return {
        "models": models,
        "decisions": len(decisions),
        "benchmark_runs": len(benches),
        "accuracy_evaluations": len(accuracy),
        "jobs": len(jobs),
    }


# --- load ---

ENDPOINTS: dict[str, tuple[str, dict[str, Any]]] = {
    "models (cursor)": ("/api/v1/models", {"limit": 50}),
    "models filtered (cursor)": (
        "/api/v1/models",
        {"limit": 50, "host_class": "x86_64-avx512vnni", "outcome": "kept_fp32"},
    ),
    "models (offset)": ("/api/v1/models", {"limit": 50}),
    "jobs (cursor)": ("/api/v1/jobs", {"limit": 50}),
    "decisions (cursor)": ("/api/v1/decisions", {"limit": 50}),
}


def drive(port: int, clients: int, per_client: int) -> tuple[dict[str, list[float]], float]:
    """Closed-loop clients, no think time; each walks every list endpoint page by page."""
    latencies: dict[str, list[float]] = defaultdict(list)
    lock = threading.Lock()
    failures: list[str] = []

    def client(index: int) -> None:
        # http.client, not httpx: a light client leaves the two cores of a small box to the server.
        rng = random.Random(index)
        cursors: dict[str, str | None] = dict.fromkeys(ENDPOINTS)
        names = list(ENDPOINTS)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for n in range(per_client):
            name = names[(n + index) % len(names)]
            url, params = ENDPOINTS[name]
            params = dict(params)
            if "offset" in name:
                params["offset"] = rng.randrange(0, 9950)
            elif cursors[name]:
                params["cursor"] = cursors[name]
            start = time.perf_counter()
            connection.request("GET", f"{url}?{urlencode(params)}")
            response = connection.getresponse()
            body = response.read()
            elapsed = (time.perf_counter() - start) * 1000
            if response.status != 200:
                failures.append(f"{name}: {response.status} {body[:200]!r}")
                continue
            if "offset" not in name:
                cursors[name] = json.loads(body)["next_cursor"]
            with lock:
                latencies[name].append(elapsed)
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{len(failures)} failed requests, first: {failures[0]}")
    return latencies, wall


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(url: str, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQD_")} | {
        "DQD_DATABASE_URL": url,
        "DQD_LOG_LEVEL": "warning",
    }
    process = subprocess.Popen([*DQD, "serve", "--port", str(port), "--workers", str(workers)], env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("dqd serve did not become ready")


def models_json_wall(url: str, runs: int = 3) -> tuple[float, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQD_")} | {"DQD_DATABASE_URL": url}
    times, count = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        result = subprocess.run(
            [str(Path(sys.executable).parent / "dqd"), "models", "--json"],
            env=env,
            capture_output=True,
            check=True,
        )
        times.append(time.perf_counter() - start)
        count = len(json.loads(result.stdout))
    return min(times), count


def bench(label: str, url: str, models: int, clients: int, per_client: int, workers: list[int]) -> None:
    catalog = Catalog.from_url(url)
    upgrade(catalog.engine)
    started = time.perf_counter()
    counts = generate(catalog, models)
    catalog.close()
    print(f"\n== {label}: generated {counts} in {time.perf_counter() - started:.1f} s")
    for count in workers:
        port = free_port()
        server = serve(url, port, count)
        try:
            drive(port, clients, 10)  # warm-up: connections, caches, imports
            latencies, wall = drive(port, clients, per_client)
        finally:
            server.terminate()
            server.wait(10)
        total = sum(len(v) for v in latencies.values())
        print(
            f"dqd serve --workers {count}: {clients} concurrent clients, {total} requests in {wall:.1f} s "
            f"({total / wall:.0f} req/s)"
        )
        print(f"{'endpoint':28} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
        for name, values in latencies.items():
            q = statistics.quantiles(values, n=100)
            print(f"{name:28} {len(values):6d} {q[49]:8.1f} {q[94]:8.1f} {max(values):8.1f}")
        every = sorted(v for values in latencies.values() for v in values)
        print(
            f"{'all list endpoints':28} {len(every):6d} {every[len(every) // 2]:8.1f} "
            f"{every[int(len(every) * 0.95)]:8.1f} {every[-1]:8.1f}"
        )
    seconds, count = models_json_wall(url)
    print(f"dqd models --json: {count} models in {seconds:.2f} s wall (best of 3, start-up included)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=100, help="requests per client")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="dqd serve --workers to try")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("DQD_TEST_POSTGRES_URL"),
        help="a Postgres server URL; a throwaway database is created on it",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench("SQLite", f"sqlite:///{tmp}/perf.db", args.models, args.clients, args.requests, args.workers)
    if args.postgres:
        name = f"dqd_perf_{uuid.uuid4().hex[:8]}"
        admin = create_engine(normalize_url(args.postgres), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(normalize_url(args.postgres)).set(database=name).render_as_string(hide_password=False)
        try:
            bench("Postgres", url, args.models, args.clients, args.requests, args.workers)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()
