"""The structured event stream each shard writes (JSON lines), and the reader that folds it into `ShardStatus`.

Events, one JSON object a line, each with `ts` (epoch seconds), `event` and `shard`:

- `shard_start`: pid, host, plan_fingerprint, combos (how many), num_shards
- `combo_start`: combo_id, methods, k
- `progress`: combo_id, rows_done, rows_total (input rows of the combo); after every chunk, and repeated by the
  heartbeat at least every `PROGRESS_EVERY_S` while a combo runs
- `combo_done`: combo_id, methods, rows, rejected, skipped, duration, rows_input (and resumed for a combo that
  was already complete)
- `combo_failed`: combo_id, methods, error (one-line summary), log (`path:line` of the traceback)
- `heartbeat`: every `HEARTBEAT_S` from a thread of the shard, so a silent shard is a stalled or dead one
- `shard_done`: combos_failed, duration

Nothing here reads the human logs: the status of a shard is a fold of its events and nothing else.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from augshard.store import pid_alive

HEARTBEAT_S = 2.0
PROGRESS_EVERY_S = 5.0
STALL_AFTER_S = 30.0
FINISHED = ("done", "failed", "dead", "stalled")


def events_path(log_dir: str | Path, index: int, num_shards: int) -> Path:
    return Path(log_dir) / f"shard_{index}_of_{num_shards}.events.jsonl"


def log_path(log_dir: str | Path, index: int, num_shards: int) -> Path:
    return Path(log_dir) / f"shard_{index}_of_{num_shards}.log"


def next_log_line(path: str | Path) -> int:
    """The number the next line written to a log will have (1-based), to point a reader at it."""
    try:
        with open(path, "rb") as fh:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 16), b"")) + 1
    except OSError:
        return 1


class EventWriter:
    """Appends one JSON object per line and flushes it, so a reader in another process sees it at once.

    A heartbeat thread (`start_heartbeat`) writes too, so writes are serialised by a lock; it stops at
    `shard_done` or `close`.
    """

    def __init__(self, path: str | Path, shard: int) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.shard = shard
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the shard's life
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._progress: dict[str, Any] | None = None  # the running combo's last progress fields
        self._progress_ts = 0.0

    def emit(self, event: str, **fields: Any) -> None:
        with self._lock:
            if self._fh.closed:
                return
            now = time.time()
            record = {"ts": round(now, 3), "event": event, "shard": self.shard, **fields}
            self._fh.write(json.dumps(record, default=str) + "\n")
            self._fh.flush()
            if event == "progress":
                self._progress, self._progress_ts = dict(fields), now
            elif event in ("combo_done", "combo_failed", "shard_done"):
                self._progress = None
        if event == "shard_done":
            self._stop.set()

    def shard_start(self, **fields: Any) -> None:
        self.emit("shard_start", pid=os.getpid(), host=socket.gethostname(), **fields)

    def start_heartbeat(self, interval: float = HEARTBEAT_S) -> None:
        self._thread = threading.Thread(target=self._beat, args=(interval,), name="augshard-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.emit("heartbeat")
            progress = self._progress
            if progress is not None and time.time() - self._progress_ts >= PROGRESS_EVERY_S:
                # A chunk can take minutes: say, at least every few seconds, where the running combo stands.
                self.emit("progress", **progress)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        with self._lock:
            self._fh.close()


@dataclass
class ShardStatus:
    """What one shard is doing, as told by its events alone."""

    shard: int
    state: str = "pending"  # pending, running, done, failed; and, judged by `judge`, dead or stalled
    combos_total: int = 0
    combos_done: int = 0  # complete, including the ones resumed from an earlier run
    combos_failed: int = 0
    combos_resumed: int = 0
    current: str = ""  # methods of the running combo, e.g. "nlp_keyboard+nlp_randword_delete"
    current_id: str = ""
    rows: int = 0  # rows generated (written) by the complete combos
    rejected: int = 0
    current_done: int = 0  # input rows of the current combo processed so far
    current_total: int = 0
    rows_per_combo: int = 0  # input rows each combo goes through (the same input for every combo of a run)
    work_rows: int = 0  # input rows processed by this attempt (resumed combos excluded): the throughput's numerator
    work_started: float | None = None  # first progress of this attempt: set-up (imports, models) is not throughput
    work_ts: float | None = None  # when work_rows last grew
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
        return self.combos_done + self.combos_failed

    @property
    def fraction(self) -> float:
        """Share of the shard's input rows (over all its combos) processed; whole combos before any row count."""
        if self.state in ("done", "failed") or self.combos_total == 0:
            return 1.0 if self.state in ("done", "failed") else 0.0
        per = self.rows_per_combo or self.current_total
        current = self.current_done / per if per and self.current else 0.0
        return min(1.0, (self.combos_finished + current) / self.combos_total)

    @property
    def rate(self) -> float | None:
        """Input rows per second since this attempt's first combo was set up and began its rows."""
        if not self.work_rows or self.work_started is None or self.work_ts is None:
            return None
        elapsed = self.work_ts - self.work_started
        return self.work_rows / elapsed if elapsed > 0 else None

    def eta(self, now: float) -> float | None:
        """Seconds left: remaining input rows at the measured throughput, less the time since it was measured."""
        if self.state != "running":
            return None
        rate = self.rate
        per = self.rows_per_combo or self.current_total
        if rate is None or not per:
            return None
        remaining = (self.combos_total - self.combos_finished) * per - (self.current_done if self.current else 0)
        return max(0.0, remaining / rate - max(0.0, now - (self.work_ts or now)))


