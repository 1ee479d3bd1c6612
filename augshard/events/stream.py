"""The structured event stream each shard writes (JSON lines): one typed class per event kind, the writer and the
reader; both go through the classes, so a kind has exactly one set of fields.

Each line is one event: `ts` (epoch seconds), `event` (its kind), `shard`, then the fields of its class below, and
nothing else. `status.py` folds a stream into what a shard is doing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from augshard.core.json_types import wrong_type

HEARTBEAT_S = 2.0
PROGRESS_EVERY_S = 5.0
# What a running combo is doing (Progress.phase): building its methods (imports, models), drawing candidates
# through them, scoring candidates against their originals, writing a chunk.
LOADING, AUGMENTING, SCORING, WRITING = "loading methods", "augmenting", "scoring", "writing"
PHASES = (LOADING, AUGMENTING, SCORING, WRITING)


@dataclass(frozen=True, kw_only=True)
class Event:
    """What every event carries; `ts` and `shard` are filled in by the writer."""

    kind: ClassVar[str] = ""
    ts: float = 0.0
    shard: int = 0
    # The shard process whose attempt this belongs to: two runs sharing a log folder may append to one stream,
    # and a reader keeps only the lines of the attempt it follows (0: a stream of an older version, unknown).
    pid: int = 0

    def record(self) -> dict[str, Any]:
        """The JSON line: ts, event, shard, pid, then the event's own fields."""
        fields = dataclasses.asdict(self)
        return {
            "ts": fields.pop("ts"),
            "event": self.kind,
            "shard": fields.pop("shard"),
            "pid": fields.pop("pid"),
            **fields,
        }


@dataclass(frozen=True, kw_only=True)
class ShardStart(Event):
    """A shard (or a retry of it) begins; a new attempt supersedes what earlier ones said."""

    kind: ClassVar[str] = "shard_start"
    host: str = ""
    plan_fingerprint: str = ""
    combos: int = 0  # how many combos the shard's plan list holds
    num_shards: int = 0


@dataclass(frozen=True, kw_only=True)
class ComboStart(Event):
    kind: ClassVar[str] = "combo_start"
    combo_id: str = ""
    methods: str = ""
    k: int = 0


@dataclass(frozen=True, kw_only=True)
class Progress(Event):
    """Where a running combo stands: inside each chunk (at most every `progress.PROGRESS_MIN_S` of work) and after
    it, and repeated by the heartbeat at least every `PROGRESS_EVERY_S` while a combo runs.

    `rows_done` never goes backwards within a combo: a row counts as done once it needs no more attempts, and the
    attempts it may still get count for it in part (see `progress.ChunkProgress`); it reaches `rows_total` when
    the last chunk is written."""

    kind: ClassVar[str] = "progress"
    combo_id: str = ""
    rows_done: int = 0
    rows_total: int = 0  # input rows of the combo
    phase: str = ""  # what the combo is doing: PHASES (optional: older streams have none)
    # Method calls the combo computed so far (None: not told); 0 with rows done: the cache answered every call.
    calls_computed: int | None = None


@dataclass(frozen=True, kw_only=True)
class ComboDone(Event):
    """A combo is complete: computed now, or found complete from an earlier run (`resumed`)."""

    kind: ClassVar[str] = "combo_done"
    combo_id: str = ""
    methods: str = ""
    rows: int = 0
    rejected: int = 0
    skipped: int = 0
    duration: float = 0.0
    rows_input: int = 0
    resumed: bool = False


@dataclass(frozen=True, kw_only=True)
class ComboFailed(Event):
    kind: ClassVar[str] = "combo_failed"
    combo_id: str = ""
    methods: str = ""
    error: str = ""  # one-line summary
    log: str = ""  # `path:line` of the traceback in the shard's log


@dataclass(frozen=True, kw_only=True)
class ComboStopped(Event):
    """The shard was asked to stop (a signal, or the stop file) while this combo ran; its partial output is gone."""

    kind: ClassVar[str] = "combo_stopped"
    combo_id: str = ""
    methods: str = ""


@dataclass(frozen=True, kw_only=True)
class ComboMoved(Event):
    """Another shard took this combo from this shard's list (work stealing)."""

    kind: ClassVar[str] = "combo_moved"
    combo_id: str = ""
    methods: str = ""


@dataclass(frozen=True, kw_only=True)
class ComboStolen(Event):
    """This shard took a combo from the tail of another shard's list."""

    kind: ClassVar[str] = "combo_stolen"
    combo_id: str = ""
    methods: str = ""
    from_shard: int = -1  # whose list it was on (-1: a stream of an older version, unknown)


@dataclass(frozen=True, kw_only=True)
class Heartbeat(Event):
    """Every `HEARTBEAT_S` from a thread of the shard, so a silent shard is a stalled or dead one."""

    kind: ClassVar[str] = "heartbeat"


