"""Executors of shard jobs behind one declared protocol, `ShardExecutor`: local processes (the standard
`ProcessPoolExecutor`, forked from one forkserver that imported the heavy modules once), or a Dask cluster."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from augshard.core.errors import ConfigError
from augshard.methods.offline import offline_env
from augshard.runner.forkserver import PARENT_ENV, PRELOAD_ENV
from augshard.runner.job import ShardJob, ShardResult
from augshard.runner.procs import die_with_parent, environ_kept
from augshard.shard.loop import run_shard

EXECUTORS = ("local", "dask", "dask-local")
START_METHOD_ENV = "AUGSHARD_START_METHOD"  # forkserver (the default where there is one) or spawn
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


class ShardExecutor(Protocol):
    """What the supervisor needs of an executor: run a call somewhere, ask every running call to stop after its
    current chunk, end them at once, and let go of the resources."""

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future: ...

    def stop(self) -> None: ...

    def kill(self) -> None: ...

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None: ...


class ShardProcessDied(RuntimeError):
    """A shard's process ended without a result: killed, out of memory, or a crash in a native library."""


def make_executor(
    kind: str,
    max_workers: int,
    scheduler: str | None = None,
    stop_file: Path | None = None,
    preload: Sequence[str] = (),
    threads: int | None = None,
) -> ShardExecutor:
    """`local`: one process per shard, tied to the supervisor's life, forked from a forkserver that imported
    `preload` once (with `threads` as the thread caps its libraries start with). `dask`: the cluster at `scheduler`;
    `dask-local`: a LocalCluster of `max_workers` workers. Dask tasks run each shard in a fresh Python process of
    their worker (see `run_job_in_fresh_process`)."""
    if kind == "local":
        return LocalExecutor(preload, threads)
    if kind in ("dask", "dask-local"):
        return DaskExecutor(kind, max_workers, scheduler, stop_file)
    raise ConfigError(f"unknown executor '{kind}' (available: {', '.join(EXECUTORS)})")


@dataclass
class _Submission:
    """One submitted call: the future the supervisor holds, and the pool of one process that runs it."""

    future: Future
    pool: ProcessPoolExecutor | None = None
    processes: list[Any] = field(default_factory=list)


class LocalExecutor:
    """Each submitted call runs in a `ProcessPoolExecutor` of its own with one worker: a worker that dies breaks its
    own pool and fails its own future only (one shared pool would fail every shard with `BrokenProcessPool`).

    Workers fork from one forkserver (spawn where there is none, or with AUGSHARD_START_METHOD=spawn) that imported
    the run's heavy modules once; a worker waiting for the forkserver to finish that is started by a thread of its
    own, so the supervisor answers signals meanwhile. Workers die with the supervisor (`procs.die_with_parent`)."""

    def __init__(self, preload: Sequence[str] = (), threads: int | None = None) -> None:
        self.start_method = _start_method()
        self._mp = multiprocessing.get_context(self.start_method)
        if self.start_method == "forkserver":
            _start_forkserver(self._mp, preload, threads)
        self._lock = threading.RLock()  # the supervisor's signal handler may stop or kill inside a submit
        self._submissions: list[_Submission] = []
        self._signal: int | None = None  # what every worker gets, even one started later: SIGTERM or SIGKILL

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future:
        sub = _Submission(Future())
        sub.future.set_running_or_notify_cancel()
        with self._lock:
            self._submissions.append(sub)
        if self.start_method == "forkserver":
            threading.Thread(target=self._run, args=(sub, fn, args), name="augshard-shard-start", daemon=True).start()
        else:
            # A spawned worker's parent is this thread: it must outlive the worker (the parent-death signal is sent
            # when the thread that started a process ends), so the start happens here and the wait in a thread.
            self._start(sub, fn, args)
            threading.Thread(target=self._await, args=(sub,), name="augshard-shard-wait", daemon=True).start()
        return sub.future

    def _run(self, sub: _Submission, fn: Callable[..., Any], args: tuple) -> None:
        self._start(sub, fn, args)
        self._await(sub)

    def _start(self, sub: _Submission, fn: Callable[..., Any], args: tuple) -> None:
        pool = ProcessPoolExecutor(1, mp_context=self._mp, initializer=_start_worker, initargs=(os.getpid(),))
        try:
            inner = pool.submit(_call, fn, args)
        except Exception as exc:  # noqa: BLE001 - the forkserver is gone, or no process can be started
            pool.shutdown(wait=False)
            _settle(sub.future, exc=ShardProcessDied(f"its process could not start: {exc}"))
            return
        with self._lock:
            sub.pool, sub.processes = pool, _workers(pool)
            signum = self._signal if not sub.future.done() else signal.SIGKILL
        if signum is not None:  # a stop or a kill came while this worker was starting
            _send(sub.processes, signum)
        inner.add_done_callback(lambda done: _settle_from(sub, done))

    def _await(self, sub: _Submission) -> None:
        """Once the call has settled, the pool lets its worker go (it exits without interpreter teardown)."""
        try:
            sub.future.exception()
            if sub.pool is not None:
                sub.pool.shutdown(wait=True)
        finally:
            with self._lock:
                self._submissions.remove(sub)

    def _send_all(self, signum: int) -> None:
        with self._lock:
            self._signal = signum if self._signal != signal.SIGKILL else self._signal
            processes = [p for sub in self._submissions for p in sub.processes]
            waiting = [sub.future for sub in self._submissions if sub.pool is None]
        _send(processes, signum)
        for future in waiting:  # not started yet: nothing of it to wait for
            _settle(future, exc=ShardProcessDied("stopped before its process started"))

    def stop(self) -> None:
        """Every worker finishes its current chunk and returns what it has."""
        self._send_all(signal.SIGTERM)

    def kill(self) -> None:
        self._send_all(signal.SIGKILL)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if cancel_futures:
            self.kill()
        if wait:
            with self._lock:
                futures = [sub.future for sub in self._submissions]
            for future in futures:
                future.exception()


