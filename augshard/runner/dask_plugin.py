"""The Dask worker plugin, in a module of its own so that only Dask runs import distributed."""

from __future__ import annotations

from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from augshard.methods.offline import apply_offline_env


class OfflineEnvPlugin(WorkerPlugin):
    """Puts augshard's offline environment into every Dask worker (the shard processes it starts inherit it)."""

    def setup(self, worker: Any) -> None:
        apply_offline_env()
