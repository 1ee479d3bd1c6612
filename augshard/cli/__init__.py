"""The `augshard` command line (Typer): each command parses its flags and calls the room that does the work."""

from __future__ import annotations

import sys

from augshard.cli import catalogue, evaluate, export, run, run_files  # noqa: F401 - importing a module registers its commands
from augshard.cli.app import app, err_console

__all__ = ["app", "main"]


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("[red]interrupted[/red]")
        sys.exit(130)
