"""Stopping a shard: the flag its signals and its plan's stop file set, checked between chunks."""

from __future__ import annotations

import signal
import threading
from pathlib import Path


class ShardInterrupted(BaseException):
    """Raised between chunks once the shard was asked to stop (a BaseException, so no combo handler eats it)."""


def stop_file_path(log_dir: str | Path, plan_fingerprint: str) -> Path:
    """A Dask run's supervisor creates this file to stop the shards of its plan, which it cannot signal."""
    return Path(log_dir) / f".augshard-stop-{plan_fingerprint}"


class StopFlag:
    """Set by SIGTERM (the supervisor) or SIGINT (the terminal) in this process, or by the plan's stop file;
    `check()` raises `ShardInterrupted` once it is set, and the shard stops after its current chunk."""

    def __init__(self, stop_file: Path | None = None) -> None:
        self.stop_file = stop_file
        self._event = threading.Event()

    def install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self._event.set())

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        if not self._event.is_set() and self.stop_file is not None and self.stop_file.exists():
            self._event.set()
        return self._event.is_set()

    def check(self) -> None:
        if self.is_set():
            raise ShardInterrupted()
