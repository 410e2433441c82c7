"""Querying the catalog: ``dqd models``, ``show``, ``best``, ``jobs list``, ``hosts``, ``serve``, ``report``.

All read-only; a catalog that cannot be reached exits 3, a model with no decision 1.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from dqd.catalog import Catalog, open_catalog
from dqd.catalog.queries import MODEL_SORTS
from dqd.catalog.views import LatestDecision, ModelListing
from dqd.cli.app import app, jobs_app, state
from dqd.cli.detail_output import print_detail
from dqd.cli.output import Column, choose_format, emit, jsonable
from dqd.cli.refs import model_ref
from dqd.domain import Job, JobState, Outcome
from dqd.errors import CatalogUnavailable, UsageError
from dqd.hostinfo import installed_ort_version, this_host_class
from dqd.settings import Settings

JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON array (objects for single results).")]
CsvOpt = Annotated[bool, typer.Option("--csv", help="CSV with a header row.")]
LimitOpt = Annotated[
    int | None, typer.Option("--limit", min=1, help="At most this many rows.", show_default=False)
]
HostClassOpt = Annotated[
    str | None,
    typer.Option("--host-class", help="Only this host class, e.g. x86_64-avx2.", show_default=False),
]


@contextmanager
def _catalog(ctx: typer.Context) -> Iterator[tuple[Catalog, Settings]]:
    settings = state(ctx).settings()
    try:
        catalog = open_catalog(settings, create=False)  # reading never creates a catalog
    except OSError as exc:  # e.g. the SQLite file's folder cannot be created
        raise CatalogUnavailable(f"catalog unavailable: {exc}") from exc
    try:
        yield catalog, settings
    finally:
        catalog.close()


# --- models ---


def _rows(models: list[ModelListing]) -> list[tuple[ModelListing, LatestDecision | None]]:
    """One row per (model, host class); a model with no decision yet gets one row."""
    none: list[LatestDecision | None] = [None]
    return [(m, d) for m in models for d in (m.decisions or none)]


def _accuracy(d: LatestDecision | None) -> str | None:
    if d is None or d.accuracy is None or d.accuracy.value is None:
        return None
    mark = "" if d.accuracy.passed else " FAIL"
    return f"{d.accuracy.metric}={d.accuracy.value:.4f} ({d.accuracy.input_source}){mark}"


MODEL_COLUMNS = (
    Column("PATH", lambda r: r[0].path),
    Column("SHA256", lambda r: r[0].sha256, lambda v: (v or "-")[:12]),
    Column("HOST CLASS", lambda r: r[1] and r[1].host_class),
    Column("OUTCOME", lambda r: r[1].outcome.label(r[1].source_precision) if r[1] else _undecided(r[0])),
    Column("VARIANT", lambda r: r[1] and r[1].variant),
    Column("SPEEDUP", lambda r: r[1] and r[1].speedup, lambda v: f"{v:.2f}x" if v else "-"),
    Column("THREADS", lambda r: r[1] and r[1].threads),
    Column("ACCURACY", lambda r: _accuracy(r[1])),
    Column("ORT", lambda r: r[1] and r[1].ort_version),
    Column("DECIDED", lambda r: r[1] and r[1].created_at),
    Column("REASON", lambda r: r[1].reason if r[1] else r[0].refused_reason, lambda v: _shortened(v)),
)


def _undecided(model: ModelListing) -> str:
    """A path with no decision: refused for good, or not decided yet."""
    return "refused" if model.refused_reason else "pending"


def _shortened(text: str | None, width: int = 60) -> str:
    """One line of at most ``width`` characters: the table's last column stays readable."""
    if not text:
        return "-"
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1].rstrip() + "…"


