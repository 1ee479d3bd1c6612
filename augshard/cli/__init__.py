"""The `augshard` command line (Typer): each command parses its flags and calls the room that does the work."""

from __future__ import annotations

import signal
import sys

from augshard.cli import catalogue, evaluate, export, run, run_files  # noqa: F401 - importing a module registers its commands
from augshard.cli.app import app, err_console

__all__ = ["app", "main"]


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        _ignore_late_signals()
        err_console.print("[red]interrupted[/red]")
        sys.exit(130)
    except SystemExit as exc:
        if exc.code in (128 + signal.SIGINT, 128 + signal.SIGTERM):
            _ignore_late_signals()
        raise


def _ignore_late_signals() -> None:
    """A run that was interrupted exits with its code (130, 143): a second Ctrl-C landing while the interpreter shuts
    down (Python puts back the default handlers then) would turn it into a death by signal, with no lock or queue
    left half-closed, but a different status. Its work is already stopped, so the late signal is ignored."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
