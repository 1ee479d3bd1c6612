"""What a shard is doing, as told by its events alone: `ShardStatus`, the fold of a stream into it, liveness, and
the incremental watchers `run` and `monitor` poll. Nothing here reads the human logs."""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from augshard.events.stream import (
    LOADING,
    ComboDone,
    ComboFailed,
    ComboMoved,
    ComboStart,
    ComboStolen,
    ComboStopped,
    Event,
    Progress,
    ShardDone,
    ShardStart,
    events_path,
    parse_line,
)
from augshard.runner.procs import pid_alive
from augshard.storage.outcome import ShardState

STALL_AFTER_S = 30.0


@dataclass
class ShardStatus:
    """What one shard is doing, as told by its events alone."""

    shard: int
    state: ShardState = ShardState.PENDING  # from its events; DEAD and STALLED only as `judge` decides
    combos_total: int = 0  # its plan list, less what others took, plus what it took (see `reconcile`)
    combos_planned: int = 0  # its plan list (ShardStart): what the run's total adds up, whoever runs them
    combos_done: int = 0  # complete, including the ones resumed from an earlier run
    combos_failed: int = 0
    combos_resumed: int = 0
    combos_stopped: int = 0  # interrupted by a stop; a rerun computes them
    current: str = ""  # methods of the running combo, e.g. "nlp_keyboard+nlp_randword_delete"
    current_id: str = ""
    rows: int = 0  # rows generated (written) by the complete combos
    rejected: int = 0
    current_done: int = 0  # input rows of the current combo processed so far
    current_total: int = 0
    current_computed: int | None = None  # method calls the current combo computed so far (None: not told)
    phase: str = ""  # what the current combo is doing (events.PHASES; "" when the stream does not say)
    rows_per_combo: int = 0  # input rows each combo goes through (the same input for every combo of a run)
    work_rows: int = 0  # input rows processed by this attempt (resumed combos excluded): the throughput's numerator
    work_started: float | None = None  # first progress of this attempt: set-up (imports, models) is not throughput
    work_ts: float | None = None  # when work_rows last grew
    loading_since: float | None = None  # a method is being built (imports, models) since then: no throughput
    finished_before: int = 0  # combos an earlier attempt of the same plan had finished: the count never drops
    stolen: dict[str, int] = field(default_factory=dict)  # combo id -> the shard whose list it was on
    moved: set[str] = field(default_factory=set)  # its own combos another shard took, as this shard saw
    # Lines of its stream that are no event (not UTF-8, not JSON, wrong types): skipped, and each one's reason.
    damaged: list[str] = field(default_factory=list)
    pid: int | None = None
    host: str = ""
    plan_fingerprint: str = ""
    num_shards: int = 0
    started: float | None = None
    finished: float | None = None
    duration: float | None = None
    last_ts: float | None = None
    failures: list[dict[str, Any]] = field(default_factory=list)  # combo_failed events

    @property
    def combos_finished(self) -> int:
        return max(self.combos_done + self.combos_failed, self.finished_before)

    @property
    def measuring(self) -> str:
        """What a running shard is doing while no ETA can be given yet: building methods, or timing its first rows."""
        if self.phase == LOADING:
            return LOADING
        return "timing the first rows" if self.current else "setting up"

    @property
    def fraction(self) -> float:
        """Share of the shard's input rows (over all its combos) processed; whole combos before any row count."""
        complete = self.state in (ShardState.DONE, ShardState.FAILED)
        if complete or self.combos_total == 0:
            return 1.0 if complete else 0.0
        per = self.rows_per_combo or self.current_total
        current = self.current_done / per if per and self.current else 0.0
        return min(1.0, (self.combos_finished + current) / self.combos_total)

    @property
    def from_cache(self) -> bool:
        """The running combo's rows so far came wholly from the cache (no method call computed): no speed to tell."""
        return bool(self.current) and self.current_done > 0 and self.current_computed == 0

    @property
    def rows_done(self) -> int:
        """Input rows its combos went through: the finished combos' whole, the running one's so far."""
        per = self.rows_per_combo or self.current_total
        return self.combos_finished * per + (self.current_done if self.current else 0)

    @property
    def rate(self) -> float | None:
        """Input rows per second since this attempt's first combo was set up and began its rows."""
        if not self.work_rows or self.work_started is None or self.work_ts is None:
            return None
        elapsed = self.work_ts - self.work_started
        return self.work_rows / elapsed if elapsed > 0 else None

    def eta(self, now: float) -> float | None:
        """Seconds left: remaining input rows at the measured throughput, less the time since it was measured."""
        if self.state is not ShardState.RUNNING:
            return None
        rate = self.rate
        per = self.rows_per_combo or self.current_total
        if rate is None or not per or self.loading_since is not None:
            return None
        remaining = (self.combos_total - self.combos_finished) * per - (self.current_done if self.current else 0)
        return max(0.0, remaining / rate - max(0.0, now - (self.work_ts or now)))


