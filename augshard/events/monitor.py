"""Shard statuses as the table (or plain lines) `run` shows live and `monitor` shows, as TSV rows or a JSON
document; `follow` for `monitor --follow`. Each renderer is a plain function of the state it is given."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from augshard.events.narrow import NARROW_BELOW, Fit, compact, compact_duration, fitted
from augshard.events.output import fmt_duration, interactive, plural, print_rows, stderr_console, write_json
from augshard.events.status import EventsWatcher, ShardStatus
from augshard.events.stream import LOADING
from augshard.storage.outcome import ShardState

GLYPH = {
    ShardState.PENDING: "⏳",
    ShardState.RUNNING: "▶",
    ShardState.DONE: "✓",
    ShardState.FAILED: "✗",
    ShardState.STOPPED: "⏹",
    ShardState.DEAD: "☠",
    ShardState.STALLED: "☠",
    ShardState.CRASHED: "☠",
}
STYLE = {
    ShardState.PENDING: "dim",
    ShardState.RUNNING: "cyan",
    ShardState.DONE: "green",
    ShardState.FAILED: "red",
    ShardState.STOPPED: "yellow",
    ShardState.DEAD: "bold red",
    ShardState.STALLED: "red",
    ShardState.CRASHED: "bold red",
}
SHOWN = tuple(s for s in ShardState if s is not ShardState.CRASHED)  # what events and `judge` can tell
PLAIN_INTERVAL_S = 10.0
LIVE_REFRESH_S = 1.0


def state_label(st: ShardStatus) -> str:
    return f"{GLYPH.get(st.state, '?')} {st.state.value}"


def current_label(st: ShardStatus, now: float | None = None) -> str:
    doing = ""
    if st.current:
        rows = f" ({st.current_done:,}/{st.current_total:,} rows" if st.current_total else " (setting up"
        rate = st.rate if st.state is ShardState.RUNNING else None
        speed = f", {rate:,.0f} rows/s" if rate is not None and rate >= 10 else f", {rate:.1f} rows/s" if rate else ""
        speed = ", from cache" if st.from_cache else speed  # a speed of cache lookups says nothing of the methods
        # The phase, unless the ETA column already says it (building methods).
        phase = f", {st.phase}" if st.phase and st.current_total and st.phase != st.measuring else ""
        doing = f"{st.current}{rows}{speed}{phase})"
    if st.state is ShardState.DEAD:
        return f"process {st.pid} is gone" + (f" during {doing}" if doing else "")
    if st.state is ShardState.STALLED:
        silent = f" for {fmt_duration(now - st.last_ts)}" if now is not None and st.last_ts is not None else ""
        return f"no event{silent}" + (f" during {doing}" if doing else "")
    if st.state is ShardState.PENDING:
        return "waiting for its process"
    return doing


def eta_label(st: ShardStatus, now: float, short: bool = False) -> str:
    """The time left (or taken); `short`: in whole units and words that fit a narrow terminal."""
    if st.state.ended and short:  # the state says it ended: the time it took alone
        return compact_duration(st.duration)
    if st.state.ended:
        return f"took {fmt_duration(st.duration)}" if st.duration is not None else "-"
    duration = compact_duration if short else fmt_duration
    eta = st.eta(now)
    if st.state is ShardState.RUNNING and eta is None:
        # Building methods, or timing the first rows: no throughput to go by yet.
        return SHORT_MEASURING.get(st.measuring, st.measuring) if short else st.measuring
    return duration(eta)


def overall_line(statuses: Sequence[ShardStatus]) -> str:
    n = {s: sum(1 for st in statuses if st.state is s) for s in SHOWN}
    line = (
        f"Overall: {n[ShardState.DONE]} completed | {n[ShardState.RUNNING]} running | {n[ShardState.FAILED]} failed | "
        f"{n[ShardState.PENDING]} pending"
    )
    dead, stopped = n[ShardState.DEAD] + n[ShardState.STALLED], n[ShardState.STOPPED]
    return line + (f" | {stopped} stopped" if stopped else "") + (f" | {dead} dead" if dead else "")


def total_line(statuses: Sequence[ShardStatus]) -> str:
    """The run's combos: the plan's count (each shard's list as planned, whoever runs it) and how many finished."""
    total = sum(st.combos_planned or st.combos_total for st in statuses)
    rows = sum(st.rows for st in statuses)
    known = all(st.state is not ShardState.PENDING for st in statuses)
    finished = sum(st.combos_finished for st in statuses)
    finished = min(total, finished) if known else finished
    of = f"/{total}" if known else ""
    return f"Total: {finished}{of} {plural(total if known else finished, 'combo')} processed | {rows:,} rows generated"


def run_eta(statuses: Sequence[ShardStatus], now: float) -> float | None:
    """The run ends with its slowest shard."""
    etas = [st.eta(now) for st in statuses if st.state is ShardState.RUNNING]
    return max(etas) if etas and None not in etas else None


def render(statuses: Sequence[ShardStatus], now: float | None = None, title: str | None = None) -> Group:
    """The table (laid out for the width it is drawn at): one row per shard, then the overall and total lines."""
    now = time.time() if now is None else now
    table = ShardTable(statuses, now, title)
    footer = Text(f"{overall_line(statuses)}\n{total_line(statuses)}")
    eta = run_eta(statuses, now)
    if eta is not None:
        footer.append(f" | ETA {fmt_duration(eta)}")
    for line in damaged_lines(statuses):
        footer.append(f"\n{line}", style="yellow")
    return Group(table, footer)


class ShardTable:
    """The shards' table, laid out when it is drawn, for the console's width: on a narrow terminal (80 columns)
    every column stays, numbers compact and whole (4.6k, 12m), combo names on one line, shortened with an ellipsis."""

    def __init__(self, statuses: Sequence[ShardStatus], now: float, title: str | None) -> None:
        self.statuses, self.now, self.title = statuses, now, title

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if options.max_width < NARROW_BELOW:
            yield self.narrow(options.max_width)
        else:
            yield self.wide()

    def wide(self) -> Table:
        table = Table(title=self.title, title_justify="left", expand=False)
        table.add_column("shard", justify="right")
        table.add_column("state", no_wrap=True)
        table.add_column("progress", no_wrap=True)
        table.add_column("%", justify="right")
        table.add_column("combos", justify="right")
        table.add_column("current combo", overflow="fold", min_width=13, max_width=60)
        table.add_column("rows", justify="right")
        table.add_column("ETA", justify="right", no_wrap=True)
        for st in self.statuses:
            pct = st.fraction * 100
            table.add_row(
                str(st.shard),
                Text(state_label(st), style=STYLE.get(st.state, "")),
                ProgressBar(total=100, completed=pct, width=16),
                f"{pct:.0f}%",
                combos_label(st),
                Text(current_label(st, self.now)),
                f"{st.rows:,}",
                eta_label(st, self.now),
            )
        return table

    def narrow(self, width: int) -> Table:
        rows = [
            [
                str(st.shard),
                Text(state_label(st), style=STYLE.get(st.state, "")),
                ProgressBar(total=100, completed=st.fraction * 100, width=NARROW_BAR),
                f"{st.fraction * 100:.0f}%",
                combos_label(st),
                current_fit(st, self.now),
                compact(st.rows),
                eta_label(st, self.now, short=True),
            ]
            for st in self.statuses
        ]
        return fitted(TABLE_COLUMNS, rows, width, TABLE_COLUMNS.index("current combo"), TABLE_RIGHT, self.title)


TABLE_COLUMNS = ("shard", "state", "progress", "%", "combos", "current combo", "rows", "ETA")
TABLE_RIGHT = ("shard", "%", "combos", "rows", "ETA")
NARROW_BAR = 8  # as wide as its header
SHORT_MEASURING = {LOADING: "loading", "timing the first rows": "timing", "setting up": "starting"}


def combos_label(st: ShardStatus) -> str:
    return f"{st.combos_finished}/{st.combos_total}" if st.state is not ShardState.PENDING else "-"


def current_fit(st: ShardStatus, now: float) -> Fit:
    """The current combo on a narrow terminal: its name (shortened as the room asks) and a tail of compact, whole
    numbers (rows done of its rows, the speed, then the phase, each left out when there is no room for it); or what
    is wrong with the shard."""
    if st.state is ShardState.PENDING:
        return ("waiting to start", ())
    if st.state is ShardState.DEAD:
        if not st.current:
            return ("process gone", (f" (pid {st.pid})",))
        return (st.current, (f" (pid {st.pid} gone)", " (gone)"))
    if st.state is ShardState.STALLED:
        silent = compact_duration(now - st.last_ts) if st.last_ts is not None else "-"
        return (st.current or "no event", (f" (silent {silent})",))
    if not st.current:
        return ("", ())
    if not st.current_total:
        return (st.current, (" (setting up)",))
    rate = st.rate if st.state is ShardState.RUNNING else None
    rows = f"{compact(st.current_done)}/{compact(st.current_total)}"
    if st.from_cache:  # a speed of cache lookups says nothing of the methods
        return (st.current, (f" ({rows}, from cache)", " (from cache)"))
    speed = f", {compact(rate)}/s" if rate is not None and rate >= 1 else ""
    phase = f", {st.phase}" if st.phase and st.phase != st.measuring else ""
    return (st.current, (f" ({rows}{speed}{phase})", f" ({rows}{speed})", f" ({rows})"))


def damaged_lines(statuses: Sequence[ShardStatus]) -> list[str]:
    """One line per shard whose stream had lines that are no event (skipped, so its row may undercount)."""
    return [
        f"shard {st.shard}: skipped {len(st.damaged)} damaged {plural(len(st.damaged), 'line')} of its event stream "
        f"(first: {st.damaged[0]})"
        for st in statuses
        if st.damaged
    ]


STATUS_COLUMNS = ("shard", "state", "%", "combos", "current combo", "rows", "ETA")
# `monitor --format tsv`: scalar fields of the JSON document's shards, raw (docs/cli.md).
STATUS_TSV = ("shard", "state", "fraction", "combos_total", "combos_done", "combos_failed", "combos_resumed",
              "combos_stopped", "current", "current_rows_done", "current_rows_total", "rows", "rejected", "eta_s",
              "duration_s", "pid", "host", "plan_fingerprint")  # fmt: skip


def status_rows(statuses: Sequence[ShardStatus], now: float) -> list[list[str]]:
    """The table's rows without the progress bar (for plain lines)."""
    return [
        [
            str(st.shard),
            f"[{STYLE.get(st.state, '')}]{state_label(st)}[/]",
            f"{st.fraction * 100:.0f}%",
            f"{st.combos_finished}/{st.combos_total}" if st.state is not ShardState.PENDING else "-",
            escape(current_label(st, now)),
            f"{st.rows:,}",
            eta_label(st, now),
        ]
        for st in statuses
    ]


def status_document(statuses: Sequence[ShardStatus], now: float) -> dict[str, Any]:
    """`monitor --format json`: every shard's state as told by its events (schema in docs/cli.md)."""
    shards = [
        {
            "shard": st.shard,
            "state": st.state.value,
            "fraction": round(st.fraction, 4),
            "combos_total": st.combos_total,
            "combos_done": st.combos_done,
            "combos_failed": st.combos_failed,
            "combos_resumed": st.combos_resumed,
            "combos_stopped": st.combos_stopped,
            "current": st.current,
            "current_rows_done": st.current_done,
            "current_rows_total": st.current_total,
            "rows": st.rows,
            "rejected": st.rejected,
            "eta_s": None if st.eta(now) is None else round(st.eta(now) or 0.0, 1),
            "duration_s": st.duration,
            "pid": st.pid,
            "host": st.host,
            "plan_fingerprint": st.plan_fingerprint,
            "failures": st.failures,
            "damaged_lines": len(st.damaged),
        }
        for st in statuses
    ]
    counts = {state.value: sum(1 for st in statuses if st.state is state) for state in SHOWN}
    return {"shards": shards, "states": counts, "rows": sum(st.rows for st in statuses)}


def print_statuses(console: Console, statuses: Sequence[ShardStatus], fmt: str, title: str | None = None) -> None:
    """A snapshot of the shards: the Rich table on a terminal, aligned lines elsewhere, or TSV / JSON."""
    now = time.time()
    if fmt == "json":
        write_json(status_document(statuses, now))
    elif fmt == "tsv":
        shards = status_document(statuses, now)["shards"]
        print_rows(console, STATUS_TSV, [[s[col] for col in STATUS_TSV] for s in shards], "tsv")
    elif fmt == "table" and interactive(console):
        console.print(render(statuses, now, title))
    else:
        print_rows(console, STATUS_COLUMNS, status_rows(statuses, now), fmt, title, right=("shard", "%", "rows"))
        if fmt == "table":
            console.print(overall_line(statuses), markup=False)
            console.print(total_line(statuses), markup=False)
    if fmt == "tsv" or not (fmt == "json" or interactive(console)):  # the live table shows them in its footer
        for line in damaged_lines(statuses):
            stderr_console().print(line, markup=False, highlight=False)


def plain_line(st: ShardStatus, now: float) -> str:
    """One shard as a line a log file or CI page can show (no colours, no redraws)."""
    parts = [f"shard {st.shard} {state_label(st):<10}", f"{st.fraction * 100:3.0f}%"]
    if st.state is not ShardState.PENDING:
        parts.append(f"combos {st.combos_finished}/{st.combos_total}")
    current = current_label(st, now)
    if current:
        parts.append(current)
    parts.append(f"{st.rows:,} rows")
    eta = eta_label(st, now)
    if eta != "-":
        parts.append(f"ETA {eta}" if eta[:1].isdigit() else eta)
    return "  ".join(parts)


def all_finished(statuses: Sequence[ShardStatus]) -> bool:
    return bool(statuses) and all(st.state.finished for st in statuses)


class ProgressView:
    """The live table on a terminal; plain lines (each shard's changes, and every `interval` s) elsewhere.

    `refresh()` is cheap (event files are read incrementally), so callers may call it every second.
    """

    def __init__(
        self,
        console: Console,
        watcher: EventsWatcher,
        live: bool = True,
        interval: float = PLAIN_INTERVAL_S,
        title: str | None = None,
        override: Callable[[list[ShardStatus]], list[ShardStatus]] | None = None,
    ) -> None:
        self.console = console
        self.watcher = watcher
        self.live = live and interactive(console)
        self.interval = interval
        self.title = title
        self.override = override
        self.started = time.time()
        self._live: Any = None
        self._last_plain = 0.0
        self._seen: dict[int, tuple[str, int]] = {}
        self._printed: dict[int, str] = {}
        self.statuses: list[ShardStatus] = []

    def __enter__(self) -> ProgressView:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._last_plain = time.time()
        if self.live:
            from rich.live import Live

            self._live = Live(
                self._renderable(), console=self.console, refresh_per_second=2, transient=False, auto_refresh=False
            )
            self._live.start(refresh=True)

    def stop(self) -> None:
        if self._live is not None:
            self._live.update(self._renderable(), refresh=True)
            self._live.stop()
            self._live = None

    def _poll(self) -> list[ShardStatus]:
        statuses = self.watcher.statuses()
        if self.override is not None:
            statuses = self.override(statuses)
        self.statuses = statuses
        return statuses

    def _renderable(self) -> Group:
        return render(self._poll(), time.time(), self.title)

    def refresh(self, force: bool = False) -> None:
        if self._live is not None:
            self._live.update(self._renderable(), refresh=True)
            return
        now = time.time()
        statuses = self._poll()
        stamp = f"[{now - self.started:6.0f}s]"
        changed = []
        for st in statuses:
            key = (st.state, st.combos_finished)
            if self._seen.get(st.shard) != key:
                self._seen[st.shard] = key
                if st.state is not ShardState.PENDING or force:
                    changed.append(st)
        periodic = force or now - self._last_plain >= self.interval
        shown = statuses if periodic else changed
        lines = []
        for st in shown:
            line = plain_line(st, now)
            # A finished shard's line never changes: once is enough.
            if not (st.state.finished and self._printed.get(st.shard) == line):
                lines.append(line)
            self._printed[st.shard] = line
        if periodic:
            self._last_plain = now
            lines += [overall_line(statuses), total_line(statuses)]
        for line in lines:
            self.console.print(f"{stamp} {escape(line)}", highlight=False, soft_wrap=True)


def follow(
    console: Console, watcher: EventsWatcher, interval: float, live: bool, patience: float, final_table: bool = True
) -> list[ShardStatus]:
    """Refresh until every shard is finished (done, failed, dead or stalled); returns the last statuses.

    A shard still pending when every other is finished and nothing was written for `patience` s will never start
    (its run was stopped): following ends then too.
    """
    view = ProgressView(console, watcher, live=live, interval=interval)
    with view:
        while True:
            view.refresh()
            statuses = view.statuses
            if all_finished(statuses):
                break
            newest = watcher.newest_event()
            if (
                statuses
                and not any(st.state is ShardState.RUNNING for st in statuses)
                and any(st.state is not ShardState.PENDING for st in statuses)
                and newest is not None
                and time.time() - newest > patience
            ):
                break
            time.sleep(interval if not view.live else min(interval, LIVE_REFRESH_S))
    if not view.live and final_table:
        print_statuses(console, view.statuses, "table")
    return view.statuses
