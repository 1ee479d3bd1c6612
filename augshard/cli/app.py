"""The Typer app of the `augshard` command line, its consoles, and what every command shares: one-line user errors,
the --format option, the options of declared settings, completion of method ids."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from augshard.core.config import DEFAULT_METHODS_CONFIG, resolve_conf_path
from augshard.core.errors import AugshardError, cli_words
from augshard.core.settings import REQUIRED, Setting
from augshard.events.output import FORMATS, notice
from augshard.methods.catalogue import load_catalogue

# The order `augshard --help` lists the commands in: the way a user meets them.
COMMANDS = ("run", "monitor", "merge", "verify", "evaluate", "report", "export", "methods", "prepare")


class _InOrder(TyperGroup):
    def list_commands(self, ctx: Any) -> list[str]:
        known = super().list_commands(ctx)
        return [c for c in COMMANDS if c in known] + [c for c in known if c not in COMMANDS]


app = typer.Typer(
    cls=_InOrder,
    add_completion=True,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Many augmented variants of a labelled text dataset: sharded, resumable, deterministic.",
)
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def method_ids(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion of method ids (the catalogue of --methods-config, else the shipped one), after the last
    comma of a list."""
    try:
        path = resolve_conf_path(ctx.params.get("methods_config"), DEFAULT_METHODS_CONFIG)
        ids = sorted(load_catalogue(path))
    except AugshardError:
        return []
    done, _, last = incomplete.rpartition(",")
    prefix = done + "," if done else ""
    return [prefix + i for i in [*ids, "all"] if i.startswith(last)]


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """An AugshardError is the user's to fix: one red line, exit code 2, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            code = fn(*args, **kwargs)
        except AugshardError as exc:
            _refuse(exc)
        except OSError as exc:  # the disk or the system said no outside a combo: one line, a run-time failure
            where = f" ({exc.filename})" if exc.filename else ""
            err_console.print(f"[bold red]error:[/bold red] {escape(exc.strerror or str(exc))}{where}", soft_wrap=True)
            raise typer.Exit(1) from None
        if code:
            raise typer.Exit(code)
        return code

    return wrapper


def _refuse(exc: AugshardError) -> None:
    err_console.print(f"[bold red]error:[/bold red] {escape(cli_words(exc))}", soft_wrap=True)
    raise typer.Exit(exc.exit_code) from None


def option(s: Setting, **extra: Any) -> Any:
    """The Typer option of a declared setting: its flags, its help with the default it declares, its value as its
    type (a bad number is one line and exit 2, as every user error). Not given, it is None (a flag: False), so the
    config file or the record's default decides; a setting without a default is required."""
    if s.base is bool:
        return typer.Option(False, *s.flags, help=s.help_text, **extra)
    default = ... if s.default is REQUIRED else None
    return typer.Option(default, *s.flags, help=s.help_text, **_parsed(s), **extra)


def flag_value(s: Setting, value: Any) -> Any:
    """What an option of `option` gave: None when not given; a flag given turns its setting from its default."""
    if s.base is bool:
        return (not s.default) if value else None
    if s.repeatable:  # each given value may itself be comma-separated: the setting's parser splits them
        return ",".join(value) if value else None
    return value


def old_option(s: Setting) -> Any:
    """A renamed setting's old flag, hidden, parsed as the new one (`renamed` says so when it is used)."""
    return typer.Option(None, *s.old_flags, hidden=True, help=f"Old spelling of {s.flag}.", **_parsed(s))


def _parsed(s: Setting) -> dict[str, Any]:
    if s.base not in (int, float):
        return {}

    def parse(text: Any) -> Any:
        """A number (or 'auto', kept as the word), else the one-line error of `user_errors`: Typer's own usage
        error would be four lines."""
        if s.auto and str(text).strip().lower() == "auto":
            return "auto"
        try:
            return s.coerce(text)
        except AugshardError as exc:
            _refuse(exc)

    kind = "INTEGER" if s.base is int else "FLOAT"
    return {"parser": parse, "metavar": f"{kind}|auto" if s.auto else kind}


FORMAT_HELP = "table (a table on a terminal, whole values on aligned lines off one) | tsv | json."


def format_option(help: str = FORMAT_HELP) -> Any:
    return typer.Option("table", "--format", help=help, autocompletion=lambda: list(FORMATS))


def renamed(old: str, old_value: Any, new: str, value: Any, why: str) -> Any:
    """An option's old spelling, still taken for one release: its value wins when given, with one note saying so."""
    if old_value is None:
        return value
    notice(f"{old} is now {new} ({why}); the old spelling goes in the next release", "note")
    return old_value
