"""The Typer application, global options, exit codes and logging set-up.

Exit codes everywhere: 0 ok; 1 no result (not found, no decision yet, a
processed model ended in ``error``); 2 usage or configuration error;
3 environment unavailable (catalog unreachable, folder unreadable).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Annotated, Any

import click
import typer

from dqd import __version__
from dqd.errors import DqdError
from dqd.pathtext import display_on
from dqd.settings import Settings, load

# Typer >= 0.25 vendors click: its parameter errors (exit 2) do not derive from click's.
_TyperClickException: Any
try:
    from typer._click.exceptions import ClickException as _TyperClickException
except ImportError:  # an older typer uses click itself
    _TyperClickException = click.ClickException

EXIT_OK = 0
EXIT_NO_RESULT = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3

app = typer.Typer(
    name="dqd",
    help="Dynamic-quantization daemon for ONNX model repositories.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Catalog schema migrations.", no_args_is_help=True)
config_app = typer.Typer(help="Effective configuration.", no_args_is_help=True)
jobs_app = typer.Typer(help="The job queue (plain `dqd jobs` lists jobs).")
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")
app.add_typer(jobs_app, name="jobs")

# Command modules, each owning one area; imported for their registrations.
_COMMAND_MODULES = (
    "dqd.cli.admin",
    "dqd.cli.process",
    "dqd.cli.daemon",
    "dqd.cli.status",
    "dqd.cli.query",
    "dqd.cli.serving",
    "dqd.cli.retention",
)


class State:
    """Options given before the command, resolved lazily into settings."""

    def __init__(self) -> None:
        self.config_file: Path | None = None
        self.overrides: dict[str, Any] = {}
        self._settings: Settings | None = None

    def settings(self, **overrides: Any) -> Settings:
        if overrides:
            return load(self.config_file, {**self.overrides, **overrides})
        if self._settings is None:
            self._settings = load(self.config_file, self.overrides)
        return self._settings


def state(ctx: typer.Context) -> State:
    root = ctx.find_root()
    if not isinstance(root.obj, State):
        root.obj = State()
    return root.obj


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"dqd {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="TOML configuration file (also DQD_CONFIG).", show_default=False),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", help="Catalog URL (also DQD_DATABASE_URL).", show_default=False),
    ] = None,
    log_level: Annotated[str | None, typer.Option("--log-level", help="debug, info, warning, error.")] = None,
    log_format: Annotated[str | None, typer.Option("--log-format", help="text or json.")] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    st = state(ctx)
    st.config_file = config
    st.overrides.update({"database_url": database_url, "log_level": log_level, "log_format": log_format})


def configure_logging(settings: Settings) -> None:
    """Only the CLI configures handlers; library code just logs."""
    from dqd.logs import configure

    configure(settings.log_level, settings.log_format)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8 prints as \xNN, never fails
        display_on(stream)
    if args == ["--version"]:  # answered before the command modules (and the catalog code) load
        typer.echo(f"dqd {__version__}")
        sys.exit(EXIT_OK)
    for module in _COMMAND_MODULES:
        importlib.import_module(module)
    command = typer.main.get_command(app)
    _hide_flag_metavars(command)
    try:
        # Without standalone mode click returns typer.Exit's code instead of exiting.
        code = command.main(args=args, prog_name="dqd", standalone_mode=False)
    except (click.exceptions.Abort, typer.Abort):
        typer.echo("aborted", err=True)
        sys.exit(130)
    except (click.ClickException, _TyperClickException) as exc:
        hint = _global_option_hint(getattr(exc, "option_name", None), args)
        if hint:
            # click's guess among the command's own options ("Possible options: ...") misleads here.
            vars(exc).update(message=f"{exc.message}\n{hint}", possibilities=None)
        exc.show()
        sys.exit(EXIT_USAGE)
    except DqdError as exc:
        typer.echo(f"dqd: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else EXIT_OK)


GLOBAL_OPTIONS = ("--config", "-c", "--database-url", "--log-level", "--log-format", "--version")


def _global_option_hint(option: str | None, args: list[str]) -> str | None:
    """``dqd run --config x.toml`` → the same line with the option moved before the command."""
    if option is None or option not in GLOBAL_OPTIONS:
        return None
    at = next((i for i, arg in enumerate(args) if arg == option or arg.startswith(option + "=")), None)
    if at is None:
        return None
    takes_value = args[at] == option and option != "--version"
    moved = args[at : at + 2] if takes_value else args[at : at + 1]
    rest = args[:at] + args[at + len(moved) :]
    return "Hint: global options go before the command: " + " ".join(["dqd", *moved, *rest])


def _hide_flag_metavars(command: Any) -> None:
    """Typer's rich help shows ``<bool>`` after every flag, though a flag takes no value."""
    params = list(getattr(command, "params", []))
    get_help_option = getattr(command, "get_help_option", None)
    if get_help_option is not None:
        params.append(get_help_option(typer.Context(command)))
    for param in params:
        if getattr(param, "is_flag", False) and getattr(param, "metavar", None) is None:
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _hide_flag_metavars(sub)
