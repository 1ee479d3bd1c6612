"""Watching a run from Python: `RunProgress` snapshots of its shards' event streams for `on_progress`, the optional
live table (a terminal or a notebook), the notes collected for a result, and spawned workers kept from re-running
the caller's main module."""

from __future__ import annotations

import contextlib
import copy
import io
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from augshard.core.errors import ConfigError
from augshard.events import output
from augshard.events.monitor import all_finished, render, run_eta
from augshard.events.status import EventsWatcher, ShardStatus
from augshard.runner.preflight import Preflight
from augshard.storage.outcome import ShardState

if TYPE_CHECKING:
    from rich.console import Console

PROGRESS_POLL_S = 0.5  # how often `run` reads the shards' event streams for `on_progress` and the display


@dataclass(frozen=True)
class RunProgress:
    """A snapshot of a run's shards, as their event streams tell it (what `augshard monitor` shows)."""

    shards: tuple[ShardStatus, ...]  # copies: later snapshots never change them
    elapsed_s: float
    eta_s: float | None = None  # seconds left at the shards' measured speed (0 once finished; None: not known yet)

    @property
    def combos_total(self) -> int:
        return sum(st.combos_total for st in self.shards)

    @property
    def combos_done(self) -> int:
        return sum(st.combos_done for st in self.shards)

    @property
    def combos_failed(self) -> int:
        return sum(st.combos_failed for st in self.shards)

    @property
    def rows(self) -> int:
        """Rows written by the complete combos (the manifest's count)."""
        return sum(st.rows for st in self.shards)

    @property
    def rows_done(self) -> int:
        """Input rows the combos went through so far: it moves inside a running combo, chunk by chunk."""
        return sum(st.rows_done for st in self.shards)

    @property
    def fraction(self) -> float:
        """How much of the run is done, 0 to 1: finished combos, and each running combo's share of its rows."""
        total = self.combos_total
        return min(1.0, sum(st.fraction * st.combos_total for st in self.shards) / total) if total else 0.0

    @property
    def finished(self) -> bool:
        """Every shard done, failed, stopped or dead."""
        return bool(self.shards) and all(st.state.finished for st in self.shards)

    @property
    def shown(self) -> tuple[Any, ...]:
        """What a snapshot tells (its time aside): `on_progress` hears of a snapshot only when this changed."""
        states = tuple(st.state for st in self.shards)
        return (states, self.combos_total, self.combos_done, self.combos_failed, self.rows, self.rows_done)

    def __repr__(self) -> str:
        eta = "" if self.eta_s is None else f", eta {output.fmt_duration(self.eta_s)}"
        return (
            f"RunProgress({self.fraction:.0%}: {self.combos_done}/{self.combos_total} combos, {self.combos_failed} "
            f"failed, {self.rows:,} rows written, {self.rows_done:,} input rows done{eta})"
        )


ProgressCallback = Callable[[RunProgress], None]


def display_console(progress: bool | str) -> Console | None:
    if progress not in (True, False, "auto"):
        raise ConfigError(f"progress must be 'auto', True or False, got {progress!r}")
    from rich.console import Console

    if progress is True:
        return Console(stderr=True)
    if progress == "auto" and output.in_notebook():
        return Console()
    return None


