"""``/api/v1``: read-only JSON for the same queries as the CLI.

Responses are serialized with pydantic's TypeAdapter straight to JSON bytes
(the same dataclasses give the OpenAPI schema), which keeps a 50-row page at
about a millisecond of CPU so 20 concurrent clients stay well under the
100 ms p95 target.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, TypeAdapter

from dqd.api.responses import json_body
from dqd.catalog import Catalog
from dqd.catalog.queries import MODEL_SORTS
from dqd.catalog.views import DecisionPage, JobPage, ModelDetail, ModelPage
from dqd.choice import BestChoice
from dqd.domain import HostInfo, JobState, Outcome
from dqd.hostinfo import installed_ort_version, this_host_class

# No NUL bytes: Postgres cannot store them in text, so they would fail deep in the driver.
TEXT = r"^[^\x00]*$"
Limit = Annotated[int, Query(ge=1, le=1000, description="Page size.")]
Cursor = Annotated[
    str | None,
    Query(
        max_length=2048, pattern=TEXT, description="next_cursor from the previous page (keyset pagination)."
    ),
]
Offset = Annotated[int, Query(ge=0, le=1_000_000_000, description="Rows to skip (offset pagination).")]
HostClass = Annotated[str | None, Query(max_length=64, pattern=TEXT, description="e.g. x86_64-avx2")]
ModelRef = Annotated[
    str,
    PathParam(min_length=1, max_length=1024, pattern=TEXT, description="Path, file name or sha256 prefix."),
]


class ErrorBody(BaseModel):
    detail: str


class HostOut(BaseModel):
    host: HostInfo
    first_seen_at: str
    last_heartbeat_at: str


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Invalid parameter (e.g. a cursor that is not ours)."},
    401: {"model": ErrorBody, "description": "Missing or wrong bearer token."},
    503: {"model": ErrorBody, "description": "The catalog is unreachable."},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "No such model."}}


def _json(adapter: TypeAdapter[Any], value: Any) -> Response:
    return json_body(adapter, value)


def build_router(
    catalog: Catalog,
    *,
    threads: int | None = None,
    host_class: str | None = None,
    host_ttl_seconds: float | None = None,
) -> APIRouter:
    """``threads``: the configured ``benchmark.threads``, which ``/best`` prefers decisions timed at;
    ``host_class``: this server's class for ``/best`` (default: detected); ``host_ttl_seconds``:
    ``worker.host_ttl_seconds``, for ``/jobs`` to say which queued jobs wait for a live host."""
    server_class = host_class
    router = APIRouter(responses=ERRORS)
    configured_threads = threads
    models_out, detail_out = TypeAdapter(ModelPage), TypeAdapter(ModelDetail)
    best_out, jobs_out = TypeAdapter(BestChoice), TypeAdapter(JobPage)
    decisions_out, hosts_out = TypeAdapter(DecisionPage), TypeAdapter(list[HostOut])

    @router.get("/models", response_model=ModelPage, tags=["models"])
    def list_models(
        limit: Limit = 50,
        cursor: Cursor = None,
        offset: Offset = 0,
        host_class: HostClass = None,
        outcome: Outcome | None = None,
        q: Annotated[
            str | None, Query(max_length=256, pattern=TEXT, description="Path substring or sha prefix.")
        ] = None,
        sort: Annotated[str, Query(pattern="^(" + "|".join(MODEL_SORTS) + ")$")] = "path",
        include_removed: bool = False,
    ) -> Response:
        """Models with their latest decision per host class."""
        page = catalog.list_models(
            host_class=host_class,
            outcome=outcome,
            search=q,
            include_removed=include_removed,
            sort=sort,
            limit=limit,
            cursor=cursor,
            offset=offset,
        )
        return _json(models_out, page)

    @router.get("/models/{ref:path}", response_model=ModelDetail, tags=["models"], responses=NOT_FOUND)
    def model_detail(
        ref: ModelRef,
        include_superseded: Annotated[
            bool, Query(description="Also versions superseded before they were decided.")
        ] = False,
    ) -> Response:
        """Variants, accuracy, benchmarks and decision history of one model."""
        return _json(detail_out, catalog.model_detail(ref, include_superseded=include_superseded))

    @router.get(
        "/best",
        response_model=BestChoice,
        tags=["models"],
        responses=NOT_FOUND | {409: {"model": ErrorBody, "description": "The model ended in error."}},
    )
    def best(
        model: Annotated[str, Query(min_length=1, max_length=1024, pattern=TEXT)],
        host_class: HostClass = None,
        ort_version: Annotated[str | None, Query(max_length=32, pattern=TEXT)] = None,
        threads: Annotated[
            int | None, Query(ge=1, le=1024, description="Prefer decisions timed at this thread count.")
        ] = None,
    ) -> Response:
        """What to load: the selected variant's file or the FP32 original (path relative to the watched root).

        Defaults: this server's host class and installed onnxruntime, and the latest decision timed
        at the configured benchmark.threads (else the latest at any count: `at_configured_threads`
        false, `note` saying so). 404 when there is no decision yet.
        """
        choice = catalog.best_choice(
            model,
            host_class or server_class or this_host_class(),
            ort_version or installed_ort_version(),
            threads=threads or configured_threads,
        )
        return _json(best_out, choice)

    @router.get("/jobs", response_model=JobPage, tags=["jobs"])
    def jobs(
        limit: Limit = 50,
        cursor: Cursor = None,
        offset: Offset = 0,
        state: Annotated[list[JobState] | None, Query(description="Repeatable.")] = None,
        host_class: HostClass = None,
    ) -> Response:
        """Jobs, newest first."""
        page = catalog.jobs_page(
            states=state or [],
            host_class=host_class,
            limit=limit,
            cursor=cursor,
            offset=offset,
            live_within=host_ttl_seconds,
        )
        return _json(jobs_out, page)

    @router.get("/decisions", response_model=DecisionPage, tags=["decisions"])
    def decisions(
        limit: Limit = 50,
        cursor: Cursor = None,
        host_class: HostClass = None,
        outcome: Outcome | None = None,
        model: Annotated[
            str | None, Query(max_length=1024, pattern=TEXT, description="Only this model.")
        ] = None,
        ort_version: Annotated[str | None, Query(max_length=32, pattern=TEXT)] = None,
    ) -> Response:
        """Decision history across the catalog, newest first."""
        sha = catalog.resolve_model(model)[1] if model else None
        page = catalog.decisions_page(
            host_class=host_class,
            outcome=outcome,
            sha256=sha,
            ort_version=ort_version,
            limit=limit,
            cursor=cursor,
        )
        return _json(decisions_out, page)

    @router.get("/hosts", response_model=list[HostOut], tags=["hosts"])
    def hosts() -> Response:
        """Hosts that have recorded work."""
        rows = [
            HostOut(host=h, first_seen_at=first.isoformat(), last_heartbeat_at=last.isoformat())
            for h, first, last in catalog.list_hosts()
        ]
        return _json(hosts_out, rows)

    return router
