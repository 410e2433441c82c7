"""Golden daemon: the real daemon over a fixed folder of models, on the in-process engine.

The scene (models, sidecars, a ``[models."<glob>"]`` section, a duplicate,
an invalid sidecar) is processed by :class:`dqd.daemon.service.Daemon` with
:func:`tests.golden.daemon_engine.fake_process`; what every public surface
then says is recorded, normalized (ids, times, temp paths, file hashes) and
compared with ``expected/daemon/``: the catalog's rows (plain SQL), the
``dqd process --json`` objects of the engine's results, the HTTP API and the
query commands. Regenerate only when a change of behaviour is intended:

    python -m tests.golden.daemon --write
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import onnx

from dqd.catalog import open_catalog
from dqd.daemon.service import Daemon
from dqd.domain import EngineResult, HostInfo
from dqd.settings import Settings, load
from tests import models
from tests.golden import daemon_engine, daemon_record
from tests.golden.files import write_or_compare

EXPECTED = Path(__file__).with_name("expected") / "daemon"
TIMEOUT_SECONDS = 60.0
HOST = HostInfo(
    host_id="golden-host-id",
    hostname="golden-host",
    host_class="x86_64-avx512vnni",
    arch="x86_64",
    cpu_model="Golden CPU @ 3.0GHz",
    isa_flags=("avx2", "avx512f", "avx512_vnni"),
    usable_cores=4,
    os="Linux",
    ort_version="1.20.0",
    onnx_version="1.17.0",
    dqd_version="golden",
)

# rel path -> (model, sidecar text or None). Each model's content is distinct.
SCENE: dict[str, tuple[Callable[[], onnx.ModelProto], str | None]] = {
    "design.onnx": (lambda: models.matmul_heavy(hidden=32, layers=2, seed=10), None),
    "copy/design.onnx": (lambda: models.matmul_heavy(hidden=32, layers=2, seed=10), None),  # duplicate
    "kept.onnx": (lambda: models.matmul_heavy(hidden=32, layers=2, seed=11), None),
    "deep.onnx": (lambda: models.matmul_heavy(hidden=32, layers=2, seed=12), 'search = "thorough"\n'),
    "pinned.onnx": (lambda: models.matmul_heavy(hidden=32, layers=2, seed=13), 'pin = "fp32"\n'),
    "excluded.onnx": (lambda: models.matmul_heavy(hidden=32, layers=2, seed=14), "exclude = true\n"),
    "badsidecar.onnx": (lambda: models.matmul_heavy(hidden=32, layers=2, seed=15), 'search = "warp"\n'),
    "vision/vision.onnx": (lambda: models.conv_heavy(channels=4, layers=2, seed=16), None),
    "skip.onnx": (models.nothing_quantizable, None),
    "old.onnx": (models.old_opset, None),
    "crash.onnx": (lambda: models.matmul_heavy(hidden=32, layers=2, seed=17), None),
}
MODELS_SECTION = """\
[models."vision/*"]
search = "thorough"
"""


def build_scene(workdir: Path) -> Settings:
    root = workdir / "models"
    for rel, (build, sidecar) in SCENE.items():
        path = models.save(build(), root / rel)
        if sidecar is not None:
            path.with_name(path.stem + ".dqd.toml").write_text(sidecar)
    # One file holds all the settings, so the query commands (--config) read the daemon's.
    config = workdir / "dqd.toml"
    config.write_text(
        f"""\
database_url = "sqlite:///{workdir / "dqd.db"}"
watch_dir = "{root}"
output_dir = "{workdir / "out"}"
publish_dir = "{workdir / "published"}"
host_lock = "{workdir / "host.lock"}"

[benchmark]
threads = 1
warmup_runs = 0
min_seconds = 0.3
max_seconds = 2.0

[worker]
max_attempts = 2  # crash.onnx's transient error is retried once, then recorded
backoff_seconds = 0
poll_seconds = 0.05
heartbeat_seconds = 0.2
grace_seconds = 10

[watch]
reconcile_interval = 3600  # one scan, at start-up

[schedule]
enabled = false

