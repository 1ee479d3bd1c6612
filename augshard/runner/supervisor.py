"""Running a prepared plan: one job per shard on an executor, retries, signals, the summary, the merge."""

from __future__ import annotations

import functools
import os
import shutil
import signal
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from augshard.events.monitor import ProgressView
from augshard.events.output import notice, plural
from augshard.events.status import EventsWatcher, ShardStatus
from augshard.events.stream import EventWriter, ShardDone, ShardStart, events_path, log_path, read_events
from augshard.methods.registry import family
from augshard.runner.executors import ShardExecutor, make_executor
from augshard.runner.forkserver import SHARD_MODULES
from augshard.runner.job import RunOutcome, ShardJob, ShardResult
from augshard.runner.lock import RunLock
from augshard.runner.preflight import Preflight, devices_line, preflight
from augshard.runner.run_record import write_run_record
from augshard.runner.stopping import stop_file_path
from augshard.runner.summary import RunDocument, summarize_run
from augshard.shard.cache import method_caches
from augshard.shard.claims import claimed_by, claims_name, sweep_claims
from augshard.shard.loop import run_shard
from augshard.storage.manifest import find_shard_manifests, write_shard_manifest
from augshard.storage.merge import merge
from augshard.storage.outcome import ComboOutcome, ShardState
from augshard.storage.store import clean_stale_temp, read_complete, remove_empty_temp
from augshard.storage.temporaries import sweep_temp_files

STOP_GRACE_S = 5.0  # after the first signal, shards get this long to finish their chunk before being killed


def run(cfg: Any, console: Console, live: bool = True, fmt: str = "table") -> int:
    """Run the plan; returns the exit code (0 ok, 1 some combo failed, 130/143 interrupted).

    Progress is the live shard table on a terminal (`live`), plain lines otherwise.
    """
    t0 = time.time()
    return run_checked(preflight(cfg, console), console, live, fmt, t0).exit_code


@dataclass(frozen=True)
class RunEnd:
    """What a run came to, typed for the API: its exit code, what the shards returned (every combo's outcome, as
    their manifests hold it) and the run's document (None when interrupted: nothing was summarised)."""

    exit_code: int
    outcome: RunOutcome
    document: RunDocument | None = None


def run_checked(prep: Preflight, console: Console, live: bool = True, fmt: str = "table", t0: float = 0.0) -> RunEnd:
    """`run` of a plan already prepared (the API keeps `prep` for its typed results); `t0`: when the run began."""
    cfg = prep.cfg
    lock = RunLock(cfg.output_root, None if cfg.shard_index is None else (cfg.shard_index, prep.plan.num_shards))
    with lock:
        return _run_locked(prep, console, live, t0 or time.time(), fmt)


def _run_locked(prep: Preflight, console: Console, live: bool, t0: float, fmt: str) -> RunEnd:

    cfg = prep.cfg
    for d in (cfg.output_root, cfg.cache_dir, cfg.log_dir):
        Path(d).mkdir(parents=True, exist_ok=True)
    write_run_record(cfg, prep.plan.plan_fingerprint)  # run.yaml: `augshard run --config` it to run this again
    # What dead processes of this host left (a kill -9, a full disk): combo folders, temporary files, claims.
    clean_stale_temp(cfg.output_root)
    sweep_temp_files(cfg.output_root)
    sweep_claims(cfg.log_dir)
    if cfg.shard_index is None:
        # A whole run writes every shard's manifest anew (resumed combos included): manifests an earlier, stopped
        # run left, with another shard count (`auto` follows the work left), would only make the merge refuse.

        for paths in find_shard_manifests(Path(cfg.output_root)).values():
            for path in paths.values():
                path.unlink(missing_ok=True)
    claims = None
    if cfg.steal and cfg.shard_index is None and prep.plan.num_shards > 1:
        # This run's claims (work stealing); a new run starts with none, whatever an interrupted one left.
        claims = Path(cfg.log_dir) / claims_name(prep.plan.plan_fingerprint)
        claims.mkdir(parents=True)
    try:
        jobs = make_jobs(prep, str(claims) if claims else "")
        outcome = ShardRunner(prep, jobs, console, live).run()
    finally:
        if claims is not None:
            shutil.rmtree(claims, ignore_errors=True)
    if outcome.interrupted:
        return RunEnd(_interrupted(prep, outcome, console), outcome)

    _clean_temp(cfg.output_root)
    # A whole run merges its shards' manifests (one shard of a job array leaves that to `augshard merge`).
    merged = merge(cfg.output_root, cfg.output_name, keep_shards=cfg.keep_shards) if cfg.shard_index is None else None
    doc = summarize_run(prep, jobs, outcome, merged, console, t0, fmt)
    return RunEnd(doc.exit_code, outcome, doc)


