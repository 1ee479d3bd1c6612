"""One run per output root: a lock file naming its owner (pid, host, start), taken over when that owner is dead."""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from pathlib import Path

from augshard.errors import OutputError
from augshard.store import pid_alive

log = logging.getLogger("augshard.lock")


class RunLock:
    """`.augshard.lock` for a whole run; `.augshard-shard{i}_of_{N}.lock` for one shard of a job array, so the
    shards of one array can share an output root while a whole run and any shard job exclude each other."""

    def __init__(self, output_root: str | Path, shard: tuple[int, int] | None = None) -> None:
        self.root = Path(output_root)
        self.shard = shard
        name = ".augshard.lock" if shard is None else f".augshard-shard{shard[0]}_of_{shard[1]}.lock"
        self.path = self.root / name
        self.held = False

    def _conflicts(self) -> list[Path]:
        if self.shard is None:
            return sorted(self.root.glob(".augshard*.lock"))
        return [self.path, self.root / ".augshard.lock"]

    def acquire(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for other in self._conflicts():
            owner = self._owner(other)
            if owner is None:
                continue
            if owner.get("host") == socket.gethostname() and not pid_alive(int(owner.get("pid", 0))):
                log.warning("taking over stale lock %s of dead pid %s", other, owner.get("pid"))
                other.unlink(missing_ok=True)
                continue
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner.get("started", 0)))
            raise OutputError(
                f"output root {self.root} is in use by another augshard run (pid {owner.get('pid')} on "
                f"{owner.get('host')} since {since}); wait for it, or delete {other} if that run is gone"
            )
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "argv": sys.argv}
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            raise OutputError(f"output root {self.root} was locked by another augshard run just now") from None
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh)
        self.held = True

    @staticmethod
    def _owner(path: Path) -> dict | None:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {"pid": 0, "host": socket.gethostname()}  # unreadable: treat as stale

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
