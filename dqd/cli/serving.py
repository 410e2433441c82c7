"""What a serving side sees: ``dqd freeze|unfreeze|rollback`` and ``dqd notifications``.

Freezes change what ``dqd best``, the API and the publisher hand out; each
change that ships another file writes notifications in its transaction and
is published at once when ``publish_dir`` is set (a running daemon's scans
would get there too). A running daemon sends the notifications.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from dqd.catalog import Catalog
from dqd.catalog.freezes import FreezeChange
from dqd.catalog.outbox import Notification
from dqd.cli.app import EXIT_NO_RESULT, app, configure_logging, state
from dqd.cli.daemon import _catalog
from dqd.cli.output import Column, choose_format, emit, jsonable
from dqd.cli.refs import model_ref
from dqd.hostinfo import this_host_class
from dqd.settings import Settings

notifications_app = typer.Typer(help="The webhook outbox (plain `dqd notifications` lists it).")
app.add_typer(notifications_app, name="notifications")

ModelArg = Annotated[
    str, typer.Argument(help="Path relative to the watched folder, file name or sha256 prefix.")
]
HostClassOpt = Annotated[
    str | None, typer.Option("--host-class", help="Default: this host's class.", show_default=False)
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON.")]


def _publish(catalog: Catalog, settings: Settings, change: FreezeChange) -> None:
    """Ship the change to the publish folder now, not at the daemon's next scan."""
    if settings.publish_dir is None:
        return
    from dqd.daemon.publisher import Publisher

    configure_logging(settings)  # a copy that fails is logged (publish_failed), as in the daemon
    Publisher(
        catalog,
        root=Path(os.path.abspath(settings.watch_dir)),
        publish_dir=settings.publish_dir,
        host_class=change.host_class,
        include=settings.watch.include,
    ).publish_missing({change.sha256})


def _say(change: FreezeChange, verb: str, as_json: bool, *, webhooks: bool) -> None:
    if as_json:
        typer.echo(json.dumps(jsonable(change)))
        return
    previous = change.previous_decision_id
    was = f" (was decision {previous})" if previous not in (None, change.decision_id) else ""
    notified = f"; {change.notified} notification(s) queued" if change.notified else ""
    typer.echo(f"{change.model} on {change.host_class}: {verb} decision {change.decision_id}{was}{notified}")
    if not webhooks and previous != change.decision_id:
        # Rows are addressed by the configuration of the process that writes them: this one's has none.
        typer.echo(
            "dqd: note: no notifications written: notifications.webhooks is not set for this command "
            "(give it the daemon's configuration: --config or DQD_NOTIFICATIONS__WEBHOOKS)",
            err=True,
        )


def _change(
    ctx: typer.Context,
    model: str,
    host_class: str | None,
    act: Callable[[Catalog, str, str], FreezeChange],
    verb: str,
    as_json: bool,
) -> None:
    settings = state(ctx).settings()
    with _catalog(settings, create=False) as catalog:
        change = act(catalog, model_ref(model, settings.watch_dir), host_class or this_host_class(settings))
        _publish(catalog, settings, change)
    _say(change, verb, as_json, webhooks=bool(settings.notifications.webhooks))


@app.command("freeze")
def freeze_cmd(
    ctx: typer.Context,
    model: ModelArg,
    decision: Annotated[
        int | None,
        typer.Option(
            "--decision",
            help="Ship this decision's file (default: the one shipped now).",
            show_default=False,
        ),
    ] = None,
    host_class: HostClassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Keep shipping one decision's file across requantizations, until `dqd unfreeze`."""

    def freeze_at(catalog: Catalog, ref: str, cls: str) -> FreezeChange:
        return catalog.freeze(ref, cls, decision_id=decision)

    _change(ctx, model, host_class, freeze_at, "frozen at", as_json)


@app.command("unfreeze")
def unfreeze_cmd(
    ctx: typer.Context, model: ModelArg, host_class: HostClassOpt = None, as_json: JsonOpt = False
) -> None:
    """Ship the latest decision's file again."""
    _change(ctx, model, host_class, Catalog.unfreeze, "follows the latest,", as_json)


@app.command("rollback")
def rollback_cmd(
    ctx: typer.Context, model: ModelArg, host_class: HostClassOpt = None, as_json: JsonOpt = False
) -> None:
    """Ship the previous decision's file (the newest earlier one that ships another file), frozen there."""
    _change(ctx, model, host_class, Catalog.rollback, "rolled back to", as_json)


_COLUMNS = [
    Column("ID", lambda n: n.id),
    Column("EVENT ID", lambda n: n.event_id, lambda v: str(v)[:8]),
    Column("EVENT", lambda n: n.event),
    Column("MODEL", lambda n: n.model),
    Column("CLASS", lambda n: n.host_class),
    Column("STATE", lambda n: n.state),
    Column("ATTEMPTS", lambda n: n.attempts),
    Column("URL", lambda n: n.url),
    Column("LAST ERROR", lambda n: n.last_error or ""),
]


@notifications_app.callback(invoke_without_command=True)
def notifications_list(
    ctx: typer.Context,
    failed: Annotated[
        bool, typer.Option("--failed", help="Only those given up (retry them with `retry`).")
    ] = False,
    pending: Annotated[bool, typer.Option("--pending", help="Only those not delivered yet.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many, newest first.")] = 100,
    as_json: JsonOpt = False,
    csv: Annotated[bool, typer.Option("--csv", help="CSV with a header row.")] = False,
) -> None:
    """List webhook notifications, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    state_filter = "failed" if failed else "pending" if pending else None
    with _catalog(state(ctx).settings(), create=False) as catalog:
        rows: list[Notification] = catalog.notifications(state=state_filter, limit=limit)
    emit(rows, _COLUMNS, choose_format(as_json, csv))


@notifications_app.command("deliver")
def notifications_deliver(ctx: typer.Context) -> None:
    """Send what is due now (a running daemon does this by itself). Exit 1 if any call failed."""
    from dqd.daemon.notifier import deliver_due

    settings = state(ctx).settings()
    with _catalog(settings, create=False) as catalog:
        outcome = deliver_due(catalog, settings.notifications)
    typer.echo(f"delivered {outcome.delivered}, to retry {outcome.retrying}, given up {outcome.failed}")
    if outcome.retrying or outcome.failed:
        raise typer.Exit(EXIT_NO_RESULT)


@notifications_app.command("retry")
def notifications_retry(
    ctx: typer.Context,
    ids: Annotated[
        list[int] | None, typer.Argument(help="Notification ids (default: every failed one).")
    ] = None,
) -> None:
    """Send failed notifications again (after fixing the receiver or the URL)."""
    with _catalog(state(ctx).settings(), create=False) as catalog:
        count = catalog.retry_failed_notifications(ids or None)
    typer.echo(f"{count} notification(s) due again")
