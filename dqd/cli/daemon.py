"""Daemon commands: ``dqd run``, ``enqueue``, ``prune``, ``requantize``, ``jobs retry|cancel``.

``dqd status`` lives in status.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from dqd.catalog import Catalog, open_catalog
from dqd.cli.app import EXIT_NO_RESULT, EXIT_OK, app, configure_logging, jobs_app, state
from dqd.errors import CatalogUnavailable, ModelError, UsageError
from dqd.settings import Settings

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON.")]


@contextmanager
def _catalog(settings: Settings, *, create: bool = True) -> Iterator[Catalog]:
    try:
        catalog = open_catalog(settings, create=create)
    except OSError as exc:
        raise CatalogUnavailable(f"catalog unavailable: {exc}") from exc
    try:
        yield catalog
    finally:
        catalog.close()


@app.command("run")
def run(
    ctx: typer.Context,
    watch: Annotated[Path | None, typer.Option("--watch", help="Folder to watch (default ./models).")] = None,
    observer: Annotated[
        str | None, typer.Option("--observer", help="auto, native or polling (network/FUSE mounts).")
    ] = None,
    concurrency: Annotated[int | None, typer.Option("--concurrency", min=1, help="Worker threads.")] = None,
    publish_dir: Annotated[
        Path | None, typer.Option("--publish-dir", help="Publish chosen models under DIR/<host class>/.")
    ] = None,
    log_format: Annotated[str | None, typer.Option("--log-format", help="text or json.")] = None,
    serve: Annotated[
        bool | None,
        typer.Option(
            "--serve/--no-serve", help="Also serve the HTTP API, /metrics and /healthz (api.host, api.port)."
        ),
    ] = None,
    port: Annotated[int | None, typer.Option("--port", min=0, max=65535, help="API port (api.port).")] = None,
) -> None:
    """Watch a folder, quantize what lands in it, requantize nightly. Runs in the foreground."""
    from dqd.daemon.service import run_daemon

    settings = state(ctx).settings(
        watch_dir=watch,
        **{
            "watch.observer": observer,
            "worker.concurrency": concurrency,
            "api.serve_in_daemon": serve,
            "api.port": port,
        },
        publish_dir=publish_dir,
        log_format=log_format,
    )
    configure_logging(settings)
    raise typer.Exit(run_daemon(settings))


def _reconciler(catalog: Catalog, settings: Settings) -> Any:
    from dqd.daemon.filters import PathFilter
    from dqd.daemon.reconcile import Reconciler
    from dqd.hostinfo import host_identity

    root = Path(os.path.abspath(settings.watch_dir))
    skip = [settings.output_dir, *([settings.publish_dir] if settings.publish_dir else [])]
    return Reconciler(
        catalog,
        PathFilter(root, settings.watch.include, settings.watch.exclude, skip),
        host_class=host_identity(settings).host_class,
        host_ttl_seconds=settings.worker.host_ttl_seconds,
        max_attempts=settings.worker.max_attempts,
        settle_seconds=0.0,
    )


def _relative_to_root(path: Path, root: Path) -> str:
    absolute = Path(os.path.abspath(path))
    if not absolute.exists() and not path.is_absolute():
        absolute = root / path  # also accept paths given relative to the watched folder
    try:
        return absolute.relative_to(root).as_posix()
    except ValueError:
        raise UsageError(f"{path} is not inside the watched folder {root}") from None


@app.command("enqueue")
def enqueue(ctx: typer.Context, paths: Annotated[list[Path], typer.Argument(help="Model files.")]) -> None:
    """Register models under the watched folder and queue them now (no settle wait)."""
    from dqd.daemon.reconcile import FileBusy

    settings = state(ctx).settings()
    root = Path(os.path.abspath(settings.watch_dir))
    rels = [_relative_to_root(path, root) for path in paths]
    failed = False
    with _catalog(settings) as catalog:
        reconciler = _reconciler(catalog, settings)
        for rel in rels:
            try:
                registration = reconciler.register(rel)
            except (OSError, FileBusy, ModelError) as exc:
                typer.echo(f"{rel}: cannot read: {exc}", err=True)
                failed = True
                continue
            if registration.sha256 is None:
                typer.echo(f"{rel}: not queued: {registration.skipped}", err=True)
                failed = True
            elif registration.queued_classes:
                typer.echo(f"{rel}: queued for {', '.join(registration.queued_classes)}")
            else:
                typer.echo(f"{rel}: already queued or processed (use `dqd requantize {rel}` to redo)")
    raise typer.Exit(EXIT_NO_RESULT if failed else EXIT_OK)


@app.command("prune")
def prune(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Confirm without asking.")] = False,
    watch: Annotated[Path | None, typer.Option("--watch", help="The watched folder (watch_dir).")] = None,
) -> None:
    """Mark the models missing from the watched folder removed, and lift a removal block.

    A scan that finds the folder empty, or more than half of its models gone, removes nothing and
    /readyz fails until the models come back: run this when they really were deleted.
    """
    settings = state(ctx).settings(watch_dir=watch)
    root = Path(os.path.abspath(settings.watch_dir))
    with _catalog(settings) as catalog:
        block = catalog.removal_block(str(root))
        reconciler = _reconciler(catalog, settings)
        missing = reconciler.missing_paths()
        if block is not None:
            typer.echo(f"removals blocked since {block.blocked_at:%Y-%m-%d %H:%M} UTC: {block.reason}")
        if not missing and block is None:
            typer.echo(f"nothing to prune: every model the catalog lists under {root} is there")
            return
        typer.echo(f"{len(missing)} models in the catalog are missing from {root}:")
        for rel in missing[:20]:
            typer.echo(f"  {rel}")
        if len(missing) > 20:
            typer.echo(f"  ... and {len(missing) - 20} more")
        if not yes:
            if not os.isatty(0):
                raise UsageError("nothing changed: run `dqd prune --yes` to confirm the removals")
            typer.confirm("Mark them removed?", abort=True)
        removed = reconciler.prune(missing)
    lifted = "; removal block lifted" if block is not None else ""
    typer.echo(f"marked {len(removed)} removed{lifted}")


@jobs_app.command("retry")
def jobs_retry(ctx: typer.Context, job_id: Annotated[int, typer.Argument(help="Job id.")]) -> None:
    """Put a failed or cancelled job back in the queue with fresh attempts."""
    with _catalog(state(ctx).settings(), create=False) as catalog:  # a job id implies a catalog
        job = catalog.retry_job(job_id)
    typer.echo(f"job {job.id}: {job.state.value}")


@jobs_app.command("cancel")
def jobs_cancel(ctx: typer.Context, job_id: Annotated[int, typer.Argument(help="Job id.")]) -> None:
    """Cancel a queued or running job (a running one's result is then discarded)."""
    with _catalog(state(ctx).settings(), create=False) as catalog:  # a job id implies a catalog
        job = catalog.cancel_job(job_id)
    typer.echo(f"job {job.id}: {job.state.value}")


@app.command("requantize")
def requantize(
    ctx: typer.Context,
    models: Annotated[
        list[Path] | None, typer.Argument(help="Model paths (under the watched folder).")
    ] = None,
    all_models: Annotated[bool, typer.Option("--all", help="Every current model version.")] = False,
    stale: Annotated[
        bool, typer.Option("--stale", help="Only versions the nightly rule finds stale.")
    ] = False,
) -> None:
    """Queue requantization for every live host class, as the nightly job does."""
    from functools import partial

    from dqd.daemon.scheduler import CurrentPolicy, current_policy, enqueue_stale
    from dqd.hostinfo import host_identity
    from dqd.pipeline.plan import plan_for

    if sum([bool(models), all_models, stale]) != 1:
        raise UsageError("give model paths, --all or --stale (exactly one)")
    settings = state(ctx).settings()
    root = Path(os.path.abspath(settings.watch_dir))
    host = host_identity(settings)
    now = datetime.now(UTC)
    plan = partial(plan_for, settings, root, strict=False)
    with _catalog(settings) as catalog:
        known = catalog.known_paths()
        if models:
            rels = [_relative_to_root(m, root) for m in models]
            missing = [rel for rel in rels if rel not in known or not known[rel].sha256]
            if missing:
                raise UsageError(f"not in the catalog: {', '.join(missing)} (run `dqd enqueue` first)")
            targets: set[str] | None = {known[rel].sha256 for rel in rels}  # type: ignore[misc]
        else:
            targets = None
        classes = sorted(set(catalog.live_host_classes(settings.worker.host_ttl_seconds)) | {host.host_class})
        # Explicit or --all: a zero max age makes every version stale; --stale uses the nightly rule.
        max_age = timedelta(days=settings.schedule.max_age_days) if stale else timedelta(seconds=-1)

        def current_for(rel: str) -> CurrentPolicy:
            model_plan = plan(rel)
            return current_policy(host.ort_version, model_plan.search, max_age, model_plan.fingerprint())

        queued = 0
        for host_class in classes:
            jobs = enqueue_stale(
                catalog,
                host_class,
                current_for=current_for,
                tick=now,
                now=now,
                max_attempts=settings.worker.max_attempts,
                only=targets,
            )
            queued += len(jobs)
            for job in jobs:
                typer.echo(f"queued job {job.id}: {job.source_path} for {host_class}")
    if not queued:
        typer.echo("nothing queued (already queued, or nothing stale)")
