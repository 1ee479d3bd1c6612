"""Output for a person or for a script: Rich tables on a terminal, whole values on aligned lines off one, TSV, JSON.

A command builds its rows once, as cells of Rich markup, and `print_rows` picks the form: a Rich table on an
interactive terminal, plain aligned lines anywhere else (a pipe, a file, `TERM=dumb`), where no id, combo name or
path is ever wrapped or cut, so `augshard methods | grep nlp_keyboard` finds its line. `--format tsv` and
`--format json` are for scripts; each command's JSON document is described in docs/cli.md.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from augshard.core.errors import ConfigError

FORMATS = ("table", "tsv", "json")
# Warnings and notes go here in every format: stdout carries the result alone (a table, TSV or JSON).
# Never a Jupyter display: in a notebook what augshard says on stderr stays the cell's stderr (and a capture of it shows
# nothing: a Jupyter console displays even an empty buffer).
_stderr = Console(stderr=True, highlight=False, soft_wrap=True, force_jupyter=False)


def plural(n: int, word: str) -> str:
    """`word` for 1, `word`s otherwise (the words augshard counts all take an s)."""
    return word if n == 1 else word + "s"


def interactive(console: Console) -> bool:
    """A terminal that can redraw: live tables and boxes there; plain lines in pipes, files and dumb terminals."""
    return console.is_terminal and not console.is_dumb_terminal


def notice(message: str, kind: str = "note") -> None:
    """A `note:` or `warning:` line (`message` in Rich markup) on stderr, whatever the format and the terminal."""
    _stderr.print(f"[yellow]{kind}:[/yellow] {message}")


def tsv_cell(value: Any) -> Any:
    """A raw value as TSV writes it: None empty, a bool as true/false, anything else as it is."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    return fmt


def plain(cell: Any) -> str:
    """The text of a cell of Rich markup (or a renderable Text), without styles."""
    if isinstance(cell, Text):
        return cell.plain
    return Text.from_markup(str(cell)).plain


def print_rows(
    console: Console,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    fmt: str = "table",
    title: str | None = None,
    right: Sequence[str] = (),
    sections: Sequence[int] = (),
) -> None:
    """Rows of markup cells as a table (`fmt` table; a Rich table only on an interactive terminal), or rows of raw
    values as TSV (`fmt` tsv: the caller passes values, not markup).

    `right` names right-justified columns; `sections` are row indexes after which a table draws a rule.
    """
    if fmt == "tsv":
        write_tsv(columns, rows)
    elif interactive(console):
        table = Table(title=title, title_justify="left")
        for col in columns:
            table.add_column(col, justify="right" if col in right else "left", overflow="fold")
        for n, row in enumerate(rows):
            table.add_row(*[c if isinstance(c, Text) else str(c) for c in row], end_section=n in sections)
        console.print(table)
    else:
        for line in aligned(columns, rows, right, title):
            console.print(line, markup=False, highlight=False, soft_wrap=True)


def aligned(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[str] = (), title: str | None = None
) -> list[str]:
    """Plain lines: a header and one line per row, columns padded to their widest value, never cut."""
    cells = [[plain(c) for c in row] for row in rows]
    widths = [max([len(col), *(len(r[i]) for r in cells)]) for i, col in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if col in right else v.ljust(w) for v, w, col in zip(values, widths, columns, strict=True)]
        return "  ".join(parts).rstrip()

    out = [title] if title else []
    return [*out, line(list(columns)), *(line(r) for r in cells)]


def write_tsv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Tab-separated values with a header; cells are raw values (not markup: a `[` is a `[`), written as `tsv_cell`
    says; a tab or newline inside a value becomes a space."""

    def clean(value: Any) -> str:
        value = tsv_cell(value)
        text = value.plain if isinstance(value, Text) else str(value)
        return " ".join(text.replace("\t", " ").splitlines())

    sys.stdout.write("\t".join(columns) + "\n")
    for row in rows:
        sys.stdout.write("\t".join(clean(c) for c in row) + "\n")
    sys.stdout.flush()


def finite(value: Any) -> Any:
    """`value` with every NaN or infinity as None: JSON has no such numbers (Python would write `NaN`)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def write_json(document: Any) -> None:
    """One JSON document on stdout (never through Rich: no highlighting, no wrapping)."""
    sys.stdout.write(json.dumps(finite(document), indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


@contextlib.contextmanager
def captured_notices() -> Iterator[Any]:
    """Every `note:` and `warning:` line printed meanwhile, captured instead of printed (the API returns them);
    `.get()` on the yielded capture gives their text."""
    with _stderr.capture() as captured:  # the one console every notice goes through
        yield captured


def in_notebook() -> bool:
    """A Jupyter kernel (IPython's ZMQ shell), as opposed to a terminal IPython or a plain script."""
    ipython = sys.modules.get("IPython")  # never imported here: a notebook has it loaded already
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def stderr_console() -> Console:
    """The one console for what goes to stderr (notes, warnings, progress of method probes): what the API captures."""
    return _stderr