def make_jobs(prep: Preflight, claims_dir: str = "") -> list[ShardJob]:
    cfg, plan = prep.cfg, prep.plan
    indexes = [cfg.shard_index] if cfg.shard_index is not None else list(range(plan.num_shards))
    busy = [i for i in indexes if plan.shards[i]]
    threads = max(1, (os.cpu_count() or 1) // max(1, len(busy)))
    unavailable = tuple(ComboOutcome.unavailable(c, plan.plan_fingerprint, reason) for c, reason in plan.unavailable)
    return [
        ShardJob(
            cfg=cfg,
            index=i,
            num_shards=plan.num_shards,
            combos=plan.shards[i],
            specs=tuple(prep.specs),
            plan_fingerprint=plan.plan_fingerprint,
            input_sha=prep.input_sha,
            torch_threads=threads,
            unavailable=unavailable if i == 0 else (),
            others=tuple((j, plan.shards[j]) for j in indexes if j != i) if claims_dir else (),
            claims_dir=claims_dir,
        )
        for i in indexes
    ]


class _Signals:
    """The first SIGINT/SIGTERM asks the shards to stop after their current chunk; the second kills them."""

    def __init__(self, executor: ShardExecutor) -> None:
        self.executor = executor
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, _frame: object) -> None:
        if self.signum is None:
            self.signum = signum
            self.executor.stop()
        else:
            # Every worker dies now; the supervisor then unwinds (its lock, the executor's process-shared queues)
            # instead of leaving them to the resource tracker, which would warn on stderr about leaked semaphores.
            self.executor.kill()
            raise SystemExit(128 + self.signum)


class ShardRunner:
    """Runs the jobs of a run on its executor: the live view, retries of dead shards, signals, a stop deadline."""

    def __init__(self, prep: Preflight, jobs: list[ShardJob], console: Console, live: bool) -> None:
        self.prep, self.cfg, self.jobs, self.console, self.live = prep, prep.cfg, jobs, console, live
        self.outcome = RunOutcome()
        self.attempts: dict[int, int] = {}

    def run(self) -> RunOutcome:
        cfg, prep = self.cfg, self.prep
        for job in self.jobs:  # this run's events start fresh (other shards' jobs may be running); logs keep history
            events_path(cfg.log_dir, job.index, job.num_shards).unlink(missing_ok=True)
        todo = sum(1 for j in self.jobs for pc in j.combos if pc.combo.combo_id not in prep.complete)
        self.console.print(
            f"augshard: {len(prep.plan.combos)} {plural(len(prep.plan.combos), 'combo')} on {prep.plan.num_shards} "
            f"{plural(prep.plan.num_shards, 'shard')} ({prep.shards_reason}): {todo} to run, {len(prep.complete)} "
            f"complete; plan {prep.plan.plan_fingerprint}"
        )
        self.console.print(devices_line(cfg, prep.specs), markup=False)
        if prep.asks is not None and not prep.asks.uniform:
            self.console.print(prep.asks.line(), markup=False)
        # A shard with nothing left to compute is settled here, without paying a worker's start-up.
        spawn = [j for j in self.jobs if any(pc.combo.combo_id not in prep.complete for pc in j.combos)]
        for job in self.jobs:
            if job not in spawn:
                self.outcome.results[job.index] = run_shard(job, install_signals=False)
        if spawn:
            self._run_on_executor(spawn)
        return self.outcome

    def _run_on_executor(self, spawn: list[ShardJob]) -> None:

        cfg = self.cfg
        stop_file = None
        if cfg.executor != "local":  # local shards get signals; remote ones read this file between chunks
            stop_file = stop_file_path(cfg.log_dir, self.prep.plan.plan_fingerprint)
            stop_file.unlink(missing_ok=True)
        executor = make_executor(
            cfg.executor, len(spawn), cfg.scheduler, stop_file, shard_imports(self.prep), spawn[0].torch_threads
        )
        watcher = EventsWatcher(cfg.log_dir, self.prep.plan.num_shards, [j.index for j in self.jobs])
        override = functools.partial(_mark_crashed, self.outcome.crashed)
        view = ProgressView(self.console, watcher, live=self.live, override=override)
        futures = {executor.submit(run_shard, job): job for job in spawn}
        self.attempts = dict.fromkeys((j.index for j in spawn), 0)
        try:
            with _Signals(executor) as signals, view:
                self._wait(executor, futures, signals, view)
                if signals.signum is not None:
                    close_killed_streams(self.jobs, cfg.log_dir)
                    view.refresh(force=True)
        finally:
            executor.shutdown(wait=False, cancel_futures=True)
            if stop_file is not None:
                stop_file.unlink(missing_ok=True)

    def _wait(self, executor: ShardExecutor, futures: dict[Future, ShardJob], signals: _Signals, view: Any) -> None:
        deadline = None
        while futures:
            done, _ = wait(list(futures), timeout=1.0, return_when=FIRST_COMPLETED)
            for fut in done:
                job = futures.pop(fut)
                try:
                    self.outcome.results[job.index] = fut.result()
                except Exception as exc:  # noqa: BLE001 - a dead worker fails its shard, not the run
                    retry = self._died(job, f"{type(exc).__name__}: {exc}", signals.signum)
                    if retry:
                        futures[executor.submit(run_shard, job)] = job
            self.outcome.signum = signals.signum
            if signals.signum is not None and deadline is None:
                deadline = time.time() + STOP_GRACE_S
            if deadline is not None and time.time() > deadline:
                executor.kill()
            view.refresh(force=not futures)

    def _died(self, job: ShardJob, error: str, signum: int | None) -> bool:
        """A shard's worker died: True to retry it; else its result is rebuilt from what it left on disk."""
        if signum is None and self.attempts[job.index] < self.cfg.max_retries:
            self.attempts[job.index] += 1
            notice(
                f"shard {job.index} died ({escape(error)}); retry {self.attempts[job.index]} of {self.cfg.max_retries}",
                "warning",
            )
            return True
        if signum is None:
            self.outcome.crashed[job.index] = error
        self.outcome.results[job.index] = crashed_result(job, error, interrupted=signum is not None)
        return False