{MODELS_SECTION}"""
    )
    return load(config)


@contextlib.contextmanager
def clean_environment() -> Iterator[None]:
    """No DQD_* of the caller's reaches the settings or the CLI."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("DQD_")}
    for key in saved:
        del os.environ[key]
    try:
        yield
    finally:
        os.environ.update(saved)


class LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def run_daemon(settings: Settings) -> list[logging.LogRecord]:
    """The threaded daemon until every job is finished (one reconcile scan queues them all), then stop."""
    daemon = Daemon(settings, process=daemon_engine.fake_process, host=HOST)
    capture = LogCapture()
    logging.getLogger("dqd").addHandler(capture)
    level = logging.getLogger("dqd").level
    logging.getLogger("dqd").setLevel(logging.INFO)
    thread = threading.Thread(target=daemon.run, name="golden-daemon", daemon=True)
    try:
        thread.start()
        deadline = time.monotonic() + TIMEOUT_SECONDS
        # One job per content except excluded.onnx (never queued) and the duplicate copy (same content).
        while not daemon_record.all_jobs_finished(settings, expected=len(SCENE) - 2):
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the golden daemon did not finish its jobs in time")
            time.sleep(0.05)
    finally:
        daemon.stop.set()
        thread.join(TIMEOUT_SECONDS)
        logging.getLogger("dqd").removeHandler(capture)
        logging.getLogger("dqd").setLevel(level)
    if thread.is_alive():
        raise RuntimeError("the golden daemon did not stop")
    return capture.records


def engine_results(settings: Settings) -> dict[str, EngineResult]:
    """What `dqd process` would print for every model: the engine with the daemon's arguments."""
    root = Path(settings.watch_dir)
    results = {}
    for rel in sorted(SCENE):
        arguments = daemon_engine.engine_arguments(settings, root, rel)
        results[rel] = daemon_engine.fake_process(root / rel, settings, host=HOST, **arguments)
    return results


def record() -> dict[str, str]:
    """Every output file's text, from a fresh scene."""
    with clean_environment(), tempfile.TemporaryDirectory(prefix="dqd-golden-") as tmp:
        workdir = Path(tmp).resolve()
        settings = build_scene(workdir)
        logs = run_daemon(settings)
        # Pass the daemon's catalog first: the direct engine runs below reuse its variant files.
        catalog = open_catalog(settings)
        try:
            recorder = daemon_record.Recorder(settings, catalog, workdir, HOST, sorted(SCENE))
            outputs = recorder.outputs()
        finally:
            catalog.close()
        outputs["json_lines"] = daemon_record.json_lines(engine_results(settings), recorder.normalize)
        outputs["logs"] = daemon_record.log_lines(logs, recorder.normalize)
        return {name: daemon_record.render(value) for name, value in outputs.items()}


def changes(expected: str, actual: str, limit: int = 20) -> list[str]:
    """The differing leaves of two renderings, as ``record / path: expected -> actual`` lines."""

    def leaves(value: Any, at: str) -> Iterator[tuple[str, Any]]:
        if isinstance(value, dict) and value:
            for key, item in value.items():
                yield from leaves(item, f"{at}/{key}")
        elif isinstance(value, list) and value:
            for index, item in enumerate(value):
                yield from leaves(item, f"{at}[{index}]")
        else:
            yield at, value

    def flat(text: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for number, line in enumerate(text.splitlines()):
            record = json.loads(line)
            if isinstance(record, dict) and len(record) == 1:  # {name: value}: the name locates it
                ((name, record),) = record.items()
                out.update(leaves(record, name))
            else:
                out.update(leaves(record, f"line {number}"))
        return out

    old, new = flat(expected), flat(actual)
    absent = "<absent>"
    found = [
        f"{path}: {json.dumps(old.get(path, absent))[:200]} -> {json.dumps(new.get(path, absent))[:200]}"
        for path in sorted(old.keys() | new.keys())
        if old.get(path, absent) != new.get(path, absent)
    ]
    return found[:limit] + ([f"... and {len(found) - limit} more"] if len(found) > limit else [])


def main() -> None:
    write_or_compare(__doc__ or "", EXPECTED, record, changes)


if __name__ == "__main__":
    main()
