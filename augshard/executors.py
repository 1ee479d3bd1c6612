"""Executors behind the one `concurrent.futures.Executor` interface: local spawned processes (Dask: later)."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Executor, ProcessPoolExecutor

from augshard.errors import ConfigError

EXECUTORS = ("local",)


def _die_with_parent() -> None:
    """Linux: the kernel sends SIGKILL to this worker when the supervisor dies, so no shard is ever orphaned."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def make_executor(kind: str, max_workers: int) -> Executor:
    """`local`: spawned processes (spawn, not fork: torch and tokenizers dislike forked state), tied to the
    supervisor's life."""
    if kind == "local":
        return ProcessPoolExecutor(
            max_workers=max_workers, mp_context=multiprocessing.get_context("spawn"), initializer=_die_with_parent
        )
    raise ConfigError(f"unknown executor '{kind}' (available: {', '.join(EXECUTORS)})")
