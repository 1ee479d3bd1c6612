"""The errors augshard reports to users: one line, a location, an exit code."""

from __future__ import annotations


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