def apply(status: ShardStatus, ev: Event) -> ShardStatus:
    """One event onto a status; `ShardStart` begins a new attempt, so the latest attempt decides."""
    ts = ev.ts
    if isinstance(ev, ShardStart):
        same_plan = status.plan_fingerprint == ev.plan_fingerprint
        return ShardStatus(
            status.shard,
            state=ShardState.RUNNING,
            combos_total=ev.combos,
            combos_planned=ev.combos,
            finished_before=max(status.combos_finished, status.finished_before) if same_plan else 0,
            pid=ev.pid,
            host=ev.host,
            plan_fingerprint=ev.plan_fingerprint,
            num_shards=ev.num_shards,
            started=ts,
            last_ts=ts,
        )
    if ev.pid and status.pid and ev.pid != status.pid:
        return status  # another attempt's line (two runs sharing a log folder): not this one's to count
    status.last_ts = ts
    if isinstance(ev, ComboStart):
        status.current, status.current_id = ev.methods, ev.combo_id
        status.current_done = status.current_total = 0
        status.current_computed, status.phase = None, ""
    elif isinstance(ev, Progress):
        _apply_progress(status, ev)
    elif isinstance(ev, ComboDone):
        _apply_done(status, ev)
    elif isinstance(ev, ComboFailed):
        status.combos_failed += 1
        status.failures.append({"combo_id": ev.combo_id, "methods": ev.methods, "error": ev.error, "log": ev.log})
        _combo_ended(status)
    elif isinstance(ev, ComboStopped):
        status.combos_stopped += 1
        _combo_ended(status)
    elif isinstance(ev, ComboMoved):  # another shard took it (work stealing): no longer this shard's to do
        if ev.combo_id not in status.moved:
            status.moved.add(ev.combo_id)
            status.combos_total = max(status.combos_finished, status.combos_total - 1)
    elif isinstance(ev, ComboStolen):  # taken from another shard's list
        if ev.combo_id not in status.stolen:
            status.stolen[ev.combo_id] = ev.from_shard
            status.combos_total += 1
    elif isinstance(ev, ShardDone):
        if ev.interrupted:
            status.state = ShardState.STOPPED
        else:
            status.state = ShardState.FAILED if status.combos_failed or ev.combos_failed else ShardState.DONE
        status.finished, status.duration = ts, ev.duration
        status.current = status.current_id = ""
    return status


def _apply_progress(status: ShardStatus, ev: Progress) -> None:
    grows = bool(status.current) and ev.rows_done > status.current_done
    if status.work_started is None or not (status.work_rows or grows):
        status.work_started = ev.ts  # the clock starts at the last word before the first rows moved
    if status.loading_since is not None and ev.phase != LOADING:
        # Building a method is no throughput: the time it took is taken out of the measured span.
        if status.work_rows:
            status.work_started += ev.ts - status.loading_since
        status.loading_since = None
    elif ev.phase == LOADING and status.loading_since is None:
        status.loading_since = ev.ts
    status.phase = ev.phase
    if grows:
        status.work_rows += ev.rows_done - status.current_done
        status.work_ts = ev.ts
    status.current_done, status.current_total = ev.rows_done, ev.rows_total
    status.current_computed = ev.calls_computed
    status.rows_per_combo = ev.rows_total or status.rows_per_combo


def _apply_done(status: ShardStatus, ev: ComboDone) -> None:
    status.combos_done += 1
    status.rows += ev.rows
    status.rejected += ev.rejected
    if ev.resumed:
        status.combos_resumed += 1
    elif ev.rows_input:
        # The last chunk's progress may not have been read yet: the combo went through all its rows.
        status.rows_per_combo = status.rows_per_combo or ev.rows_input
        if status.current_id == ev.combo_id and ev.rows_input > status.current_done:
            status.work_rows += ev.rows_input - status.current_done
            status.work_ts = ev.ts
    _combo_ended(status)


def _combo_ended(status: ShardStatus) -> None:
    status.current = status.current_id = status.phase = ""
    status.current_done = status.current_total = 0
    status.current_computed = None
    if status.loading_since is not None and status.work_started is not None and status.work_rows:
        status.work_started += (status.last_ts or status.loading_since) - status.loading_since
    status.loading_since = None


def reconcile(statuses: Sequence[ShardStatus]) -> list[ShardStatus]:
    """The shards' statuses told together: a combo another shard took (its `ComboStolen` names whose list it was
    on) leaves its home shard's total at once, not only when the home shard reaches it in its list and says so
    (`ComboMoved`); so the totals add up to the plan's and each shard's ETA counts only what is still its own."""
    taken: dict[int, set[str]] = {}
    for st in statuses:
        for combo_id, home in st.stolen.items():
            taken.setdefault(home, set()).add(combo_id)
    out = []
    for st in statuses:
        gone = len(taken.get(st.shard, set()) - st.moved) if st.state is not ShardState.PENDING else 0
        out.append(replace(st, combos_total=max(st.combos_finished, st.combos_total - gone)) if gone else st)
    return out