@app.command("models")
def models_cmd(
    ctx: typer.Context,
    host_class: HostClassOpt = None,
    outcome: Annotated[
        Outcome | None, typer.Option("--outcome", help="Only models whose latest decision had this outcome.")
    ] = None,
    match: Annotated[
        str | None,
        typer.Option("--match", "-q", help="Path substring or sha256 prefix.", show_default=False),
    ] = None,
    old_match: Annotated[
        str | None,
        # `--search` is `dqd process`'s search mode; kept here only so old scripts keep working.
        typer.Option("--search", hidden=True, help="Deprecated: use --match."),
    ] = None,
    include_removed: Annotated[bool, typer.Option("--all", help="Include removed paths.")] = False,
    sort: Annotated[str, typer.Option("--sort", help=f"One of {', '.join(MODEL_SORTS)}.")] = "path",
    limit: LimitOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
) -> None:
    """Every model with its latest decision per host class."""
    fmt = choose_format(as_json, as_csv)
    with _catalog(ctx) as (catalog, _):
        page = catalog.list_models(
            host_class=host_class,
            outcome=outcome,
            search=match or old_match,
            include_removed=include_removed,
            sort=sort,
            limit=limit,
        )
    if fmt == "json":
        emit(page.items, MODEL_COLUMNS, fmt)
    else:
        emit(_rows(page.items), MODEL_COLUMNS, fmt)


