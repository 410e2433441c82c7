"""`dqd process PATH...`: run the engine on models now and record the results in the catalog."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

import typer

from dqd.cli.app import EXIT_NO_RESULT, EXIT_OK, app, configure_logging, state
from dqd.cli.refs import catalog_path
from dqd.domain import EngineResult, HostInfo, Outcome, SearchMode
from dqd.errors import HostBusy, ModelError, UsageError
from dqd.pathtext import displayable
from dqd.serialize import process_result_json
from dqd.settings import Settings


@app.command("process")
def process(
    ctx: typer.Context,
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="ONNX files, or folders searched for models (watch.include minus watch.exclude).",
            show_default=False,
        ),
    ],
    threads: Annotated[
        int | None, typer.Option("--threads", min=1, help="Intra-op threads for timing (benchmark.threads).")
    ] = None,
    search: Annotated[
        SearchMode | None, typer.Option("--search", help="design (the two-step) or thorough (the ladder).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per model on stdout.")] = False,
) -> None:
    """Quantize, check, benchmark and decide for each model; exit 1 if any ended in error."""
    from dqd.catalog import open_catalog
    from dqd.hostinfo import host_identity
    from dqd.modelfile import unit_stat

    flags: dict[str, Any] = {"benchmark.threads": threads, "search": search.value if search else None}
    settings = state(ctx).settings(**flags)
    configure_logging(settings)
    models = expand_paths(paths, settings)
    host = host_identity(settings)
    catalog = open_catalog(settings)
    any_error = False
    try:
        catalog.upsert_host(host)
        for index, (model, root) in enumerate(models, start=1):
            prefix = f"[{index}/{len(models)}] {model.name}"
            typer.echo(f"{prefix}: started", err=True)
            try:
                stat: tuple[int, int] | None = unit_stat(model)
            except (OSError, ModelError):
                stat = None  # the engine reports why it cannot read the model
            result = process_one(
                model, root, settings, host, search=search, progress=_progress_printer(prefix)
            )
            if result.sha256 and stat is not None:
                # Registered as the daemon would, so `dqd models` lists it and `dqd show NAME` finds it.
                catalog.observe_file(catalog_path(model, settings.watch_dir), result.sha256, *stat)
            decision_id = catalog.record_engine_result(host, result)
            any_error |= result.outcome is Outcome.ERROR
            if as_json:
                # The catalog's id, for `dqd show`, `dqd freeze --decision` and the API.
                line = {**process_result_json(result), "decision_id": decision_id}
                typer.echo(json.dumps(displayable(line)))
                sys.stdout.flush()
            else:
                typer.echo(human_summary(result))
    finally:
        catalog.close()
    raise typer.Exit(EXIT_NO_RESULT if any_error else EXIT_OK)


BUSY_TRIES = 3  # a benchmark on a busy host is run again this many times in all, then exit 3


def process_one(
    model: Path,
    root: Path | None,
    settings: Settings,
    host: HostInfo,
    *,
    search: SearchMode | None,
    progress: Callable[[str], None],
) -> EngineResult:
    """Run the engine on the model's plan, resolved as the daemon resolves it.

    ``[models."<glob>"]`` globs match the path below the folder given (or the
    file name), then the sidecar beside the file applies; unlike the daemon,
    which logs a bad sidecar and goes on, here it is the model's error.
    ``--search`` wins over a model's own ``search``.
    """
    from dqd.pipeline.engine import invalid_settings_result, process_model
    from dqd.pipeline.plan import plan_for, resolve_plan
    from dqd.sidecar import SidecarError

    folder = root or model.parent
    rel = model.relative_to(folder).as_posix()
    try:
        plan = plan_for(settings, folder, rel, strict=True, search_flag=search)
    except SidecarError as exc:
        mode = resolve_plan(settings, None, rel, search_flag=search).search  # the sidecar's left out
        return invalid_settings_result(model, host, str(exc), search=mode)
    threads = settings.benchmark.threads
    for attempt in range(1, BUSY_TRIES + 1):
        try:
            return process_model(
                model, settings, host=host, plan=plan, threads=threads, model_root=root, progress=progress
            )
        except HostBusy as exc:
            if attempt == BUSY_TRIES:
                raise
            wait = settings.benchmark.busy_retry_seconds
            progress(f"{exc}; trying again in {wait:g} s ({attempt}/{BUSY_TRIES - 1})")
            time.sleep(wait)
    raise AssertionError("unreachable: the last try returns or raises")


def _progress_printer(prefix: str) -> Callable[[str], None]:
    def show(message: str) -> None:
        typer.echo(f"{prefix}: {message}", err=True)

    return show


def expand_paths(paths: list[Path], settings: Settings) -> list[tuple[Path, Path | None]]:
    """Files as given; folders become the models the daemon would see there, with the folder as root.

    A folder is read with the daemon's :class:`PathFilter`: ``watch.include``
    names the models, ``watch.exclude`` (dot-files and dot-folders, temporary
    download suffixes by default) and dqd's own output and publish folders are
    left out. A symlinked file is read wherever it points (the caller named the
    folder); symlinked folders are not entered.
    """
    models: list[tuple[Path, Path | None]] = []
    for path in paths:
        if path.is_dir():
            models.extend((found, path) for found in models_in(path, settings))
        elif path.exists():
            models.append((path, None))
        else:
            raise UsageError(f"no such file or folder: {path}")
    if not models:
        raise UsageError(
            f"no models found in the given folders: none matches watch.include {settings.watch.include} "
            f"outside watch.exclude {settings.watch.exclude}"
        )
    return models


def models_in(folder: Path, settings: Settings) -> list[Path]:
    """The files under ``folder`` the daemon's filter classifies as models, sorted."""
    from dqd.daemon.filters import Kind, PathFilter

    skip = [settings.output_dir, *([settings.publish_dir] if settings.publish_dir else [])]
    path_filter = PathFilter(folder, settings.watch.include, settings.watch.exclude, skip)
    found: list[Path] = []
    for directory, subdirs, files in os.walk(folder):
        here = Path(directory)
        # Prune excluded folders (dot-folders, dqd-out) instead of classifying every file below them.
        subdirs[:] = [d for d in subdirs if path_filter.excluded(_rel(here / d, folder)) is None]
        for name in files:
            if path_filter.classify(here / name, check_links=False).kind is Kind.MODEL:
                found.append(here / name)
    return sorted(found)


def _rel(path: Path, folder: Path) -> PurePosixPath:
    return PurePosixPath(path.relative_to(folder).as_posix())


def human_summary(result: EngineResult) -> str:
    head = f"{Path(result.path).name}: {result.outcome.label(result.source_precision or 'fp32')}"
    if result.selected is not None and result.speedup is not None and result.speedup_ci is not None:
        low, high = result.speedup_ci
        head += f" {result.selected.name} {result.speedup:.2f}x [{low:.2f}, {high:.2f}]"
    head += f" ({result.seconds:.1f} s)"
    return "\n".join([head, *(f"  - {reason}" for reason in result.reasons)])
