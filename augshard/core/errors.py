"""The errors augshard reports to users: one line, a location, an exit code."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class AugshardError(Exception):
    """A problem the user can fix; the CLI prints it as one red line and exits with `exit_code`."""

    exit_code = 2


class ConfigError(AugshardError):
    """A bad flag, config file or catalogue."""


class InputError(AugshardError):
    """A missing, unreadable or malformed input dataset."""


class MethodError(AugshardError):
    """An unknown augmentation method, or one that cannot be built here."""


class OutputError(AugshardError):
    """An output root that cannot be written, or shard manifests that do not belong together."""


def unknown_name(name: str, known: Iterable[str], what: str) -> str:
    """ "unknown <what> '<name>'", with the closest known name (or every one) to say what was meant."""
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(sorted(known))}"
    return f"unknown {what} '{name}' ({hint})"
