"""The report in a real headless browser (Debian's chromium): served by uvicorn and exported to files.

Asserts the plots are in the DOM the browser built (no JavaScript or network
needed) and keeps screenshots under test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import uvicorn

from dqd.api import create_app
from dqd.api.report_export import export_report
from dqd.catalog import Catalog
from dqd.catalog.migrate import upgrade
from dqd.domain import Outcome
from dqd.settings import Settings
from tests.query_factory import add_model, host

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ON_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
HOSTILE = 'evil/<script>alert("x")</script>&amp;/model.onnx'  # paths are user input


def browser(url: str, tmp_path: Path, *extra: str) -> str:
    if not Path(CHROMIUM).exists():
        message = "chromium is not installed (apt-get install -y chromium)"
        if ON_CI:
            pytest.fail(message)
        pytest.skip(message)
    profile = tmp_path / f"chromium-{time.monotonic_ns()}"
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--window-size=1200,2400",
            *extra,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    catalog = Catalog.from_url(f"sqlite:///{tmp_path / 'catalog.db'}")
    upgrade(catalog.engine)
    start = datetime(2026, 10, 1, tzinfo=UTC)
    for i in range(12):  # a month on onnxruntime 1.31, then an upgrade to 1.32
        ort = "1.31.0" if i < 6 else "1.32.0"
        add_model(
            catalog,
            f"zoo/m{i % 6}/model.onnx",
            seed=i,
            ort_version=ort,
            now=start + timedelta(days=3 * i),
            u8u8_speedup=0.9 + i / 8,
            cosine=0.97 + i / 500,
            outcome=Outcome.QUANTIZED if i % 3 else Outcome.KEPT_FP32,
        )
    add_model(catalog, HOSTILE, host_info=host("x86_64-amx", "amx"), now=start + timedelta(days=40))
    yield catalog
    catalog.close()


@pytest.fixture
def served(catalog: Catalog) -> Iterator[str]:
    """The API on a real uvicorn server on a free loopback port."""
    server = uvicorn.Server(
        uvicorn.Config(create_app(catalog, Settings()), host="127.0.0.1", port=0, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_served_report_renders_plots(served: str, tmp_path: Path) -> None:
    dom = browser(f"{served}/report/", tmp_path, "--dump-dom")
    assert re.search(r'<svg[^>]*class="plot scatter"', dom)
    assert re.search(r'<svg[^>]*class="plot timeline"', dom)
    assert dom.count('class="point"') >= 20  # 13 decisions on the timeline, variants on the scatter
    assert "onnxruntime 1.31.0" in dom and "onnxruntime 1.32.0" in dom  # before and after the upgrade
    assert "<script>alert" not in dom and "&lt;script&gt;alert" in dom  # the hostile path stays text
    # Six paths whose content was replaced once, and the hostile model: seven latest decisions.
    assert re.search(r'<p class="summary">7 models; latest decisions \(7\): ', dom)
    # What a reader sees without hovering: point names and axis titles as rendered text.
    names = re.findall(r'<text class="point-label"[^>]*>([^<]*)</text>', dom)
    assert len(names) >= 6 and {n.split(" ")[0] for n in names} >= {f"zoo/m{i}" for i in range(6)}
    titles = re.findall(r'<text class="axis-title [xy]"[^>]*>([^<]*)</text>', dom)
    assert any(t.startswith("speed-up vs shipped FP32") for t in titles) and "speed-up (x)" in titles
    timeline_svg = re.search(r'<svg[^>]*class="plot timeline".*?</svg>', dom, re.S)
    assert timeline_svg is not None
    ticks = re.findall(r'<text class="tick x"[^>]*>([^<]*)</text>', timeline_svg.group(0))
    assert len(ticks) >= 3 and len(ticks) == len(set(ticks)), ticks
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report-index.png"
    shot.unlink(missing_ok=True)
    browser(f"{served}/report/", tmp_path, f"--screenshot={shot}")
    assert shot.stat().st_size > 10_000


def test_exported_model_page_renders_box_plots(catalog: Catalog, tmp_path: Path) -> None:
    out = tmp_path / "report"
    export_report(catalog, out)
    page = out / "models" / "1.html"
    dom = browser(page.as_uri(), tmp_path, "--dump-dom")
    boxes = re.findall(r'<svg[^>]*class="plot boxplot"', dom)
    assert len(boxes) == 2  # zoo/m0 was decided twice (days 0 and 18)
    assert dom.count('<g class="box">') == 6  # fp32, u8u8, u8s8 per decision
    assert "cosine_mean" in dom and "Decision history" in dom
    hostile = [p for p in (out / "models").glob("*.html") if "evil/" in p.read_text()]
    assert len(hostile) == 1
    hostile_dom = browser(hostile[0].as_uri(), tmp_path, "--dump-dom")
    assert "<script>alert" not in hostile_dom
    # Its one decision: the history plot says so instead of showing a lone dot.
    assert re.search(r'<text class="note"[^>]*>one decision so far: [^<]*quantized 1\.60x<', hostile_dom)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report-model.png"
    shot.unlink(missing_ok=True)
    browser(page.as_uri(), tmp_path, f"--screenshot={shot}")
    assert shot.stat().st_size > 10_000
