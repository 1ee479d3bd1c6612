"""The local executor's forkserver, set up once on import: it dies with the supervisor, ignores Ctrl-C, and imports
the heavy modules the run's shards need, so every shard forks with them loaded (and their pages shared)."""

from __future__ import annotations

import os
import signal
import warnings

from augshard.methods.imports import import_module
from augshard.methods.offline import apply_offline_env
from augshard.runner.procs import die_with_parent

# What every shard reads and writes with, whatever its methods (preloaded first, ahead of the methods' libraries).
SHARD_MODULES = ("numpy", "pyarrow.parquet", "pandas", "augshard.shard.loop", "augshard.shard.pipeline")
PRELOAD_ENV = "AUGSHARD_PRELOAD"  # comma-separated module names, set for the forkserver only
PARENT_ENV = "AUGSHARD_PARENT_PID"  # the process a shard's own process (or the forkserver) must die with


def preload(modules: list[str]) -> None:
    """Import each module; one that fails is left for the shard that needs it to fail on, as without a forkserver.

    Warnings printed while importing would reach the run's stderr from a process nobody knows: they are silenced
    here (the filters are restored after, so a shard still sees every warning of its own work)."""
    apply_offline_env()  # before any import: transformers and nltk read these variables when first imported
    for name in modules:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import_module(name)  # as a shard imports it (methods.imports: deferred parts stay deferred)
        except Exception:  # noqa: BLE001,S110 - not only ImportError: an import may fail any way; the shard reports it
            pass


def _serve() -> None:
    # Ctrl-C reaches the whole process group: the supervisor relays it as a stop, the forkserver must survive it (it
    # ignores SIGINT itself only after preloading), and its children start ignoring it until their handlers are set.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.environ.pop(PARENT_ENV, "")
    die_with_parent(int(parent) if parent else None)
    preload([m for m in os.environ.pop(PRELOAD_ENV, "").split(",") if m])


if os.environ.get(PRELOAD_ENV) is not None:  # only the forkserver that `executors.LocalExecutor` starts sets it
    _serve()