def _start_method() -> str:
    available = multiprocessing.get_all_start_methods()
    wanted = os.environ.get(START_METHOD_ENV) or "forkserver"
    if wanted not in ("forkserver", "spawn"):
        raise ConfigError(f"{START_METHOD_ENV}={wanted}: use forkserver or spawn (never fork: torch dislikes it)")
    return wanted if wanted in available else "spawn"


def _start_forkserver(mp: Any, preload: Sequence[str], threads: int | None) -> None:
    """Start the forkserver now, from this thread (its parent-death signal follows the thread that starts it), with
    `augshard.runner.forkserver` preloaded: it imports `preload` with the thread caps the shards will use (numpy's BLAS
    sizes its pool when it is loaded) and the same augshard as this process. One forkserver serves the process:
    a later executor reuses the first one's imports."""
    import multiprocessing.forkserver

    mp.set_forkserver_preload(["augshard.runner.forkserver"])
    root = str(Path(__file__).resolve().parents[2])  # the folder holding this augshard package
    env = {
        PRELOAD_ENV: ",".join(preload),
        PARENT_ENV: str(os.getpid()),
        "PYTHONPATH": os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])]),
    }
    if threads is not None:
        env.update(dict.fromkeys(THREAD_VARS, str(threads)))
    with _environ(env):
        multiprocessing.forkserver.ensure_running()


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """These variables for the processes started meanwhile; the standard library starts the forkserver with this
    process's environment and takes no other."""
    with environ_kept(values):
        os.environ.update(values)
        yield


def _workers(pool: ProcessPoolExecutor) -> list[Any]:
    """The processes of a pool. The standard library exposes them only from Python 3.14 (`terminate_workers`,
    `kill_workers`); until then every version since 3.9 keeps them in this dictionary, filled in by `submit`."""
    return list(getattr(pool, "_processes", {}).values())


def _send(processes: list[Any], signum: int) -> None:
    for proc in processes:
        if proc.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signum)


def _settle(future: Future, result: Any = None, exc: BaseException | None = None) -> None:
    with contextlib.suppress(Exception):  # settled already (a stop settles calls that never started)
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)


def _settle_from(sub: _Submission, done: Future) -> None:
    exc = done.exception()
    if isinstance(exc, BrokenProcessPool):
        proc = sub.processes[0] if sub.processes else None
        if proc is not None:
            proc.join(1.0)  # it is dead already: this only reads its exit code
        code = proc.exitcode if proc is not None else None
        exc = ShardProcessDied(f"its process {proc.pid if proc else '?'} exited with code {code}")
    _settle(sub.future, None if exc else done.result(), exc)


def _start_worker(supervisor: int) -> None:
    """A worker's first act: die with the supervisor (its parent, or through the forkserver its grandparent)."""
    die_with_parent(ancestor=supervisor)
    _thread_locks_for_tqdm()


def _call(fn: Callable[..., Any], args: tuple) -> Any:
    """`fn(*args)` in the worker; its exception comes back as one line (its own class may not pickle)."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - the supervisor decides
        raise RuntimeError(f"{type(exc).__name__}: {exc}") from None
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


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

        # Its module imports distributed (0.4 s of imports): only a Dask run pays for it.
        from augshard.runner.dask_plugin import OfflineEnvPlugin

        self.client.register_plugin(OfflineEnvPlugin(), name="augshard-offline-env")
        self._executor = self.client.get_executor(pure=False)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """`run_shard(job)` on a worker: the job crosses as JSON data, the result comes back as JSON through the
        Dask future (see `run_job_in_fresh_process`); no other call can be sent."""
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


SHARD_PROCESS = "augshard.runner.shard_process"  # the fresh process's module: imported by nothing, so run once


def run_job_in_fresh_process(job_json: str) -> str:
    """Run the shard a JSON job describes (`ShardJob.to_json`) in a fresh Python process with augshard's environment
    (a fixed PYTHONHASHSEED must be set before an interpreter starts, and a Dask worker's own process cannot be
    given one); its result comes back as JSON (`ShardResult.to_json`).

    The job goes in on the process's stdin and the result comes out through a pipe of its own: nothing crosses
    through files on shared storage, where whoever can write the log folder could swap a job or plant a link, and
    nothing that crosses is code (no pickle): the process only ever calls `run_shard`."""
    read_fd, write_fd = os.pipe()
    env = {**os.environ, **offline_env(), PARENT_ENV: str(os.getpid())}
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", SHARD_PROCESS, str(write_fd)],
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


def shard_process_main(result_fd: str) -> int:
    """The fresh process of `run_job_in_fresh_process`: a JSON job on stdin, the JSON result on `result_fd`."""
    die_with_parent(int(os.environ.get(PARENT_ENV, "0")) or None)
    _thread_locks_for_tqdm()
    out = os.fdopen(int(result_fd), "wb")
    job = ShardJob.from_json(sys.stdin.read())
    result = run_shard(job)
    out.write(result.to_json().encode("utf-8"))
    out.close()
    return 0
