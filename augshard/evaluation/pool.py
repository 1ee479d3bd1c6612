"""The worker processes of `augshard evaluate`: every task (the baseline, then each candidate) scored in a pool of
spawned processes, or in this one; workers that end at once, with their pool, when the evaluation is stopped."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from augshard.evaluation.classifiers import take_fits
from augshard.evaluation.scoring import Candidate, WorkerSetup, evaluate_candidate, init_worker
from augshard.runner.executors import _workers
from augshard.runner.procs import die_with_parent


def run_tasks(
    setup: WorkerSetup, tasks: list[Candidate | None], workers: int, progress: Callable[[int, int], None] | None
) -> list[dict[str, Any]]:
    """Every task's scores, in task order, from `workers` processes (or this one). The results do not depend on
    which worker ran what: each task is computed alone from the same setup."""
    results: list[dict[str, Any] | None] = [None] * len(tasks)
    done = 0
    if workers == 1:
        init_worker(setup)
        take_fits()  # counted from here: what this evaluation fits
        for i, task in enumerate(tasks):
            results[i] = score_task(i, task)
            done += 1
            if progress:
                progress(done, len(tasks))
        return results  # type: ignore[return-value]
    # Largest first, so no worker is left with a big combo at the end.
    order = sorted(range(len(tasks)), key=lambda i: -_size(tasks[i]))
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=start_worker, initargs=(os.getpid(), setup))
    try:
        futures = [pool.submit(score_task, i, tasks[i]) for i in order]
        for future in as_completed(futures):
            result = future.result()
            results[result["index"]] = result
            done += 1
            if progress:
                progress(done, len(tasks))
    except BaseException:
        # Stopped (a signal, Ctrl-C) or failed: the workers end now, not after their current combo; once they and
        # this process are gone, nothing holds the resource tracker's pipe and it ends too.
        for process in _workers(pool):
            if process.is_alive():
                process.kill()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    return results  # type: ignore[return-value]


def start_worker(parent: int, setup: WorkerSetup) -> None:
    """A worker dies with the evaluation (even a `kill -9` of it) and leaves Ctrl-C to it: the evaluation stops its
    workers itself, so a terminal's Ctrl-C, sent to every process of the group, prints no worker's traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent)
    init_worker(setup)
    take_fits()


def score_task(index: int, task: Candidate | None) -> dict[str, Any]:
    """One task's scores, with how its TF-IDF models were fitted (the liblinear binding, or the fallback)."""
    result = evaluate_candidate(index, task)
    result["fits"] = take_fits()
    return result


def _size(task: Candidate | None) -> int:
    if task is None:
        return 0
    return sum(os.path.getsize(f) for f in task.files if os.path.exists(f))
