"""``dqd gc``: remove variant files nothing can ask for any more (rules in dqd.retention)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer

from dqd.cli.app import EXIT_NO_RESULT, app, configure_logging, state
from dqd.cli.daemon import _catalog
from dqd.text import human_size

if TYPE_CHECKING:
    from dqd.daemon.retention import GcReport


@app.command("gc")
def gc_cmd(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would go; remove nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable JSON.")] = False,
) -> None:
    """Remove variant files no latest or frozen decision selects, older than retention.keep_days.

    Never a source model, a file `dqd best` can return, or one a running job may
    be reusing. With retention.unpublish_removed, also the published files of
    models deleted from the watched folder (not while the mass-removal guard is active).
    Exit 1 when a file could not be removed.
    """
    from dqd.daemon.retention import collect_garbage  # onnx (data files): not for every command's start

    settings = state(ctx).settings()
    configure_logging(settings)
    with _catalog(settings, create=False) as catalog:
        report = collect_garbage(catalog, settings, dry_run=dry_run)
    if as_json:
        typer.echo(json.dumps(_jsonable(report)))
    else:
        _say(report, settings.retention.keep_days)
    if report.errors:
        raise typer.Exit(EXIT_NO_RESULT)


def _jsonable(report: GcReport) -> dict[str, object]:
    return {
        "dry_run": report.dry_run,
        "bytes_freed": report.bytes_freed,
        "removed": [asdict(r) for r in report.removed],
        "kept": dict(report.kept),
        "notes": report.notes,
        "errors": report.errors,
    }


def _say(report: GcReport, keep_days: float) -> None:
    verb = "would remove" if report.dry_run else "removed"
    for removed in report.removed:
        typer.echo(f"{verb} {removed.path} ({human_size(removed.bytes)})")
    kept = ", ".join(f"{count} {reason}" for reason, count in sorted(report.kept.items())) or "none"
    freed = "would free" if report.dry_run else "freed"
    typer.echo(
        f"{verb} {len(report.removed)} file(s), {freed} {human_size(report.bytes_freed)} "
        f"({report.bytes_freed} bytes); variant files kept: {kept} (keep_days {keep_days:g})"
    )
    for note in report.notes:
        typer.echo(f"dqd: note: {note}", err=True)
    for error in report.errors:
        typer.echo(f"dqd: error: could not remove {error}", err=True)
