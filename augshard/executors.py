"""Executors behind the one `concurrent.futures.Executor` interface: local spawned processes, or a Dask cluster.

Both also take `stop()` (shards finish their chunk and return) and `kill()` (local workers die at once).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
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
    workers. Dask tasks run each shard in a fresh Python process of their worker (see `run_job_in_fresh_process`)."""
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
                raise ConfigError(
                    "--executor dask needs --scheduler tcp://HOST:8786 or tls://HOST:8786 (the cluster's scheduler)"
                )
            address = scheduler
        try:
            # Security() reads Dask's own configuration: a tls:// scheduler's CA, certificate and key come from
            # DASK_DISTRIBUTED__COMM__TLS__* or ~/.config/dask (docs/operations.md, "Who can run code where").
            from distributed.security import Security

            self.client = Client(address, timeout="20s", security=Security())
        except OSError as exc:
            raise ConfigError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        except TypeError as exc:  # distributed's word for a tls:// address without certificates
            raise ConfigError(
                f"cannot connect to the Dask scheduler at {address}: {exc}; give the TLS files through "
                "DASK_DISTRIBUTED__COMM__TLS__CA_FILE, __CLIENT__CERT and __CLIENT__KEY"
            ) from None
        from augshard.dask_plugin import OfflineEnvPlugin  # imports distributed: only Dask runs pay for it

        self.client.register_plugin(OfflineEnvPlugin(), name="augshard-offline-env")
        self._executor = self.client.get_executor(pure=False)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """`run_shard(job)` on a worker: the job crosses as JSON data, the result comes back as JSON through the
        Dask future (see `run_job_in_fresh_process`); no other call can be sent."""
        from augshard.shard import ShardJob, ShardResult, run_shard

        (job,) = args
        if fn is not run_shard or kwargs or not isinstance(job, ShardJob):
            raise TypeError("the Dask executor runs shard jobs only: submit(run_shard, job)")
        remote = self._executor.submit(run_job_in_fresh_process, job.to_json())
        future: Future = Future()
        future.set_running_or_notify_cancel()

        def settle(done: Future) -> None:
            try:
                future.set_result(ShardResult.from_json(done.result()))
            except BaseException as exc:  # noqa: BLE001 - the supervisor decides what a failed shard means
                future.set_exception(exc)

        remote.add_done_callback(settle)
        return future

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


def run_job_in_fresh_process(job_json: str) -> str:
    """Run the shard a JSON job describes (`ShardJob.to_json`) in a fresh Python process with augshard's environment
    (a fixed PYTHONHASHSEED must be set before an interpreter starts, and a Dask worker's own process cannot be
    given one); its result comes back as JSON (`ShardResult.to_json`).

    The job goes in on the process's stdin and the result comes out through a pipe of its own: nothing crosses
    through files on shared storage, where whoever can write the log folder could swap a job or plant a link, and
    nothing that crosses is code (no pickle): the process only ever calls `run_shard`."""
    from augshard.methods.offline import offline_env

    read_fd, write_fd = os.pipe()
    env = {**os.environ, **offline_env(), PARENT_ENV: str(os.getpid())}
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "augshard.executors", str(write_fd)],
            env=env,
            stdin=subprocess.PIPE,
            pass_fds=(write_fd,),
        )
    except BaseException:
        os.close(read_fd)
        os.close(write_fd)
        raise
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as result:
        assert proc.stdin is not None
        try:
            proc.stdin.write(job_json.encode("utf-8"))
            proc.stdin.close()
        except BrokenPipeError:
            pass  # the process died at once: its exit code says so below
        answer = result.read()
    code = proc.wait()
    if code != 0 or not answer:
        raise ShardProcessDied(f"shard process exited with code {code}")
    return answer.decode("utf-8")


def _main(result_fd: str) -> int:
    """The fresh process of `run_job_in_fresh_process`: a JSON job on stdin, the JSON result on `result_fd`."""
    from augshard.shard import ShardJob, run_shard

    die_with_parent(int(os.environ.get(PARENT_ENV, "0")) or None)
    _thread_locks_for_tqdm()
    out = os.fdopen(int(result_fd), "wb")
    job = ShardJob.from_json(sys.stdin.read())
    result = run_shard(job)
    out.write(result.to_json().encode("utf-8"))
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1]))
