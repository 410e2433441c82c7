"""Administrative commands: `dqd db ...`, `dqd config show`, `dqd doctor`."""

from __future__ import annotations

import json
import os
from typing import Annotated, Any

import typer

from dqd.catalog import Catalog, missing_sqlite_file, no_catalog_message
from dqd.catalog.migrate import current_revision, head_revision, upgrade
from dqd.cli.app import EXIT_UNAVAILABLE, app, config_app, db_app, state
from dqd.errors import CatalogUnavailable, DqdError
from dqd.settings import Settings, redact_url

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable JSON.")]


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Apply pending catalog migrations (SQLite file or Postgres)."""
    settings = state(ctx).settings()
    catalog = Catalog.from_url(settings.database_url_plain)
    try:
        revision = upgrade(catalog.engine)
    finally:
        catalog.close()
    typer.echo(f"catalog {redact_url(settings.database_url_plain)} at revision {revision}")


@db_app.command("current")
def db_current(
    ctx: typer.Context,
    as_json: JsonFlag = False,
    check: Annotated[
        bool,
        typer.Option("--check", help="Exit 1 unless the schema is current (an init container's wait)."),
    ] = False,
) -> None:
    """Show the catalog's schema revision and whether it is current."""
    settings = state(ctx).settings()
    missing = missing_sqlite_file(settings.database_url_plain)
    if missing is not None:  # asking about a catalog never creates one
        raise CatalogUnavailable(
            f"no catalog at {missing}: check database_url, or create it with `dqd db upgrade`"
        )
    catalog = Catalog.from_url(settings.database_url_plain)
    try:
        current = current_revision(catalog.engine)
    finally:
        catalog.close()
    head = head_revision()
    if as_json:
        typer.echo(json.dumps({"current": current, "head": head, "up_to_date": current == head}))
    else:
        note = "up to date" if current == head else "run `dqd db upgrade`"
        typer.echo(f"{current or '(empty)'} (head {head}: {note})")
    if check and current != head:
        raise typer.Exit(1)


@config_app.command("show")
def config_show(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Print the effective configuration, secrets redacted."""
    data = state(ctx).settings().redacted()
    if as_json:
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    for key, value in _flatten(data):
        typer.echo(f"{key} = {json.dumps(value)}")


def _flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and key != "models":
            rows.extend(_flatten(value, name + "."))
        else:
            rows.append((name, value))
    return rows


@app.command("doctor")
def doctor(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Check this host: CPU class and ISA flags, onnxruntime, catalog, watch folder."""
    from dqd.hostinfo import host_identity

    settings = state(ctx).settings()
    host = host_identity(settings)
    checks: dict[str, Any] = {
        "host_class": host.host_class,
        "host_declared": host.declared,
        "cpu_model": host.cpu_model,
        "isa_flags": list(host.isa_flags),
        "usable_cores": host.usable_cores,
        "benchmark_threads": settings.benchmark.threads,
        "onnxruntime": host.ort_version,
        "onnx": host.onnx_version,
        "dqd": host.dqd_version,
    }
    problems: list[str] = []
    checks["catalog"] = _check_catalog(settings.database_url_plain, problems)
    checks["watch_dir"] = _check_watch_dir(settings, problems)
    checks["problems"] = problems
    if as_json:
        typer.echo(json.dumps(checks, indent=2))
    else:
        for key, value in checks.items():
            if key != "problems":
                typer.echo(f"{key:18} {value if not isinstance(value, list | dict) else json.dumps(value)}")
        for problem in problems:
            typer.echo(f"problem: {problem}", err=True)
    if problems:
        raise typer.Exit(EXIT_UNAVAILABLE)


def _check_catalog(url: str, problems: list[str]) -> dict[str, Any]:
    report: dict[str, Any] = {"url": redact_url(url)}
    missing = missing_sqlite_file(url)
    if missing is not None:
        problems.append(no_catalog_message(missing))
        return report | {"reachable": False, "error": f"no catalog at {missing}"}
    catalog = None
    try:
        catalog = Catalog.from_url(url)
        catalog.ping()
        current, head = current_revision(catalog.engine), head_revision()
        report.update(reachable=True, revision=current, head=head, schema_current=current == head)
        if current != head:
            problems.append(
                f"catalog schema at {current or 'nothing'}, expected {head}: run `dqd db upgrade`"
            )
    except DqdError as exc:
        report.update(reachable=False, error=str(exc))
        problems.append(str(exc))
    finally:
        if catalog is not None:
            catalog.close()
    return report


def _check_watch_dir(settings: Settings, problems: list[str]) -> dict[str, Any]:
    from dqd.daemon.mounts import choose_observer, filesystem_type

    path = settings.watch_dir
    report: dict[str, Any] = {
        "path": str(path),
        "exists": path.is_dir(),
        "filesystem": filesystem_type(path.resolve()),
        "observer": choose_observer(settings.watch.observer, path.resolve()),
    }
    if path.exists() and not path.is_dir():
        problems.append(f"watch_dir {path} exists but is not a folder")
    elif path.is_dir() and not os.access(path, os.R_OK | os.X_OK):
        problems.append(f"watch_dir {path} is not readable by this user")
    return report


@db_app.command("copy")
def db_copy(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="Catalog URL to copy from (no password: see below).")],
    destination: Annotated[str, typer.Argument(help="Catalog URL to copy into (migrated, empty).")],
    replace: Annotated[
        bool, typer.Option("--replace", help="Delete the destination's rows first instead of refusing.")
    ] = False,
) -> None:
    """Copy a catalog, SQLite or Postgres, either way: every row, ids and history kept, counts checked.

    Passwords never go on the command line (process lists, shell history): leave them
    out of the URLs; Postgres takes them from PGPASSWORD or ~/.pgpass.
    """
    from dqd.catalog.copy import copy_catalog
    from dqd.catalog.db import normalize_url, url_has_password
    from dqd.errors import UsageError

    settings = state(ctx).settings()
    urls = {"source": normalize_url(source), "destination": normalize_url(destination)}
    for role, url in urls.items():
        if url_has_password(url):
            raise UsageError(
                f"the {role} URL holds a password, which the command line exposes (ps, shell history): "
                "leave it out and set PGPASSWORD or put it in ~/.pgpass"
            )
    if urls["source"] == urls["destination"]:
        raise UsageError("source and destination are the same catalog")
    missing = missing_sqlite_file(urls["source"])
    if missing is not None:
        raise CatalogUnavailable(f"no catalog at {missing}: check the source URL")
    source_catalog = Catalog.from_url(urls["source"])
    destination_catalog = Catalog.from_url(urls["destination"])
    try:
        counts = copy_catalog(
            source_catalog,
            destination_catalog,
            live_seconds=3 * settings.worker.heartbeat_seconds,
            replace=replace,
            # Tables can be large: say where the copy is (stdout stays the final, checked table).
            progress=lambda table, rows: (
                typer.echo(f"copied {table} ({rows} rows)", err=True) if rows else None
            ),
        )
    finally:
        source_catalog.close()
        destination_catalog.close()
    for count in counts:
        mark = "ok" if count.complete else "MISMATCH"
        typer.echo(f"{count.table}: {count.source_rows} -> {count.destination_rows} {mark}")
    if not all(count.complete for count in counts):
        raise typer.Exit(1)
    typer.echo(f"copied {redact_url(urls['source'])} to {redact_url(urls['destination'])}")
