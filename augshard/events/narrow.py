"""Tables that fit a narrow terminal (80 columns): compact numbers (4.6k) and durations (12m), every column sized to
its content and never cut, one flexible column of names shortened with an ellipsis on one line."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich import box
from rich.cells import cell_len
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

NARROW_BELOW = 120  # a terminal narrower than this gets the compact table
MIN_NAME = 8  # the flexible column keeps at least this many cells
ELLIPSIS = "…"

# A flexible cell: (name, tails): the first tail (the most said first) that leaves the name `MIN_NAME` cells, the
# name shortened to fit beside it; no tail at all when none does. A tail is never cut.
Fit = tuple[str, tuple[str, ...]]


def compact(n: float) -> str:
    """A count in at most five characters, never cut: 987, 4.6k, 46k, 460k, 1.2M."""
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if abs(n) >= size * 0.9995:
            v = n / size
            return f"{v:.1f}{unit}" if abs(v) < 9.95 else f"{v:.0f}{unit}"
    return f"{n:.0f}"


def compact_duration(seconds: float | None) -> str:
    """A duration in whole units: 45s, 12m, 3h05m ("-" when unknown)."""
    if seconds is None:
        return "-"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{round(s / 60)}m" if s < 3570 else "1h00m"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def shorten(text: str, width: int) -> str:
    """`text` in `width` cells: whole, or cut with an ellipsis at its end."""
    if cell_len(text) <= width:
        return text
    out = ""
    for ch in text:
        if cell_len(out + ch) > width - 1:
            break
        out += ch
    return out + ELLIPSIS


def fit(cell: Fit, width: int) -> str:
    """A name and the longest of its tails that fit in `width` cells (see `Fit`)."""
    name, tails = cell
    for tail in tails:
        if cell_len(name + tail) <= width:
            return name + tail
        if width - cell_len(tail) >= min(MIN_NAME, cell_len(name)):
            return shorten(name, width - cell_len(tail)) + tail
    return shorten(name, width)


def fitted(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    width: int,
    flexible: int,
    right: Sequence[str] = (),
    title: str | None = None,
) -> Table:
    """A table in `width` cells: every column as wide as its widest cell (no wrap, nothing cut) but the `flexible`
    one, whose cells (`Fit`) take the room left. Cells: markup strings, Text, or a ProgressBar."""
    widths = [max([cell_len(h), *(_width(row[i]) for row in rows)]) for i, h in enumerate(headers)]
    room = width - sum(w for i, w in enumerate(widths) if i != flexible) - 2 * (len(headers) - 1)
    widths[flexible] = max(MIN_NAME, min(widths[flexible], room))
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                  collapse_padding=True)  # fmt: skip
    for h, w in zip(headers, widths, strict=True):
        table.add_column(h, justify="right" if h in right else "left", no_wrap=True, width=w, overflow="ellipsis")
    for row in rows:
        cells = list(row)
        cells[flexible] = Text(fit(cells[flexible], widths[flexible]))
        table.add_row(*cells)
    return table


def _width(cell: Any) -> int:
    if isinstance(cell, tuple):
        return cell_len(cell[0] + (cell[1][0] if cell[1] else ""))
    if isinstance(cell, ProgressBar):
        return cell.width or 0
    if isinstance(cell, Text):
        return cell.cell_len
    return Text.from_markup(str(cell)).cell_len
