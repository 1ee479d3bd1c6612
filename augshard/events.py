"""The structured event stream each shard writes (JSON lines), and the reader that folds it into `ShardStatus`."""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def events_path(log_dir: str | Path, index: int, num_shards: int) -> Path:
    return Path(log_dir) / f"shard_{index}_of_{num_shards}.events.jsonl"


def log_path(log_dir: str | Path, index: int, num_shards: int) -> Path:
    return Path(log_dir) / f"shard_{index}_of_{num_shards}.log"


class EventWriter:
    """Appends one JSON object per line and flushes it, so a reader in another process sees it at once."""

    def __init__(self, path: str | Path, shard: int) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.shard = shard
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the shard's life

    def emit(self, event: str, **fields: Any) -> None:
        record = {"ts": round(time.time(), 3), "event": event, "shard": self.shard, **fields}
        self._fh.write(json.dumps(record, default=str) + "\n")
        self._fh.flush()

    def shard_start(self, **fields: Any) -> None:
        self.emit("shard_start", pid=os.getpid(), host=socket.gethostname(), **fields)

    def close(self) -> None:
        self._fh.close()


@dataclass
class ShardStatus:
    """What one shard is doing, as told by its events alone."""

    shard: int
    state: str = "pending"  # pending, running, done, failed
    combos_total: int = 0
    combos_done: int = 0
    combos_failed: int = 0
    current: str = ""
    rows: int = 0
    current_done: int = 0  # input rows of the current combo processed so far
    current_total: int = 0
    pid: int | None = None
    host: str = ""
    started: float | None = None
    last_ts: float | None = None


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
    """The latest attempt of the shard (from its last shard_start) decides its status."""
    status = ShardStatus(shard)
    for ev in events:
        kind = ev.get("event")
        status.last_ts = ev.get("ts", status.last_ts)
        if kind == "shard_start":
            status = ShardStatus(
                shard,
                state="running",
                combos_total=int(ev.get("combos", 0)),
                pid=ev.get("pid"),
                host=ev.get("host", ""),
                started=ev.get("ts"),
                last_ts=ev.get("ts"),
            )
        elif kind == "combo_start":
            status.current = ev.get("methods", "")
            status.current_done = status.current_total = 0
        elif kind == "progress":
            status.current_done, status.current_total = int(ev.get("rows_done", 0)), int(ev.get("rows_total", 0))
        elif kind == "combo_done":
            status.combos_done += 1
            status.rows += int(ev.get("rows", 0))
            status.current = ""
        elif kind == "combo_failed":
            status.combos_failed += 1
            status.current = ""
        elif kind == "shard_done":
            status.state = "failed" if status.combos_failed else "done"
    return status
