"""What the golden daemon records: catalog rows (plain SQL), API answers, CLI output, --json lines.

Everything is normalized so two runs are byte-identical: ids, times and
durations, temp paths, host names, and the sha256 of files holding times
(variants, published copies) become placeholders; the models' own sha256
stays (their content is fixed). Lists of rows are sorted.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import sqlite3
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from dqd.api import create_app
from dqd.catalog import Catalog, sqlite_file
from dqd.cli import main as cli_main
from dqd.domain import EngineResult, HostInfo
from dqd.modelfile import content_sha256
from dqd.serialize import process_result_json
from dqd.settings import Settings

TIME_KEYS = re.compile(
    r"(_at|mtime_ns|ctime_ns|_time|^at|heartbeat|timestamp|created|updated|started|finished)$"
)
SECONDS_KEYS = re.compile(r"(seconds|_ms_total|duration)$")
ID_KEYS = re.compile(r"^(id|.*_id|next_cursor|cursor|owner|lease_owner|idempotency_key)$")
ISO_TIME = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(\+00:00|Z)?")
HEX64 = re.compile(r"\b[0-9a-f]{64}\b")
JSON_TEXT = re.compile(r"^\s*[\[{]")
METRIC_FAMILIES = ("dqd_catalog_up", "dqd_queue_depth", "dqd_decisions")
FINISHED = ("done", "failed", "cancelled")


def all_jobs_finished(settings: Settings, *, expected: int) -> bool:
    """At least ``expected`` jobs, none queued or running (read with plain SQL)."""
    path = sqlite_file(settings.database_url_plain)
    if path is None or not path.exists():
        return False
    with contextlib.closing(sqlite3.connect(path)) as db:
        try:
            states = [row[0] for row in db.execute("SELECT state FROM jobs")]
        except sqlite3.OperationalError:  # not migrated yet
            return False
    return len(states) >= expected and all(state in FINISHED for state in states)


class Normalizer:
    def __init__(self, workdir: Path, model_shas: set[str], host: HostInfo) -> None:
        self.workdir = str(workdir)
        self.model_shas = model_shas
        self.host = host

    def __call__(self, value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {str(k): self(v, str(k)) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
        if isinstance(value, list | tuple):
            return [self(v, key) for v in value]
        if value is None or isinstance(value, bool):
            return value
        if ID_KEYS.match(key):
            return "<id>"
        if TIME_KEYS.search(key) and not isinstance(value, bool):
            return "<time>"
        if SECONDS_KEYS.search(key) and isinstance(value, int | float):
            return "<seconds>"
        if isinstance(value, float):
            return round(value, 6)
        if isinstance(value, str):
            return self.text(value, key)
        return value

    def text(self, value: str, key: str = "") -> Any:
        if JSON_TEXT.match(value):
            with contextlib.suppress(ValueError):
                return {"<json>": self(json.loads(value), key)}
        value = value.replace(self.workdir, "<tmp>")
        value = ISO_TIME.sub("<time>", value)
        return HEX64.sub(lambda m: m.group(0) if m.group(0) in self.model_shas else "<file-sha256>", value)


def render(value: Any) -> str:
    """One line per record (already normalized): a changed record is one changed line in a diff."""
    if isinstance(value, dict):
        lines = [json.dumps({k: v}, sort_keys=True) for k, v in sorted(value.items())]
    else:
        lines = [json.dumps(v, sort_keys=True) for v in value]
    return "\n".join(lines) + "\n"


class Recorder:
    def __init__(
        self, settings: Settings, catalog: Catalog, workdir: Path, host: HostInfo, rel_paths: list[str]
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.rel_paths = rel_paths
        self.workdir = workdir
        self.host = host
        root = Path(settings.watch_dir)
        shas = {content_sha256(root / rel) for rel in rel_paths}
        self.normalize = Normalizer(workdir, shas, host)

    def outputs(self) -> dict[str, Any]:
        return {"catalog": self.catalog_rows(), "api": self.api(), "cli": self.cli()}

    def catalog_rows(self) -> dict[str, Any]:
        """Every table's rows, each normalized and the table's rows sorted."""
        path = sqlite_file(self.settings.database_url_plain)
        assert path is not None
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.row_factory = sqlite3.Row
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            out = {}
            for table in sorted(tables):
                rows = [self.normalize(dict(row)) for row in db.execute(f'SELECT * FROM "{table}"')]
                out[table] = sorted(rows, key=lambda r: json.dumps(r, sort_keys=True))
        return out

    def api(self) -> dict[str, Any]:
        answers: dict[str, Any] = {}
        host = self.host
        with TestClient(create_app(self.catalog, self.settings)) as client:

            def get(url: str, **params: Any) -> None:
                response = client.get(url, params=params)
                body: Any = response.text
                if "json" in response.headers.get("content-type", ""):
                    body = response.json()
                answers[url + (f" {params}" if params else "")] = self.normalize(
                    {"status": response.status_code, "body": body}
                )

            get("/healthz")
            get("/api/v1/models", limit=100)
            get("/api/v1/models", limit=100, include_removed=True)
            get("/api/v1/jobs", limit=100)
            get("/api/v1/decisions", limit=100)
            for url in ("/api/v1/jobs {'limit': 100}", "/api/v1/decisions {'limit': 100}"):
                answers[url]["body"]["items"] = in_any_order(answers[url]["body"]["items"])
            get("/api/v1/hosts")
            for rel in self.rel_paths:
                get(f"/api/v1/models/{rel}")
                get("/api/v1/best", model=rel, host_class=host.host_class, ort_version=host.ort_version)
            metrics = client.get("/metrics").text.splitlines()
            answers["/metrics (catalog gauges)"] = [
                line for line in metrics if line.startswith(METRIC_FAMILIES)
            ]
        return answers

    def cli(self) -> dict[str, Any]:
        config = str(self.workdir / "dqd.toml")
        host = ["--host-class", self.host.host_class, "--ort-version", self.host.ort_version]
        out: dict[str, Any] = {}

        def run(*args: str) -> None:
            stdout, stderr = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                try:
                    cli_main(["--config", config, *args])
                    code: Any = 0
                except SystemExit as exited:
                    code = exited.code or 0
            text = stdout.getvalue()
            with contextlib.suppress(ValueError):
                text = json.loads(text)
            out["dqd " + " ".join(args)] = self.normalize({"exit": code, "stdout": text})

        root = logging.getLogger()
        handlers, level = list(root.handlers), root.level
        try:
            run("models", "--json")
            run("jobs", "--json")
            out["dqd jobs --json"]["stdout"] = in_any_order(out["dqd jobs --json"]["stdout"])
            run("hosts", "--json")
            for rel in self.rel_paths:
                run("show", rel, "--json")
                run("best", rel, *host, "--json")
        finally:  # the CLI configures logging for itself (dqd.logs.configure)
            root.handlers[:], root.level = handlers, level
        return out


def in_any_order(items: list[Any]) -> list[Any]:
    """A listing in id order, sorted by content instead: the watcher readies the scene's files in
    whatever order their settle timers fire, so job and decision ids differ from run to run."""
    return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))


def json_lines(results: dict[str, EngineResult], normalize: Normalizer) -> dict[str, Any]:
    return {rel: normalize(process_result_json(result)) for rel, result in results.items()}


def log_lines(records: list[logging.LogRecord], normalize: Normalizer) -> list[Any]:
    """The daemon's warnings and errors about models' settings (sorted: threads interleave)."""
    wanted = [r for r in records if getattr(r, "action", "") in ("sidecar_invalid",)]
    lines = {(r.levelname, getattr(r, "action", ""), normalize.text(r.getMessage())) for r in wanted}
    return [list(line) for line in sorted(lines)]
