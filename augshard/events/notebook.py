"""Typed results in a notebook: `Tabular`, one row per combo as a pandas DataFrame (`to_pandas()`) and as the small
escaped HTML table Jupyter displays (`_repr_html_()`), both from the same rows the result gives."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

HTML_ROWS = 40  # rows a notebook shows; `to_pandas()` has them all


class Tabular:
    """A result a notebook shows as a table: the class gives `table_rows()` (one mapping per row, the same keys in
    each) and `table_caption()`; the DataFrame and the HTML are derived here, once for every result."""

    def table_rows(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def table_caption(self) -> str:
        return type(self).__name__

    def to_pandas(self) -> Any:
        """The rows as a pandas DataFrame (one row per combo; pandas is imported only now)."""
        import pandas as pd  # heavy (0.3 s): loaded when a table is asked for, not when augshard is imported

        rows = self.table_rows()
        return pd.DataFrame(rows, columns=list(rows[0]) if rows else None)

    def _repr_html_(self) -> str:
        return html_table(self.table_caption(), self.table_rows())


def html_table(caption: str, rows: Sequence[Mapping[str, Any]], limit: int = HTML_ROWS) -> str:
    """A plain HTML table (every value escaped; no colours, no terminal codes) with a caption, at most `limit`
    rows and a last line saying how many more there are."""
    columns = list(rows[0]) if rows else []
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = [
        "<tr>" + "".join(f"<td>{html.escape(_cell(row[c]))}</td>" for c in columns) + "</tr>" for row in rows[:limit]
    ]
    if len(rows) > limit:
        more = f"… {len(rows) - limit:,} more (to_pandas() has them all)"
        body.append(f'<tr><td colspan="{len(columns)}">{more}</td></tr>')
    return (
        f"<table><caption>{html.escape(caption)}</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)