def shard_imports(prep: Preflight) -> list[str]:
    """The heavy modules this run's shards import (as `python -X importtime` shows a shard's process), for a local
    forkserver to import once: what every shard reads and writes with, each method's library module (and what its
    build reads), and the similarity model's runtime.

    A rerun whose method cache already exists may answer every call from it, and a shard answered from its cache
    imports no library: then the forkserver imports only what every shard needs, and a shard that does compute
    imports its methods' libraries itself (seconds, in parallel with the other shards), rather than every shard
    waiting for seconds of imports first."""
    cfg = prep.cfg
    modules = list(SHARD_MODULES)
    if method_caches(cfg.cache_dir, cfg.disk_cache):
        return modules
    for spec in prep.specs:
        fam = family(spec.lib, spec.kind)
        if fam is not None:  # the module of its class (nlpaug.augmenter.char, textattack.transformations), ...
            modules += fam.modules
    if cfg.quality_metric == "embedding":
        modules += ["onnxruntime", "tokenizers"] if cfg.embedding_backend == "onnx" else ["sentence_transformers"]
    return list(dict.fromkeys(modules))


def close_killed_streams(jobs: list[ShardJob], log_dir: str) -> None:
    """After a stop, a shard killed before it could say so gets its last event from the supervisor, so `run`,
    `monitor` and the report show it stopped rather than dead."""
    for job in jobs:
        path = events_path(log_dir, job.index, job.num_shards)
        events = read_events(path)
        starts = [i for i, e in enumerate(events) if isinstance(e, ShardStart)]
        if not starts or any(isinstance(e, ShardDone) for e in events[starts[-1] :]):
            continue
        writer = EventWriter(path, job.index, pid=events[starts[-1]].pid)  # said on behalf of the killed shard
        writer.emit(ShardDone(interrupted=True, duration=round(time.time() - events[starts[-1]].ts, 3)))
        writer.close()


def _mark_crashed(crashed: dict[int, str], statuses: list[ShardStatus]) -> list[ShardStatus]:
    """A shard whose worker died, as its future told the supervisor, shows dead even before its pid is reaped."""
    return [
        replace(st, state=ShardState.DEAD)
        if st.shard in crashed and st.state in (ShardState.RUNNING, ShardState.PENDING)
        else st
        for st in statuses
    ]


def crashed_result(job: ShardJob, error: str, interrupted: bool = False) -> ShardResult:
    """A shard whose process died or was killed: combos it finished are ok, the others failed (or interrupted)."""

    outcomes = list(job.unavailable)
    taken = claimed_by(job.claims_dir, job.index)  # combos it took from other shards' lists are its to report
    extra = [pc for _, lst in job.others for pc in lst if pc.combo.combo_id in taken]
    for pc in [*job.combos, *extra]:
        meta = read_complete(job.cfg.output_root, pc.combo, pc.fingerprint)
        if meta is not None:
            outcomes.append(ComboOutcome.complete(pc.combo, meta, job.index, job.plan_fingerprint))
        elif interrupted:
            outcomes.append(ComboOutcome.interrupted(pc.combo, job.index, job.plan_fingerprint, error))
        else:
            outcomes.append(ComboOutcome.failed(pc.combo, job.index, job.plan_fingerprint, error))
    path = write_shard_manifest(job.cfg.output_root, job.index, job.num_shards, outcomes)
    lpath = log_path(job.cfg.log_dir, job.index, job.num_shards)
    return ShardResult(job.index, outcomes, log_path=str(lpath), manifest_path=str(path))


def _clean_temp(output_root: str) -> None:
    clean_stale_temp(output_root)  # what a worker killed mid-combo left behind
    remove_empty_temp(output_root)


def _interrupted(prep: Preflight, outcome: RunOutcome, console: Console) -> int:
    _clean_temp(prep.cfg.output_root)
    done_ok = sum(1 for r in outcome.results.values() for o in r.outcomes if o.ok)
    console.print(
        f"[red]interrupted[/red]: {done_ok} {plural(done_ok, 'combo')} complete and kept, shard manifests written; "
        "rerun the same command to resume"
    )
    return 128 + (outcome.signum or signal.SIGINT)
