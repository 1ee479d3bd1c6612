"""Who may touch an output root: lock files naming their owner (pid, host, start, command), taken over when that
owner is dead. A run, a shard job and `merge` write; `export` reads; an export also holds its target."""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path

from augshard.core.errors import OutputError
from augshard.runner.procs import pid_alive

log = logging.getLogger("augshard.runner.lock")


def holder(owner: dict) -> str:
    """Who holds a lock, in its record's words: pid, host, start and the command (from its argv)."""
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner.get("started", 0)))
    argv = owner.get("argv")
    command = ""
    if isinstance(argv, list) and argv:
        words = " ".join(str(a) for a in argv[1:])
        command = f": `augshard {words[:77] + '...' if len(words) > 80 else words}`"
    return f"pid {owner.get('pid')} on {owner.get('host')} since {since}{command}"


WHOLE = ".augshard.runner.lock"
READERS = ".augshard-read-*.lock"


class FileLock:
    """An exclusive-create lock file and the other lock files it may not coexist with (`conflicts`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.held = False

    def _conflicts(self) -> list[Path]:
        return [self.path]

    def _busy(self, other: Path, owner: dict) -> str:
        return (
            f"{self.path.parent} is in use by another augshard command ({holder(owner)}); wait for it, or delete "
            f"{other} if that command is gone"
        )

    def _check(self) -> None:
        """Raise for a live conflicting owner; remove the locks of owners that died on this host."""
        for other in self._conflicts():
            if self.held and other == self.path:
                continue
            owner = self._owner(other)
            if owner is None:
                continue
            if owner.get("host") == socket.gethostname() and not pid_alive(int(owner.get("pid", 0))):
                log.warning("taking over stale lock %s of dead pid %s", other, owner.get("pid"))
                other.unlink(missing_ok=True)
                continue
            raise OutputError(self._busy(other, owner))

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._check()
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "argv": sys.argv}
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            owner = self._owner(self.path) or {}
            raise OutputError(self._busy(self.path, owner)) from None
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(record, fh)
        except OSError as exc:  # a full disk: no half-written lock left to look stale or alive
            self.path.unlink(missing_ok=True)
            raise OutputError(f"cannot write the lock {self.path}: {exc.strerror or exc}") from None
        self.held = True
        try:
            # Two commands that checked at the same moment both see each other now; at least one gives way.
            self._check()
        except OutputError:
            self.release()
            raise

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

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class RunLock(FileLock):
    """`.augshard.runner.lock` for a whole run (and `merge`); `.augshard-shard{i}_of_{N}.lock` for one shard of a job
    array, so the shards of one array can share an output root while a whole run and any shard job exclude each
    other. Both exclude readers (`ReadLock`): an export never reads combos a run is replacing."""

    def __init__(self, output_root: str | Path, shard: tuple[int, int] | None = None) -> None:
        self.root = Path(output_root)
        self.shard = shard
        super().__init__(self.root / (WHOLE if shard is None else f".augshard-shard{shard[0]}_of_{shard[1]}.lock"))

    def _conflicts(self) -> list[Path]:
        if self.shard is None:
            return sorted(self.root.glob(".augshard*.lock"))
        return [self.path, self.root / WHOLE, *sorted(self.root.glob(READERS))]

    def _busy(self, other: Path, owner: dict) -> str:
        what = "an augshard command reading it" if other.match(READERS) else "another augshard run"
        return (
            f"output root {self.root} is in use by {what} ({holder(owner)}); wait for it, or delete {other} if that "
            "command is gone"
        )


class ReadLock(FileLock):
    """`.augshard-read-<pid>~<host>.lock`: an export or an evaluation reading the output root. Readers share a root;
    a run, a shard job or a merge holding it makes the reader refuse (rerun the reader once the run is finished)."""

    def __init__(self, output_root: str | Path, command: str = "export") -> None:
        self.root = Path(output_root)
        self.command = command
        super().__init__(self.root / f".augshard-read-{os.getpid()}~{socket.gethostname()}.lock")

    def _conflicts(self) -> list[Path]:
        return [p for p in sorted(self.root.glob(".augshard*.lock")) if not p.match(READERS)]

    def acquire(self) -> None:
        try:
            super().acquire()
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            # A run archived read-only: no run can be writing it as this user, and there is nowhere to say we read.

    def _busy(self, other: Path, owner: dict) -> str:
        return (
            f"output root {self.root} is being written by an augshard run ({holder(owner)}); {self.command} once it "
            f"is finished, or delete {other} if that run is gone"
        )


class TargetLock(FileLock):
    """`.<name>.augshard-<command>.lock` beside what a command writes (an export's `--to`, evaluate's
    evaluation.json): two commands writing one output never interleave; the second is refused, naming the first."""

    def __init__(self, target: Path, command: str = "export") -> None:
        super().__init__(target.parent / f".{target.name}.augshard-{command}.lock")
        self.target = target
        self.command = command

    def _busy(self, other: Path, owner: dict) -> str:
        return (
            f"another augshard {self.command} is writing {self.target} ({holder(owner)}); wait for it, or delete "
            f"{other} if it is gone"
        )