@app.command("show")
def show_cmd(
    ctx: typer.Context,
    model: Annotated[
        str, typer.Argument(help="Path relative to the watched folder, file name or sha256 prefix.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
    show_all: Annotated[
        bool, typer.Option("--all", help="Also superseded versions (e.g. partial writes), flagged.")
    ] = False,
) -> None:
    """Variants, accuracy, benchmarks and decision history of one model."""
    with _catalog(ctx) as (catalog, settings):
        detail = catalog.model_detail(model_ref(model, settings.watch_dir), include_superseded=show_all)
    if as_json:
        typer.echo(json.dumps(jsonable(detail)))
    else:
        print_detail(detail)


@app.command("best")
def best_cmd(
    ctx: typer.Context,
    model: Annotated[
        str, typer.Argument(help="Path relative to the watched folder, file name or sha256 prefix.")
    ],
    host_class: Annotated[
        str | None, typer.Option("--host-class", help="Default: this host's class.", show_default=False)
    ] = None,
    ort_version: Annotated[
        str | None,
        typer.Option("--ort-version", help="Default: the installed onnxruntime.", show_default=False),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The whole choice as one JSON object.")] = False,
) -> None:
    """Print only the path to load (the selected variant, or the FP32 original). Exit 1: no decision yet."""
    with _catalog(ctx) as (catalog, settings):
        choice = catalog.best_choice(
            model_ref(model, settings.watch_dir),
            host_class or this_host_class(settings),
            ort_version or installed_ort_version(),
            threads=settings.benchmark.threads,
        )
    if choice.note and not as_json:
        typer.echo(f"dqd: note: {choice.note}", err=True)  # stdout stays the bare path for scripts
    # The original lives under the watched folder; a variant's path is printed as the engine recorded it.
    load = str((settings.watch_dir / choice.load_path).absolute()) if choice.is_original else choice.load_path
    data = jsonable(choice) | {"load_path": load}
    typer.echo(json.dumps(data) if as_json else data["load_path"])


# --- jobs and hosts ---


JOB_COLUMNS = (
    Column("ID", lambda j: j.id),
    Column("STATE", lambda j: j.state),
    Column("KIND", lambda j: j.kind),
    Column("HOST CLASS", lambda j: j.host_class),
    Column("PATH", lambda j: j.source_path),
    Column("SHA256", lambda j: j.sha256, lambda v: v[:12]),
    Column("ATTEMPTS", lambda j: f"{j.attempts}/{j.max_attempts}"),
    Column("STAGE", lambda j: j.stage if j.state is JobState.RUNNING else None),
    Column("UPDATED", lambda j: j.updated_at),
    Column("NOTE", lambda j: j.waiting or j.last_error, lambda v: (v or "-")[:100]),
)


def _list_jobs(
    ctx: typer.Context,
    states: list[JobState],
    host_class: str | None,
    limit: int | None,
    as_json: bool,
    as_csv: bool,
) -> None:
    fmt = choose_format(as_json, as_csv)
    with _catalog(ctx) as (catalog, settings):
        jobs: list[Job] = catalog.jobs_page(
            states=states, host_class=host_class, limit=limit, live_within=settings.worker.host_ttl_seconds
        ).items
    emit([jsonable(job) for job in jobs] if fmt == "json" else jobs, JOB_COLUMNS, fmt)


StatesOpt = Annotated[
    list[JobState] | None, typer.Option("--state", help="Only jobs in this state (repeatable).")
]


@jobs_app.callback(invoke_without_command=True)
def jobs_default(
    ctx: typer.Context,
    states: StatesOpt = None,
    host_class: HostClassOpt = None,
    limit: LimitOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
) -> None:
    """The job queue: plain `dqd jobs` takes the options of `dqd jobs list`."""
    if ctx.invoked_subcommand is None:
        _list_jobs(ctx, states or [], host_class, limit, as_json, as_csv)


@jobs_app.command("list")
def jobs_list_cmd(
    ctx: typer.Context,
    states: StatesOpt = None,
    host_class: HostClassOpt = None,
    limit: LimitOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
) -> None:
    """Jobs, newest first."""
    _list_jobs(ctx, states or [], host_class, limit, as_json, as_csv)


HOST_COLUMNS = (
    Column("HOST CLASS", lambda h: h[0].host_class),
    Column("HOSTNAME", lambda h: h[0].hostname),
    Column("CPU", lambda h: h[0].cpu_model),
    Column("CORES", lambda h: h[0].usable_cores),
    Column("ORT", lambda h: h[0].ort_version),
    Column("FIRST SEEN", lambda h: h[1]),
    Column("LAST HEARTBEAT", lambda h: h[2]),
)


@app.command("hosts")
def hosts_cmd(ctx: typer.Context, as_json: JsonOpt = False, as_csv: CsvOpt = False) -> None:
    """Hosts that have recorded work, with their class."""
    fmt = choose_format(as_json, as_csv)
    with _catalog(ctx) as (catalog, _):
        hosts = catalog.list_hosts()
    if fmt == "json":
        items: list[Any] = [
            jsonable(h) | {"first_seen_at": first.isoformat(), "last_heartbeat_at": last.isoformat()}
            for h, first, last in hosts
        ]
        emit(items, HOST_COLUMNS, fmt)
    else:
        emit(hosts, HOST_COLUMNS, fmt)


# --- serve and report ---


@app.command("serve")
def serve_cmd(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option("--host", help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option("--port", min=0, max=65535, help="Port (default 8765).")] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64, help="Server processes.")] = 1,
) -> None:
    """Serve the read-only HTTP API, /metrics and the report."""
    import uvicorn

    from dqd.api import create_app

    settings = state(ctx).settings(**{"api.host": host, "api.port": port})
    bind: dict[str, Any] = {"host": settings.api.host, "port": settings.api.port}
    bind["log_level"] = settings.log_level
    with _catalog(ctx) as (catalog, _):  # also migrates or checks the schema once, before any worker starts
        if workers == 1:
            uvicorn.run(create_app(catalog, settings), **bind)
            return
    # Worker processes build their own app and engine: hand them this command's options through DQD_*.
    st = state(ctx)
    if st.config_file is not None:
        os.environ["DQD_CONFIG"] = str(st.config_file)
    for key, value in st.overrides.items():
        if value is not None:
            os.environ["DQD_" + key.upper().replace(".", "__")] = str(value)
    uvicorn.run("dqd.api.app:app_from_environment", factory=True, workers=workers, **bind)


@app.command("report")
def report_cmd(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="Folder to write index.html and model pages into.")],
) -> None:
    """Write the HTML report (plots inline as SVG; works offline) into a folder."""
    from dqd.api.report_export import export_report

    with _catalog(ctx) as (catalog, _):
        try:
            written = export_report(catalog, out)
        except OSError as exc:
            raise UsageError(f"cannot write the report into {out}: {exc.strerror or exc}") from exc
    typer.echo(f"wrote {written} pages to {out / 'index.html'}", err=True)
