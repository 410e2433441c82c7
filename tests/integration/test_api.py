"""The read-only HTTP API over a real catalog on SQLite and Postgres (httpx via TestClient)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dqd.api import create_app
from dqd.catalog import Catalog
from dqd.domain import Outcome
from dqd.settings import Settings
from tests.query_factory import add_model, host, sha_of

TOKEN = "s3cret-token"


def client_for(catalog: Catalog, **api: Any) -> TestClient:
    return TestClient(create_app(catalog, Settings(api=api)))


@pytest.fixture
def filled(catalog: Catalog) -> Catalog:
    for i in range(7):
        add_model(catalog, f"zoo/m{i}/model.onnx", seed=i, u8u8_speedup=1.2 + i / 10)
    add_model(catalog, "zoo/kept/model.onnx", outcome=Outcome.KEPT_FP32, host_info=host("x86_64-amx", "amx"))
    add_model(catalog, "broken.onnx", outcome=Outcome.ERROR)
    catalog.observe_file("queued/model.onnx", sha_of("queued"), 1)
    catalog.enqueue(sha_of("queued"), "x86_64-avx2", source_path="queued/model.onnx")
    return catalog


@pytest.fixture
def api(filled: Catalog) -> Iterator[TestClient]:
    with client_for(filled) as client:
        yield client


def collect(api: TestClient, url: str, key: str = "path", **params: Any) -> list[Any]:
    seen: list[Any] = []
    cursor = None
    while True:
        page = api.get(url, params=params | ({"cursor": cursor} if cursor else {}))
        assert page.status_code == 200, page.text
        body = page.json()
        seen.extend(item[key] for item in body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return seen


def test_models_keyset_and_offset_pagination(api: TestClient) -> None:
    everything = [m["path"] for m in api.get("/api/v1/models", params={"limit": 1000}).json()["items"]]
    assert len(everything) == 10 and everything == sorted(everything)
    assert collect(api, "/api/v1/models", limit=3) == everything
    assert collect(api, "/api/v1/models", limit=4, sort="-seen") == [
        m["path"] for m in api.get("/api/v1/models", params={"sort": "-seen"}).json()["items"]
    ]
    assert [
        m["path"] for m in api.get("/api/v1/models", params={"limit": 2, "offset": 3}).json()["items"]
    ] == (everything[3:5])
    kept = api.get("/api/v1/models", params={"outcome": "kept_fp32"}).json()["items"]
    assert [(m["path"], m["decisions"][0]["host_class"]) for m in kept] == [
        ("zoo/kept/model.onnx", "x86_64-amx")
    ]


def test_detail_best_jobs_hosts_decisions(api: TestClient) -> None:
    detail = api.get("/api/v1/models/zoo/m3/model.onnx").json()
    assert detail["sha256"] == sha_of("zoo/m3/model.onnx")
    assert {b["variant"] for b in detail["benchmarks"]} == {"fp32", "u8u8", "u8s8"}
    best = api.get(
        "/api/v1/best",
        params={"model": "zoo/m3/model.onnx", "host_class": "x86_64-avx2", "ort_version": "1.32.0"},
    )
    assert best.status_code == 200 and best.json()["load_path"].endswith("zoo/m3/model.u8u8.onnx")
    kept = api.get(
        "/api/v1/best",
        params={"model": "zoo/kept/model.onnx", "host_class": "x86_64-amx", "ort_version": "1.32.0"},
    ).json()
    assert kept["is_original"] is True and kept["load_path"] == "zoo/kept/model.onnx"
    none_yet = api.get("/api/v1/best", params={"model": "queued/model.onnx", "host_class": "x86_64-avx2"})
    assert none_yet.status_code == 404 and "no decision yet" in none_yet.json()["detail"]
    errored = api.get(
        "/api/v1/best", params={"model": "broken.onnx", "host_class": "x86_64-avx2", "ort_version": "1.32.0"}
    )
    assert errored.status_code == 409
    jobs = api.get("/api/v1/jobs", params={"state": "queued"}).json()
    assert [j["source_path"] for j in jobs["items"]] == ["queued/model.onnx"]
    assert api.get("/api/v1/jobs", params={"state": "failed"}).json()["items"] == []
    assert {h["host"]["host_class"] for h in api.get("/api/v1/hosts").json()} == {"x86_64-avx2", "x86_64-amx"}
    ids = collect(api, "/api/v1/decisions", key="decision", limit=4)
    assert [d["id"] for d in ids] == sorted((d["id"] for d in ids), reverse=True) and len(ids) == 9
    only = api.get("/api/v1/decisions", params={"model": "m3/model.onnx"}).json()["items"]
    assert [d["path"] for d in only] == ["zoo/m3/model.onnx"]


WRITES = ("POST", "PUT", "PATCH", "DELETE")
READ_URLS = ("/api/v1/models", "/api/v1/jobs", "/healthz", "/metrics", "/report/", "/nowhere")
MALFORMED = [
    ({"limit": 0}, 422, "greater than or equal to 1"),
    ({"limit": "ten"}, 422, "valid integer"),
    ({"limit": 5000}, 422, "less than or equal to 1000"),
    ({"offset": -1}, 422, "greater than or equal to 0"),
    ({"outcome": "great"}, 422, "quantized"),
    ({"sort": "size"}, 422, "pattern"),
    ({"q": "a\x00b"}, 422, "pattern"),  # Postgres text cannot hold NUL: refused before the driver
    ({"cursor": "not-a-cursor"}, 400, "next_cursor"),
    ({"cursor": "WzEsMl0", "sort": "path"}, 400, "cursor"),  # a cursor of the wrong shape
]


def test_no_endpoint_writes(api: TestClient) -> None:
    for method in WRITES:
        for url in READ_URLS:
            response = api.request(method, url, json={"state": "cancelled"})
            assert response.status_code == 405, (method, url)
            assert response.headers["allow"] == "GET, HEAD"
    assert api.get("/api/v1/jobs", params={"state": "queued"}).json()["items"][0]["state"] == "queued"
    head = api.head("/api/v1/models")
    assert (
        head.status_code == 200 and head.content == b"" and head.headers["content-type"] == "application/json"
    )


def test_malformed_parameters_are_4xx_with_a_message(api: TestClient) -> None:
    for params, status, message in MALFORMED:
        response = api.get("/api/v1/models", params=params)
        assert response.status_code == status, (params, response.text)
        assert message in response.text, params


def test_model_lookup_errors(api: TestClient) -> None:
    assert api.get("/api/v1/models/nope.onnx").status_code == 404
    ambiguous = api.get("/api/v1/models/model.onnx")
    assert ambiguous.status_code == 400 and "several models" in ambiguous.json()["detail"]
    assert api.get("/api/v1/jobs", params={"cursor": "WyJ4Il0"}).status_code == 400  # a string id


def test_token_guards_api_metrics_and_report_but_not_probes(filled: Catalog, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    for api_settings in ({"token": TOKEN}, {"token_file": token_file}):
        with client_for(filled, **api_settings) as client:
            for url in ("/api/v1/models", "/metrics", "/report/", "/report/models/1.html"):
                assert client.get(url).status_code == 401
                assert client.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
                assert client.get(url, headers={"Authorization": TOKEN}).status_code == 401  # no scheme
                ok = client.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
                assert ok.status_code == 200, (url, ok.text)
            assert client.get("/healthz").status_code == 200
            assert client.get("/readyz").status_code == 200
            assert client.get("/api/v1/models").headers["www-authenticate"].startswith("Bearer")


def test_metrics(api: TestClient) -> None:
    text = api.get("/metrics").text
    assert 'dqd_queue_depth{state="queued"} 1.0' in text
    assert 'dqd_decisions{host_class="x86_64-avx2",outcome="quantized"} 7.0' in text
    assert 'dqd_decisions{host_class="x86_64-amx",outcome="kept_fp32"} 1.0' in text
    assert "dqd_catalog_up 1.0" in text
    for name in (
        "dqd_observer_lag_seconds",
        "dqd_jobs_processed_total",
        "dqd_quantize_seconds",
        "dqd_benchmark_seconds",
        "dqd_job_seconds",
        "dqd_jobs_failed_total",
    ):
        assert f"# TYPE {name}" in text


def test_report_is_served(api: TestClient) -> None:
    index = api.get("/report/")
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    assert index.text.count("<svg") == 2
    assert api.get("/report", follow_redirects=False).status_code in (307, 308)
    model_id = api.get("/api/v1/models/zoo/m1/model.onnx").json()["path"]["id"]
    page = api.get(f"/report/models/{model_id}.html")
    assert page.status_code == 200 and "boxplot" in page.text
    assert api.get("/report/models/999999.html").status_code == 404
    assert api.get("/report/models/..%2Fetc.html").status_code == 404


def test_readyz_on_a_stale_schema(sqlite_url: str) -> None:
    stale = Catalog.from_url(sqlite_url)  # an empty database: never migrated
    with client_for(stale) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "schema_mismatch"
        assert "dqd db upgrade" in ready.json()["detail"]
        assert client.get("/healthz").status_code == 200
    stale.close()


def test_unreachable_catalog_is_503_not_500() -> None:
    down = Catalog.from_url("postgresql+psycopg://nobody@127.0.0.1:9/dqd")
    with client_for(down) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
        for url in ("/api/v1/models", "/api/v1/jobs", "/api/v1/hosts", "/api/v1/models/x.onnx", "/report/"):
            response = client.get(url)
            assert response.status_code == 503, url
            assert "unavailable" in response.json()["detail"]
        metrics = client.get("/metrics")
        assert metrics.status_code == 200 and "dqd_catalog_up 0.0" in metrics.text
    down.close()


def test_best_prefers_the_configured_thread_count_and_jobs_show_their_stage(catalog: Catalog) -> None:
    from dataclasses import replace
    from datetime import UTC, datetime

    from dqd.catalog.tables import JobRow
    from tests.query_factory import engine_result

    at_one = add_model(catalog, "t/model.onnx")  # the factory times at 1 thread
    one_shot = engine_result("t/model.onnx")
    one_shot = replace(one_shot, benchmarks=tuple(replace(b, threads=2) for b in one_shot.benchmarks))
    at_two = catalog.record_engine_result(host(), one_shot)
    params = {"model": "t/model.onnx", "host_class": "x86_64-avx2", "ort_version": "1.32.0"}
    with TestClient(create_app(catalog, Settings(benchmark={"threads": 1}))) as client:
        configured = client.get("/api/v1/best", params=params).json()
        assert configured["decision_id"] == at_one and configured["threads"] == 1
        assert configured["at_configured_threads"] is True and configured["note"] is None
        asked = client.get("/api/v1/best", params=params | {"threads": 2}).json()
        assert asked["decision_id"] == at_two and asked["threads"] == 2
        fallback = client.get("/api/v1/best", params=params | {"threads": 4}).json()
        assert fallback["decision_id"] == at_two and fallback["at_configured_threads"] is False
        assert "4 threads" in fallback["note"]

        job = catalog.enqueue(sha_of("t/model.onnx"), "x86_64-avx2", source_path="t/model.onnx")
        assert job is not None
        started = datetime(2026, 12, 1, 22, 0, tzinfo=UTC)
        with catalog.tx.write() as session:  # as the worker records it
            row = session.get(JobRow, job.id)
            assert row is not None
            row.state, row.stage, row.stage_started_at = "running", "benchmark u8u8", started
        (listed,) = client.get("/api/v1/jobs").json()["items"]
        assert listed["stage"] == "benchmark u8u8"
        assert listed["stage_started_at"].startswith("2026-12-01T22:00:00")


def test_a_browser_opens_the_report_through_a_login_form_and_a_cookie_never_a_query_string(
    filled: Catalog,
) -> None:
    with client_for(filled, token=TOKEN) as browser:
        html = {"Accept": "text/html,application/xhtml+xml"}
        sent = browser.get("/report/", headers=html, follow_redirects=False)
        assert (sent.status_code, sent.headers["location"]) == (303, "/login")
        form = browser.get("/login")
        assert form.status_code == 200 and 'method="post"' in form.text and 'type="password"' in form.text
        wrong = browser.post("/login", data={"token": "wrong"}, follow_redirects=False)
        assert wrong.status_code == 401 and "dqd_session" not in wrong.headers.get("set-cookie", "")
        right = browser.post("/login", data={"token": TOKEN}, follow_redirects=False)
        assert (right.status_code, right.headers["location"]) == (303, "/report/")
        cookie = right.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and TOKEN not in cookie
        assert browser.get("/report/", headers=html).status_code == 200  # the cookie, kept by the client
        assert browser.get("/report/models/1.html").status_code == 200
        assert browser.get("/api/v1/models").status_code == 401  # programs use the bearer header
        browser.cookies.clear()
        assert browser.get("/report/").status_code == 401


def test_requests_are_bounded_and_only_the_login_form_posts(filled: Catalog) -> None:
    with client_for(filled, token=TOKEN) as client:
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert client.get("/api/v1/models?" + "x=1&" * 2000, headers=bearer).status_code == 414
        assert client.request("GET", "/api/v1/models", content=b"{}", headers=bearer).status_code == 413
        assert client.post("/api/v1/models", headers=bearer).status_code == 405
        assert client.post("/login", data={"token": "x" * 2000}).status_code == 413
        assert client.get("/api/v1/models?limit=5", headers=bearer).status_code == 200
    with client_for(filled) as open_api:  # no token: nothing to log in to
        assert open_api.get("/login", follow_redirects=False).headers["location"] == "/report/"


def test_a_queued_job_with_no_live_host_of_its_class_says_it_waits(filled: Catalog) -> None:
    filled.enqueue(sha_of("queued"), "aarch64-neon", source_path="queued/model.onnx")
    with client_for(filled) as api:
        queued = api.get("/api/v1/jobs", params={"state": "queued"}).json()["items"]
    waiting = {j["host_class"]: j["waiting"] for j in queued}
    assert waiting["x86_64-avx2"] is None  # its host's heartbeat is fresh
    assert waiting["aarch64-neon"].startswith("waiting: no host of class aarch64-neon has a heartbeat")
