"""The errors augshard reports to users: one line, a location, an exit code."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping


class AugshardError(Exception):
    """A problem the user can fix; the CLI prints it as one red line and exits with `exit_code`."""

    exit_code = 2
    cli_message: str | None = None  # the message in the CLI's words (its flags), when the API reworded it


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


# A flag in a message and the value that may follow it, a number or a path ("--num-shards 4", "--out runs/x.json");
# a flag that is the subject of its sentence ("--best must ...", "--folds: expected ...") is named bare.
_FLAG = re.compile(
    r"(?<![\w-])(--[a-z][a-z0-9-]*)( -?\d[\d,]*(?:\.\d+)?(?![\w.])| [^\s,;'\"]*/[^\s,;'\"]*)?( must\b|:)?"
)


def in_python_words(exc: AugshardError, arguments: Mapping[str, tuple[str, bool | None]]) -> None:
    """The message of an error the API raises, with each flag it names (`--force`, `--num-shards 4`) as the
    argument a Python caller gives (`force=True`, `num_shards=4`). `arguments`: flag -> (argument, the value a
    switch sets: `--no-steal` is `steal=False`; None for a flag that takes a value).
    The CLI's own words stay in `cli_message`, which the CLI prints."""
    message = str(exc)

    def argument(m: re.Match[str]) -> str:
        flag, value, subject = m.group(1), (m.group(2) or "").strip(), m.group(3) or ""
        if flag not in arguments:
            return m.group(0)
        name, switch = arguments[flag]
        if switch is not None:
            return f"{name}={switch}{' ' + value if value else ''}{subject}"
        if value:
            return f"{name}={value if value[0].isdigit() or value[0] == '-' else repr(value)}{subject}"
        return f"{name}{subject}" if subject else f"{name}="

    said = _FLAG.sub(argument, message)
    if said != message:
        exc.cli_message = exc.cli_message or message
        exc.args = (said, *exc.args[1:])


def cli_words(exc: AugshardError) -> str:
    """An error as the CLI says it: with its flags, even when the API it called reworded it for Python."""
    return exc.cli_message or str(exc)
