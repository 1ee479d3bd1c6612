"""Executors behind the one `concurrent.futures.Executor` interface: local spawned processes, or a Dask cluster.

Both also take `stop()` (shards finish their chunk and return) and `kill()` (local workers die at once).
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

from augshard.errors import ConfigError
from augshard.procs import die_with_parent

EXECUTORS = ("local", "dask", "dask-local")
PARENT_ENV = "AUGSHARD_PARENT_PID"  # the process a Dask shard's own process must die with


class ShardProcessDied(RuntimeError):
    """A shard's process ended without a result: killed, out of memory, or a crash in a native library."""


def make_executor(kind: str, max_workers: int, scheduler: str | None = None, stop_file: Path | None = None) -> Any:
    """`local`: one spawned process per shard (spawn, not fork: torch and tokenizers dislike forked state), tied to
    the supervisor's life. `dask`: the cluster at `scheduler`; `dask-local`: a LocalCluster of `max_workers`
    workers. Dask tasks run each shard in a fresh Python process of their worker (see `run_in_fresh_process`)."""
    if kind == "local":
        return LocalExecutor()
    if kind in ("dask", "dask-local"):
        return DaskExecutor(kind, max_workers, scheduler, stop_file)
    raise ConfigError(f"unknown executor '{kind}' (available: {', '.join(EXECUTORS)})")


class LocalExecutor(Executor):
    """Each submitted call runs in its own spawned process: a worker that dies fails its own future only.

    The result comes back through a pipe; the worker then exits at once (interpreter teardown with torch loaded
    takes seconds that nobody waits for), having created no process-shared lock that could leak.
    """

    def __init__(self) -> None:
        self._mp = multiprocessing.get_context("spawn")
        self._procs: dict[Future, Any] = {}
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        receiver, sender = self._mp.Pipe(duplex=False)
        proc = self._mp.Process(
            target=_worker_main, args=(sender, os.getpid(), fn, args, kwargs), name="augshard-shard"
        )
        proc.start()
        sender.close()
        future: Future = Future()
        future.set_running_or_notify_cancel()
        with self._lock:
            self._procs[future] = proc
        threading.Thread(target=self._collect, args=(future, proc, receiver), daemon=True).start()
        return future

    def _collect(self, future: Future, proc: Any, receiver: Any) -> None:
        try:
            ok, value = receiver.recv()
        except (EOFError, OSError):
            proc.join()
            ok, value = False, ShardProcessDied(f"its process {proc.pid} exited with code {proc.exitcode}")
        finally:
            receiver.close()
        proc.join()
        with self._lock:
            self._procs.pop(future, None)
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def _signal(self, signum: int) -> None:
        with self._lock:
            pids = [p.pid for p in self._procs.values() if p.pid]
        for pid in pids:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        """Every worker finishes its current chunk and returns what it has."""
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if cancel_futures:
            self.kill()
        if wait:
            with self._lock:
                procs = list(self._procs.values())
            for proc in procs:
                proc.join()


def _worker_main(sender: Any, parent: int, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
    die_with_parent(parent)
    _thread_locks_for_tqdm()
    try:
        outcome: tuple[bool, Any] = (True, fn(*args, **kwargs))
    except Exception as exc:  # noqa: BLE001 - the supervisor decides; the exception may not pickle
        outcome = (False, RuntimeError(f"{type(exc).__name__}: {exc}"))
    sender.send(outcome)
    sender.close()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _thread_locks_for_tqdm() -> None:
    """sentence-transformers draws a (disabled) tqdm bar per encode call, and tqdm makes a process-shared lock
    for it; a worker that exits without interpreter teardown (or is killed) would leave it to the resource
    tracker, which then warns about leaked semaphores. Shards need no cross-process lock for bars they never show."""
    try:
        import tqdm
    except ImportError:
        return
    tqdm.tqdm.set_lock(threading.RLock())


class DaskExecutor(Executor):
    """A `distributed.Client` executor (impure tasks: every shard runs, none is deduplicated as cached)."""

    def __init__(self, kind: str, n_workers: int, scheduler: str | None, stop_file: Path | None = None) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError("--executor dask needs Dask distributed: pip install 'augshard[dask]'") from None
        self.stop_file = stop_file
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

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        return self._executor.submit(run_in_fresh_process, fn, *args, **kwargs)

    def stop(self) -> None:
        """Remote shards cannot be signalled: they read the stop file between chunks."""
        if self.stop_file is not None:
            self.stop_file.touch()

    def kill(self) -> None:
        self.stop()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._executor.shutdown(wait=wait)
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def run_in_fresh_process(fn: Callable[..., Any], job: Any) -> Any:
    """`fn(job)` in a fresh Python process with augshard's environment (a fixed PYTHONHASHSEED must be set before
    an interpreter starts, and a Dask worker's own process cannot be given one). The call and its result travel
    as pickle files beside the shard's log, on the storage every worker shares."""
    from augshard.methods.offline import offline_env

    log_dir = Path(job.cfg.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:8]
    job_path = log_dir / f".shard_{job.index}_of_{job.num_shards}.{token}.job"
    result_path = job_path.with_suffix(".result")
    job_path.write_bytes(pickle.dumps((fn, job)))
    env = {**os.environ, **offline_env(), PARENT_ENV: str(os.getpid())}
    try:
        proc = subprocess.run([sys.executable, "-m", "augshard.executors", str(job_path), str(result_path)], env=env)
        if proc.returncode != 0 or not result_path.is_file():
            raise ShardProcessDied(f"shard {job.index} process exited with code {proc.returncode}")
        return pickle.loads(result_path.read_bytes())
    finally:
        job_path.unlink(missing_ok=True)
        result_path.unlink(missing_ok=True)


def _main(job_path: str, result_path: str) -> int:
    die_with_parent(int(os.environ.get(PARENT_ENV, "0")) or None)
    _thread_locks_for_tqdm()
    fn, job = pickle.loads(Path(job_path).read_bytes())
    result = fn(job)
    tmp = Path(result_path + ".tmp")
    tmp.write_bytes(pickle.dumps(result))
    tmp.replace(result_path)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1], sys.argv[2]))