def fold(shard: int, events: list[Event]) -> ShardStatus:
    """The status the events of one shard describe (the latest attempt, from its last ShardStart)."""
    status = ShardStatus(shard)
    for ev in events:
        status = apply(status, ev)
    return status


def judge(status: ShardStatus, now: float, stall_after: float = STALL_AFTER_S, host: str | None = None) -> ShardStatus:
    """A running shard whose process is gone (on this host) is dead; one silent for `stall_after` s is stalled."""
    if status.state is not ShardState.RUNNING:
        return status
    host = socket.gethostname() if host is None else host
    if status.pid and status.host == host and not pid_alive(int(status.pid)):
        return replace(status, state=ShardState.DEAD)
    if status.last_ts is not None and now - status.last_ts > stall_after:
        return replace(status, state=ShardState.STALLED)
    return status


class ShardTracker:
    """Follows one shard's events file incrementally (only new complete lines are read each poll)."""

    def __init__(self, path: str | Path, shard: int) -> None:
        self.path = Path(path)
        self.shard = shard
        self._reset(None)

    def _reset(self, inode: int | None) -> None:
        self.status = ShardStatus(self.shard)
        self._offset = 0
        self._inode = inode
        self._partial = b""
        self._damaged: list[str] = []

    def poll(self) -> ShardStatus:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            if self._inode is not None:  # removed: a new run starts afresh
                self._reset(None)
            return self.status
        if st.st_ino != self._inode or st.st_size < self._offset:  # replaced or truncated
            self._reset(st.st_ino)
        if st.st_size > self._offset:
            try:
                with open(self.path, "rb") as fh:
                    fh.seek(self._offset)
                    data = self._partial + fh.read()
                    self._offset = fh.tell()
            except OSError as exc:  # a folder where the stream should be, a failing disk: said, not raised
                self._damaged[:] = [f"{self.path}: {exc.strerror or exc}"]
                data, self._offset = b"", st.st_size
            *lines, self._partial = data.split(b"\n")
            for line in lines:
                ev = parse_line(line, self._damaged)
                if ev is not None:
                    self.status = apply(self.status, ev)
        self.status.damaged = self._damaged  # kept across attempts: a new ShardStart does not undo the damage
        return self.status


def discover(log_dir: str | Path) -> int | None:
    """The shard count of the newest event streams in `log_dir` (several runs may have left theirs)."""
    newest: dict[int, float] = {}
    root = Path(log_dir)
    if not root.is_dir():
        return None
    for path in root.glob("shard_*_of_*.events.jsonl"):
        stem = path.name[: -len(".events.jsonl")]
        parts = stem.split("_")  # shard, i, of, N
        if len(parts) != 4 or not (parts[1].isdigit() and parts[3].isdigit()):
            continue
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            continue
        n = int(parts[3])
        newest[n] = max(newest.get(n, 0.0), mtime)
    return max(newest, key=lambda n: newest[n]) if newest else None


class EventsWatcher:
    """The judged statuses of a run's shards, from their event streams alone (used by `run` and `monitor`).

    With `num_shards` unknown, the newest group of streams in `log_dir` is followed, looked for again each time.
    """

    def __init__(
        self,
        log_dir: str | Path,
        num_shards: int | None = None,
        shards: list[int] | None = None,
        stall_after: float = STALL_AFTER_S,
    ) -> None:
        self.log_dir = Path(log_dir)
        self.num_shards = num_shards
        self.shards = shards
        self.stall_after = stall_after
        self._fixed = num_shards is not None
        self._trackers: dict[tuple[int, int], ShardTracker] = {}
        self._host = socket.gethostname()

    def statuses(self, now: float | None = None) -> list[ShardStatus]:
        now = time.time() if now is None else now
        if not self._fixed:
            self.num_shards = discover(self.log_dir)
        if self.num_shards is None:
            return []
        indexes = self.shards if self.shards is not None else range(self.num_shards)
        out = []
        for i in indexes:
            key = (i, self.num_shards)
            tracker = self._trackers.get(key)
            if tracker is None:
                tracker = self._trackers[key] = ShardTracker(events_path(self.log_dir, i, self.num_shards), i)
            out.append(judge(tracker.poll(), now, self.stall_after, self._host))
        return reconcile(out)

    def newest_event(self) -> float | None:
        stamps = [t.status.last_ts for t in self._trackers.values() if t.status.last_ts is not None]
        return max(stamps) if stamps else None