def apply(status: ShardStatus, ev: dict[str, Any]) -> ShardStatus:
    """One event onto a status; `shard_start` begins a new attempt, so the latest attempt decides."""
    kind = ev.get("event")
    ts = ev.get("ts")
    if kind == "shard_start":
        return ShardStatus(
            status.shard,
            state="running",
            combos_total=int(ev.get("combos", 0)),
            pid=ev.get("pid"),
            host=ev.get("host", ""),
            plan_fingerprint=ev.get("plan_fingerprint", ""),
            num_shards=int(ev.get("num_shards", 0)),
            started=ts,
            last_ts=ts,
        )
    if ts is not None:
        status.last_ts = ts
    if kind == "combo_start":
        status.current, status.current_id = ev.get("methods", ""), ev.get("combo_id", "")
        status.current_done = status.current_total = 0
    elif kind == "progress":
        done, total = int(ev.get("rows_done", 0)), int(ev.get("rows_total", 0))
        if status.work_started is None:
            status.work_started = ts
        if status.current and done > status.current_done:
            status.work_rows += done - status.current_done
            status.work_ts = ts
        status.current_done, status.current_total = done, total
        status.rows_per_combo = total or status.rows_per_combo
    elif kind in ("combo_done", "combo_failed"):
        if kind == "combo_done":
            status.combos_done += 1
            status.rows += int(ev.get("rows", 0))
            status.rejected += int(ev.get("rejected", 0) or 0)
            if ev.get("resumed"):
                status.combos_resumed += 1
            elif ev.get("rows_input"):
                # The last chunk's progress may not have been read yet: the combo went through all its rows.
                total = int(ev["rows_input"])
                status.rows_per_combo = status.rows_per_combo or total
                if status.current_id == ev.get("combo_id") and total > status.current_done:
                    status.work_rows += total - status.current_done
                    status.work_ts = ts
        else:
            status.combos_failed += 1
            status.failures.append(
                {k: ev.get(k, "") for k in ("combo_id", "methods", "error", "log")},
            )
        status.current = status.current_id = ""
        status.current_done = status.current_total = 0
    elif kind == "combo_moved":  # another shard took it (work stealing): no longer this shard's to do
        status.combos_total = max(status.combos_done + status.combos_failed, status.combos_total - 1)
    elif kind == "combo_stolen":  # taken from another shard's list
        status.combos_total += 1
    elif kind == "shard_done":
        status.state = "failed" if status.combos_failed or ev.get("combos_failed") else "done"
        status.finished, status.duration = ts, ev.get("duration")
        status.current = status.current_id = ""
    return status


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """Every complete line; a torn last line (a writer killed mid-write) is ignored."""
    out = []
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.endswith("\n"):
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        continue
    except FileNotFoundError:
        pass
    return out


def fold(shard: int, events: list[dict[str, Any]]) -> ShardStatus:
    """The status the events of one shard describe (the latest attempt, from its last shard_start)."""
    status = ShardStatus(shard)
    for ev in events:
        status = apply(status, ev)
    return status


def judge(status: ShardStatus, now: float, stall_after: float = STALL_AFTER_S, host: str | None = None) -> ShardStatus:
    """A running shard whose process is gone (on this host) is dead; one silent for `stall_after` s is stalled."""
    if status.state != "running":
        return status
    host = socket.gethostname() if host is None else host
    if status.pid and status.host == host and not pid_alive(int(status.pid)):
        return replace(status, state="dead")
    if status.last_ts is not None and now - status.last_ts > stall_after:
        return replace(status, state="stalled")
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
            with open(self.path, "rb") as fh:
                fh.seek(self._offset)
                data = self._partial + fh.read()
                self._offset = fh.tell()
            *lines, self._partial = data.split(b"\n")
            for line in lines:
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if isinstance(ev, dict):
                    self.status = apply(self.status, ev)
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
        return out

    def newest_event(self) -> float | None:
        stamps = [t.status.last_ts for t in self._trackers.values() if t.status.last_ts is not None]
        return max(stamps) if stamps else None