@dataclass(frozen=True, kw_only=True)
class ShardDone(Event):
    """The shard's last event: written by the shard, or by the supervisor for a shard it had to kill."""

    kind: ClassVar[str] = "shard_done"
    combos_failed: int = 0
    duration: float = 0.0
    interrupted: bool = False  # stopped by a signal or the stop file before its work was done
    filter: dict[str, float] = field(default_factory=dict)  # the quality filter's counters
    calls_cached: int = 0
    calls_computed: int = 0
    peak_rss_mb: int = 0
    build_s: float = 0.0  # building methods (imports, models), inside its combos' durations
    calls_s: float = 0.0  # inside the methods' computed calls, building aside (its completed combos' durations)
    write_s: float = 0.0  # writing their Parquet files and committing their folders, inside their durations


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        ShardStart,
        ComboStart,
        Progress,
        ComboDone,
        ComboFailed,
        ComboStopped,
        ComboMoved,
        ComboStolen,
        Heartbeat,
        ShardDone,
    )
}


class Damaged(ValueError):
    """A line of an event stream that is no event: not UTF-8, not JSON, or a known kind with a field of the wrong
    type (a torn last line, or an event kind a newer augshard writes, is not damage)."""


def parse_event(record: Any) -> Event | None:
    """The typed event of one parsed JSON line; None for a line that is no event this version knows; Damaged for a
    known kind whose fields are of the wrong types."""
    if not isinstance(record, dict):
        raise Damaged("not a JSON object")
    kind = record.get("event", "")
    cls = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        return None
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in record.items() if k in names}
    why = wrong_type(cls, values)  # a line with a value of another type (a hand edit, a damaged disk) is no event
    if why:
        raise Damaged(f"{kind}: {why}")
    return cls(**values)


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
    `ShardDone` or `close`.
    """

    def __init__(self, path: str | Path, shard: int, pid: int | None = None) -> None:
        """`pid`: the shard process the events belong to (this one, unless the supervisor writes for it)."""
        self.path = Path(path)
        self.pid = os.getpid() if pid is None else pid
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.shard = shard
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the shard's life
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._progress: Progress | None = None  # the running combo's last progress
        self._progress_ts = 0.0
        self.write_error = ""

    def emit(self, event: Event) -> None:
        with self._lock:
            if self._fh.closed:
                return
            now = time.time()
            record = replace(event, ts=round(now, 3), shard=self.shard, pid=self.pid).record()
            try:
                self._fh.write(json.dumps(record, default=str) + "\n")
                self._fh.flush()
            except OSError as exc:
                # A full disk: the shard goes on (its manifest still says what happened); a torn line is skipped
                # by readers. Said once, never with a traceback from the heartbeat thread.
                if not self.write_error:
                    self.write_error = f"{exc.strerror or exc}"
                    sys.stderr.write(f"augshard: cannot write the event stream {self.path}: {self.write_error}\n")
                return
            if isinstance(event, Progress):
                self._progress, self._progress_ts = event, now
            elif isinstance(event, (ComboDone, ComboFailed, ComboStopped, ShardDone)):
                self._progress = None
        if isinstance(event, ShardDone):
            self._stop.set()

    def shard_start(self, **fields: Any) -> None:
        self.emit(ShardStart(host=socket.gethostname(), **fields))

    def start_heartbeat(self, interval: float = HEARTBEAT_S) -> None:
        self._thread = threading.Thread(target=self._beat, args=(interval,), name="augshard-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.emit(Heartbeat())
            progress = self._progress
            if progress is not None and time.time() - self._progress_ts >= PROGRESS_EVERY_S:
                # A chunk can take minutes: say, at least every few seconds, where the running combo stands.
                self.emit(progress)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        with self._lock:
            try:
                self._fh.close()
            except OSError:
                pass  # the last buffered bytes did not fit: said in emit already


def read_events(path: str | Path, damaged: list[str] | None = None) -> list[Event]:
    """Every complete line's event; a torn last line (a writer killed mid-write) is ignored, a damaged one skipped
    (and its reason added to `damaged`, when given)."""
    out = []
    try:
        with open(path, "rb") as fh:
            for line in fh:
                if line.endswith(b"\n"):
                    event = parse_line(line, damaged)
                    if event is not None:
                        out.append(event)
    except FileNotFoundError:
        pass
    except OSError as exc:  # a folder, a device that fails: no events, and said
        if damaged is not None:
            damaged.append(f"{path}: {exc.strerror or exc}")
    return out


def parse_line(line: str | bytes, damaged: list[str] | None = None) -> Event | None:
    """The event of one line; None for a line that is none (a damaged one's reason goes to `damaged`)."""
    try:
        text = line.decode("utf-8") if isinstance(line, bytes) else line
        if not text.strip():
            return None
        return parse_event(json.loads(text))
    except RecursionError:
        reason = "JSON nested too deep"
    except UnicodeDecodeError as exc:
        reason = f"not UTF-8 (byte {exc.start})"
    except ValueError as exc:  # not JSON, or Damaged
        reason = str(exc) if isinstance(exc, Damaged) else "not JSON"
    if damaged is not None:
        damaged.append(reason)
    return None
