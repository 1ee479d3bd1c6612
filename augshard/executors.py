"""Executors behind the one `concurrent.futures.Executor` interface: local spawned processes (Dask: later)."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Executor, ProcessPoolExecutor

from augshard.errors import ConfigError

EXECUTORS = ("local",)


def make_executor(kind: str, max_workers: int) -> Executor:
    """`local`: one spawned process per shard (spawn, not fork: torch and tokenizers dislike forked state)."""
    if kind == "local":
        return ProcessPoolExecutor(max_workers=max_workers, mp_context=multiprocessing.get_context("spawn"))
    raise ConfigError(f"unknown executor '{kind}' (available: {', '.join(EXECUTORS)})")
