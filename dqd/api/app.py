"""The read-only HTTP API: ``create_app(catalog, settings)``.

Rules kept in one place, as middleware and handlers rather than per route:
only GET/HEAD (anything else is 405, so no endpoint can write); an optional
bearer token guards ``/api``, ``/metrics`` and ``/report`` but never the probes;
catalog failures are 503 and bad input 4xx with a message, never a 500.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

import dqd.metrics  # noqa: F401  (registers the daemon's process metrics for /metrics)
from dqd import __version__
from dqd.api.guard import ReadOnlyGuard
from dqd.api.metrics import CatalogCollector
from dqd.api.report_pages import render_index, render_model
from dqd.api.responses import NameSafeHTML as HTMLResponse
from dqd.api.responses import NameSafeJSON as JSONResponse
from dqd.api.routes import build_router
from dqd.catalog import Catalog, open_catalog
from dqd.catalog.migrate import ensure_current, head_revision
from dqd.choice import ModelErrored
from dqd.errors import CatalogError, DqdError, NotFound, SchemaMismatch
from dqd.settings import Settings, load


def status_for(error: DqdError) -> int:
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, ModelErrored):
        return 409
    if isinstance(error, CatalogError):
        return 503
    return 400  # usage errors (bad cursor, ambiguous model) and anything else the caller can fix


def create_app(catalog: Catalog, settings: Settings) -> FastAPI:
    """The API over ``catalog``; the daemon can mount it too (it holds no state of its own)."""
    token = settings.api_token()
    # No /docs or /redoc: they load JavaScript from a CDN, and the report must work offline.
    app = FastAPI(
        title="dqd",
        version=__version__,
        description="Read-only catalog of dynamic-quantization decisions.",
        docs_url=None,
        redoc_url=None,
        default_response_class=JSONResponse,
    )

    app.add_middleware(ReadOnlyGuard, token=token)

    @app.exception_handler(DqdError)
    async def dqd_error(_request: Request, exc: DqdError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status_for(exc))

    @app.get("/healthz", tags=["probes"])
    def healthz() -> dict[str, str]:
        """The process is up (never needs a token)."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["probes"],
        responses={503: {"description": "catalog unreachable, schema not current, or removals blocked"}},
    )
    def readyz() -> JSONResponse:
        """The catalog is reachable, its schema is the one this code expects, and no scan is
        holding back removals (a watched folder that looks emptied: see ``dqd prune``)."""
        try:
            ensure_current(catalog.engine)
            blocks = catalog.removal_blocks()
        except SchemaMismatch as exc:
            return JSONResponse({"status": "schema_mismatch", "detail": str(exc)}, status_code=503)
        except CatalogError as exc:
            return JSONResponse({"status": "unavailable", "detail": str(exc)}, status_code=503)
        if blocks:
            detail = "; ".join(block.reason for block in blocks)
            roots = [{"root": b.root, "known": b.known, "missing": b.missing} for b in blocks]
            body = {"status": "removal_blocked", "detail": detail, "blocks": roots}
            return JSONResponse(body, status_code=503)
        return JSONResponse({"status": "ready", "revision": head_revision()})

    registry = CollectorRegistry(auto_describe=False)
    registry.register(CatalogCollector(catalog))

    @app.get("/metrics", tags=["probes"], response_class=Response)
    def metrics() -> Response:
        """Prometheus text: the process's own metrics plus catalog-wide gauges read at scrape time."""
        return Response(generate_latest(REGISTRY) + generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/report/", tags=["report"], response_class=HTMLResponse)
    def report_index() -> HTMLResponse:
        """The HTML report: catalog-wide plots and the model list."""
        return HTMLResponse(render_index(catalog))

    @app.get(
        "/report/models/{page}",
        tags=["report"],
        response_class=HTMLResponse,
        responses={404: {"description": "no such model"}},
    )
    def report_model(page: str) -> HTMLResponse:
        """One model's page (``<id>.html``): latency box plots, accuracy, decision history."""
        stem = page.removesuffix(".html")
        if not stem.isascii() or not stem.isdigit() or len(stem) > 18:
            raise NotFound(f"no report page {page!r}")
        return HTMLResponse(render_model(catalog, int(stem)))

    app.include_router(
        build_router(
            catalog,
            threads=settings.benchmark.threads,
            host_class=settings.host_class,
            host_ttl_seconds=settings.worker.host_ttl_seconds,
        ),
        prefix="/api/v1",
    )
    return app


def app_from_environment() -> FastAPI:
    """The app factory of ``dqd serve --workers N``: each worker opens the catalog from DQD_* settings."""
    settings = load()
    return create_app(open_catalog(settings, migrate=False, create=False), settings)