class RunWatch:
    """Follows the shards' event streams while a run goes: snapshots for `on_progress`, the optional live table.

    Streams an earlier run left are ignored until this run's shard starts over them (the supervisor removes them)."""

    def __init__(self, prep: Preflight, t0: float, callback: ProgressCallback | None, display: Console | None) -> None:
        cfg, num_shards = prep.cfg, prep.plan.num_shards
        indexes = [cfg.shard_index] if cfg.shard_index is not None else list(range(num_shards))
        self.watcher = EventsWatcher(cfg.log_dir, num_shards, indexes)
        self.planned = {i: len(prep.plan.shards[i]) for i in indexes}  # a pending shard's combos, from the plan
        self.t0, self.callback, self.display = t0, callback, display
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live: Any = None
        self._last: Any = None

    def __enter__(self) -> RunWatch:
        if self.callback is None and self.display is None:
            return self
        if self.display is not None and live_works(self.display):
            from rich.live import Live

            self._live = Live(console=self.display, auto_refresh=False, transient=False)
            self._live.start()
        self._thread = threading.Thread(target=self._loop, name="augshard-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        snapshot = self.snapshot()
        self._report(snapshot)
        if self._live is not None:
            self._live.stop()
        elif self.display is not None:
            show_once(self.display, render(snapshot.shards))

    def snapshot(self) -> RunProgress:
        statuses = [
            st
            if st.started is not None and st.started >= self.t0
            else ShardStatus(st.shard, combos_total=self.planned[st.shard])
            for st in self.watcher.statuses()
        ]
        now = time.time()
        shards = tuple(copy.deepcopy(statuses))
        pending = any(st.state is ShardState.PENDING for st in shards)
        eta = 0.0 if all_finished(shards) else None if pending else run_eta(shards, now)
        return RunProgress(shards, round(now - self.t0, 3), None if eta is None else round(eta, 1))

    def _loop(self) -> None:
        while not self._stop.wait(PROGRESS_POLL_S):
            self._report(self.snapshot())

    def _report(self, snapshot: RunProgress) -> None:
        if self._live is not None:
            self._live.update(render(snapshot.shards), refresh=True)
        if self.callback is None or self.error is not None or snapshot.shown == self._last:
            return
        self._last = snapshot.shown
        try:
            self.callback(snapshot)
        except Exception as exc:  # noqa: BLE001 - the shards are not stopped for it: raised once the run is over
            self.error = exc

    def raise_callback_error(self) -> None:
        if self.error is not None:
            raise self.error


def live_works(console: Console) -> bool:
    """Rich's live display needs ipywidgets in a notebook; without it the final table is shown once instead."""
    if not console.is_jupyter:
        return True
    try:
        import ipywidgets  # noqa: F401 - only whether it is there
    except ImportError:
        return False
    return True


NOTEBOOK_PRE = (
    '<pre style="white-space:pre;overflow-x:auto;line-height:normal;'
    "font-family:Menlo,'DejaVu Sans Mono',consolas,'Courier New',monospace\">{code}</pre>"
)


def show_once(console: Console, renderable: Any) -> None:
    """The final table, once. In a notebook, as HTML with its colours and as plain text without terminal codes
    (Rich's own display puts ANSI codes in the text, raw in a front end or a saved notebook that shows the text)."""
    if not console.is_jupyter:
        console.print(renderable)
        return
    from IPython.display import display  # there in a notebook, and only needed there
    from rich.console import Console

    drawn = Console(file=io.StringIO(), record=True, width=console.width, force_terminal=True, force_jupyter=False)
    drawn.print(renderable)
    html = drawn.export_html(inline_styles=True, code_format=NOTEBOOK_PRE, clear=False)
    display({"text/plain": drawn.export_text(), "text/html": html}, raw=True)


@contextlib.contextmanager
def main_not_reimported() -> Iterator[None]:
    """Spawned workers (shards, evaluation folds) re-run the caller's main module, as `__mp_main__`, before their
    work: a script without an `if __name__ == "__main__":` guard would start its run again in every worker. They
    need nothing from it (their functions and jobs are augshard's), so while they start, multiprocessing sees a
    bare `__main__` with no file to re-run. A notebook's `__main__` has none anyway."""
    main = sys.modules.get("__main__")
    if main is None or (getattr(main, "__spec__", None) is None and not getattr(main, "__file__", None)):
        yield
        return
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


@contextlib.contextmanager
def collected_notes() -> Iterator[list[str]]:
    """The `note:` and `warning:` lines the CLI prints on stderr, collected instead (plain text) for a result."""
    from rich.text import Text

    lines: list[str] = []
    with output.captured_notices() as captured:
        yield lines
    lines += [Text.from_ansi(line).plain for line in captured.get().splitlines() if line.strip()]


def quiet_console() -> Console:
    from rich.console import Console

    return Console(quiet=True)
