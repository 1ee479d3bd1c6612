"""GPU slots: at most N shards hold models on the GPU at once, arbitrated by file locks beside the caches."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


class GpuSlot:
    """One of `slots` lock files under `lock_dir`; held from a shard's first GPU method until its last one is done.

    flock locks belong to the open file, so a killed shard frees its slot at once, and they work for every
    process of this host (the local executor, or Dask workers on one machine).
    """

    def __init__(self, lock_dir: str | Path, slots: int) -> None:
        self.lock_dir = Path(lock_dir)
        self.slots = max(1, slots)
        self._fd: int | None = None
        self.index: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        for k in range(self.slots):
            fd = os.open(self.lock_dir / f"gpu_slot_{k}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            self._fd, self.index = fd, k
            return True
        return False

    def acquire(self, on_wait: Callable[[], None] | None = None, poll_s: float = 1.0) -> None:
        """Block until a slot is free; `on_wait` is called once, when the shard has to wait."""
        waited = False
        while not self.try_acquire():
            if not waited and on_wait is not None:
                on_wait()
            waited = True
            time.sleep(poll_s)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = self.index = None
