"""Executors behind the one `concurrent.futures.Executor` interface: local spawned processes, or a Dask cluster."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import subprocess
import sys
import uuid
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from augshard.errors import ConfigError

EXECUTORS = ("local", "dask", "dask-local")


def _die_with_parent() -> None:
    """Linux: the kernel sends SIGKILL to this process when its parent dies, so no shard is ever orphaned."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def make_executor(kind: str, max_workers: int, scheduler: str | None = None) -> Executor:
    """`local`: spawned processes (spawn, not fork: torch and tokenizers dislike forked state), tied to the
    supervisor's life. `dask`: the cluster at `scheduler`; `dask-local`: a LocalCluster of `max_workers` workers.
    Dask tasks run each shard in a fresh Python process of their worker (see `run_shard_in_process`)."""
    if kind == "local":
        return ProcessPoolExecutor(
            max_workers=max_workers, mp_context=multiprocessing.get_context("spawn"), initializer=_die_with_parent
        )
    if kind in ("dask", "dask-local"):
        return DaskExecutor(kind, max_workers, scheduler)
    raise ConfigError(f"unknown executor '{kind}' (available: {', '.join(EXECUTORS)})")


class DaskExecutor(Executor):
    """A `distributed.Client` executor (impure tasks: every shard runs, none is deduplicated as cached)."""

    def __init__(self, kind: str, n_workers: int, scheduler: str | None) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError("--executor dask needs Dask distributed: pip install 'augshard[dask]'") from None
        self.cluster = None
        if kind == "dask-local":
            self.cluster = LocalCluster(
                n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None
            )
            address = self.cluster.scheduler_address
        else:
            if not scheduler:
                raise ConfigError("--executor dask needs --scheduler tcp://HOST:8786 (the cluster's scheduler)")
            address = scheduler
        try:
            self.client = Client(address, timeout="20s")
        except OSError as exc:
            raise ConfigError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        from augshard.dask_plugin import OfflineEnvPlugin  # imports distributed: only Dask runs pay for it

        self.client.register_plugin(OfflineEnvPlugin(), name="augshard-offline-env")
        self._executor = self.client.get_executor(pure=False)

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        return self._executor.submit(run_shard_in_process, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._executor.shutdown(wait=wait)
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def run_shard_in_process(job: Any) -> Any:
    """Run one shard in a fresh Python process with augshard's environment (a fixed PYTHONHASHSEED must be set
    before an interpreter starts, and a Dask worker's own process cannot be given one). The job and its result
    travel as pickle files beside the shard's log, on the storage every worker shares."""
    from augshard.methods.offline import offline_env

    log_dir = Path(job.cfg.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:8]
    job_path = log_dir / f".shard_{job.index}_of_{job.num_shards}.{token}.job"
    result_path = job_path.with_suffix(".result")
    job_path.write_bytes(pickle.dumps(job))
    env = {**os.environ, **offline_env()}
    try:
        proc = subprocess.run([sys.executable, "-m", "augshard.executors", str(job_path), str(result_path)], env=env)
        if proc.returncode != 0 or not result_path.is_file():
            raise RuntimeError(f"shard {job.index} process exited with code {proc.returncode}")
        return pickle.loads(result_path.read_bytes())
    finally:
        job_path.unlink(missing_ok=True)
        result_path.unlink(missing_ok=True)


def _main(job_path: str, result_path: str) -> int:
    from augshard.shard import run_shard

    _die_with_parent()
    job = pickle.loads(Path(job_path).read_bytes())
    result = run_shard(job)
    tmp = Path(result_path + ".tmp")
    tmp.write_bytes(pickle.dumps(result))
    tmp.replace(result_path)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1], sys.argv[2]))
