"""The supervisor: validates, plans once, runs one job per shard on an executor, reports, merges."""

from __future__ import annotations

import functools
import os
import shutil
import signal
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field, replace
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from augshard.config import DEFAULT_METHODS_CONFIG, RunConfig, resolve_conf_path
from augshard.errors import InputError, MethodError, OutputError
from augshard.events import ShardStatus
from augshard.methods import MethodSpec, MethodStatus, check_methods, load_catalogue, method_check_record, select
from augshard.monitor import ProgressView
from augshard.plan import Plan, make_plan
from augshard.shard import ShardJob, ShardResult, stop_file_path


@dataclass
class Prepared:
    """Everything validated before any shard starts."""

    plan: Plan
    specs: list[MethodSpec]
    statuses: dict[str, MethodStatus]
    input_sha: str
    rows_usable: int
    rows_skipped: dict[str, int]
    catalogue_path: Path
    complete: set[str] = field(default_factory=set)  # combo ids already complete for this config


def prepare(cfg: RunConfig, console: Console, dry_run: bool = False) -> Prepared:
    """Input, catalogue and methods are checked here, so user errors surface before anything is written."""
    from augshard.data import load_dataset
    from augshard.methods.offline import apply_offline_env
    from augshard.store import read_complete

    catalogue_path = resolve_conf_path(cfg.methods_config, DEFAULT_METHODS_CONFIG)
    catalogue = load_catalogue(catalogue_path)
    specs = select(catalogue, cfg.methods, str(catalogue_path))
    dataset = load_dataset(cfg.input, cfg.text_col, cfg.evidence_col, cfg.id_col)
    if not dataset.rows:
        reasons = ", ".join(f"{n} {r}" for r, n in dataset.skipped.items())
        raise InputError(f"{cfg.input}: no usable rows ({reasons})")
    _check_output_root(Path(cfg.output_root))
    _check_output_root(Path(cfg.cache_dir), "--cache-dir")
    _check_output_root(Path(cfg.log_dir), "--log-dir")
    apply_offline_env()
    if cfg.quality_metric == "embedding":
        from augshard.quality import ensure_onnx_export, resolve_embedding_model

        resolve_embedding_model(cfg.embedding_model)  # a missing model is a user error, said before any shard starts
        if cfg.embedding_backend == "onnx":
            # A dry run writes nothing, not even the export: it only checks that one can be made.
            ensure_onnx_export(cfg.embedding_model, lambda line: console.print(escape(line)), check_only=dry_run)
    costs = None
    if cfg.calibrate:
        from augshard.methods.bench import load_costs

        costs = load_costs(cfg.calibrate)
        measured = sum(s.id in costs for s in specs)
        console.print(f"costs: measured for {measured} of {len(specs)} methods ({cfg.calibrate}); others: catalogue")

    def complete_in(plan: Plan) -> set[str]:
        if cfg.force:
            return set()
        return {pc.combo.combo_id for pc in plan.combos if read_complete(cfg.output_root, pc.combo, pc.fingerprint)}

    # Only methods that still have work are built and probed: a rerun of a finished job imports no library.
    plan = make_plan(cfg, specs, dataset.sha256, {}, costs)
    complete = complete_in(plan)
    needed = {m for pc in plan.combos if pc.combo.combo_id not in complete for m in pc.combo.methods}
    # A method that passed under the same libraries and resources before is not rebuilt here (its shard builds
    # it anyway): the supervisor then imports no library at all.
    checked = check_methods([s for s in specs if s.id in needed], method_check_record())
    statuses = {
        s.id: checked.get(s.id) or MethodStatus(s.id, s.lib, s.kind, ok=True, reason="not checked") for s in specs
    }
    unavailable = {m: st.reason for m, st in statuses.items() if not st.ok}
    for m, st in statuses.items():
        if not st.ok:
            console.print(
                f"[yellow]warning:[/yellow] method {m} is unavailable: {escape(st.reason)} (fix: {escape(st.fix)})"
            )
    if len(unavailable) == len(specs):
        # One method: its reason is the whole story; several: the ids, with reasons in the warnings above.
        why = f"{specs[0].id}: {unavailable[specs[0].id]}" if len(specs) == 1 else ", ".join(sorted(unavailable))
        raise MethodError(f"none of the selected methods can run here ({why}); see `augshard methods`")
    if unavailable:
        plan = make_plan(cfg, specs, dataset.sha256, unavailable, costs)
        complete = complete_in(plan)
    return Prepared(
        plan, specs, statuses, dataset.sha256, len(dataset.rows), dict(dataset.skipped), catalogue_path, complete
    )


def _check_output_root(root: Path, what: str = "output root") -> None:
    """The folder (or its nearest existing parent) must take a new entry: tried for real, since permission bits
    do not stop root while a read-only mount or a pseudo filesystem (/proc, /sys) does."""
    import tempfile

    if root.exists() and not root.is_dir():
        raise OutputError(f"{what} is a file, not a folder: {root}")
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"{what} is not writable: {root} ({probe} is a file, not a folder)")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".augshard-probe-", dir=probe))
    except OSError as exc:
        reason = f"cannot create entries in {probe}: {exc.strerror}"
        raise OutputError(f"{what} is not writable: {root} ({reason})") from None


def render_plan(cfg: RunConfig, prep: Prepared) -> Table:
    table = Table(title=f"augshard plan {prep.plan.fingerprint} ({prep.plan.num_shards} shards)")
    for col in ("shard", "combo", "k", "est. cost", "action"):
        table.add_column(col, justify="right" if col in ("shard", "k", "est. cost") else "left")
    for i, shard in enumerate(prep.plan.shards):
        if cfg.shard_index is not None and i != cfg.shard_index:
            continue
        for pc in shard:
            action = "skip (complete)" if pc.combo.combo_id in prep.complete else "run"
            table.add_row(str(i), pc.combo.dir_name, str(pc.combo.k), f"{pc.cost:g}", action)
        table.add_row(
            str(i),
            f"[bold]shard total: {len(shard)} combos[/bold]",
            "",
            f"{prep.plan.shard_cost(i):g}",
            "",
            end_section=True,
        )
    for combo, reason in prep.plan.unavailable:
        table.add_row("-", combo.dir_name, str(combo.k), "-", f"unavailable ({escape(reason[:60])})")
    return table


def dry_run(cfg: RunConfig, console: Console) -> int:
    prep = prepare(cfg, console, dry_run=True)
    console.print(render_plan(cfg, prep))
    todo = sum(1 for pc in prep.plan.combos if pc.combo.combo_id not in prep.complete)
    skipped = ", ".join(f"{n} {r}" for r, n in prep.rows_skipped.items()) or "none"
    console.print(f"input {cfg.input}: {prep.rows_usable:,} usable rows; skipped: {skipped}")
    console.print(
        f"{len(prep.plan.combos)} combos planned: {todo} to run, {len(prep.complete)} already complete, "
        f"{len(prep.plan.unavailable)} unavailable; quality filter {cfg.quality_metric} "
        f"[{cfg.quality_min_sim}, {cfg.quality_max_sim}]; output root {cfg.output_root}"
    )
    if cfg.executor != "local":
        roots = ", ".join(os.path.abspath(getattr(cfg, k)) for k in ("output_root", "log_dir", "cache_dir"))
        console.print(f"executor {cfg.executor}: every worker must see the same storage at {roots}")
    console.print("dry run: nothing was written")
    return 0


def _jobs(cfg: RunConfig, prep: Prepared, claims_dir: str = "") -> list[ShardJob]:
    plan = prep.plan
    indexes = [cfg.shard_index] if cfg.shard_index is not None else list(range(plan.num_shards))
    busy = [i for i in indexes if plan.shards[i]]
    threads = max(1, (os.cpu_count() or 1) // max(1, len(busy)))
    unavailable = tuple(
        {
            "combo_id": c.combo_id,
            "combo_dir": c.dir_name,
            "methods": c.name,
            "k": c.k,
            "rows": 0,
            "rows_skipped": 0,
            "rows_rejected": 0,
            "status": "unavailable",
            "dataset_path": "",
            "duration_s": 0.0,
            "shard": 0,
            "resumed": False,
            "plan_fingerprint": plan.fingerprint,
            "error": reason,
        }
        for c, reason in plan.unavailable
    )
    return [
        ShardJob(
            cfg=cfg,
            index=i,
            num_shards=plan.num_shards,
            combos=plan.shards[i],
            specs=tuple(prep.specs),
            plan_fingerprint=plan.fingerprint,
            input_sha=prep.input_sha,
            torch_threads=threads,
            unavailable=unavailable if i == 0 else (),
            others=tuple((j, plan.shards[j]) for j in indexes if j != i) if claims_dir else (),
            claims_dir=claims_dir,
        )
        for i in indexes
    ]


class _Stop:
    """The first SIGINT/SIGTERM asks the shards to stop after their current chunk; the second kills them."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.count = 0
        self.pids: dict[int, int] = {}  # shard -> worker pid
        self.stop_file: Path | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> _Stop:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, _frame: object) -> None:
        self.count += 1
        self.signum = self.signum or signum
        if self.count == 1:
            _signal_pids(self.pids.values(), signal.SIGTERM)
            if self.stop_file is not None:  # shards on other machines (Dask) read this between chunks
                self.stop_file.touch()
        else:
            _signal_pids(self.pids.values(), signal.SIGKILL)
            os._exit(128 + self.signum)

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)


def _signal_pids(pids: object, signum: int) -> None:
    for pid in list(pids):  # type: ignore[call-overload]
        if not pid:
            continue
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


STOP_GRACE_S = 5.0  # after the first signal, shards get this long to finish their chunk before being killed


def run(cfg: RunConfig, console: Console, executor_kind: str = "local", live: bool = True) -> int:
    """Run the plan; returns the exit code (0 ok, 1 some combo failed, 130/143 interrupted).

    Progress is the live shard table on a terminal (`live`), plain lines otherwise.
    """
    from augshard.lock import RunLock

    t0 = time.time()
    if executor_kind != "local":
        # Dask workers run elsewhere, from other working directories: every path must name shared storage.
        paths = {k: os.path.abspath(getattr(cfg, k)) for k in ("input", "output_root", "cache_dir", "log_dir")}
        catalogue = resolve_conf_path(cfg.methods_config, DEFAULT_METHODS_CONFIG)
        cfg = replace(cfg, methods_config=os.path.abspath(catalogue), **paths)
    prep = prepare(cfg, console)
    lock = RunLock(cfg.output_root, None if cfg.shard_index is None else (cfg.shard_index, prep.plan.num_shards))
    with lock:
        return _run_locked(cfg, prep, console, executor_kind, live, t0)


def _run_locked(cfg: RunConfig, prep: Prepared, console: Console, executor_kind: str, live: bool, t0: float) -> int:
    from augshard.store import clean_stale_temp

    for d in (cfg.output_root, cfg.cache_dir, cfg.log_dir):
        Path(d).mkdir(parents=True, exist_ok=True)
    clean_stale_temp(cfg.output_root)
    claims = None
    if cfg.steal and cfg.shard_index is None and prep.plan.num_shards > 1:
        # This run's claims (work stealing); a new run starts with none, whatever an interrupted one left.
        claims = Path(cfg.log_dir) / f".claims-{prep.plan.fingerprint}-{os.getpid()}-{int(time.time())}"
        claims.mkdir(parents=True)
    try:
        return _run_jobs(cfg, prep, console, executor_kind, live, t0, str(claims) if claims else "")
    finally:
        if claims is not None:
            shutil.rmtree(claims, ignore_errors=True)


def _run_jobs(
    cfg: RunConfig, prep: Prepared, console: Console, executor_kind: str, live: bool, t0: float, claims_dir: str
) -> int:
    from augshard.events import EventsWatcher, events_path
    from augshard.executors import make_executor
    from augshard.manifest import merge
    from augshard.shard import run_shard

    jobs = _jobs(cfg, prep, claims_dir)
    for job in jobs:  # this run's events start fresh (other shards' jobs may be running); logs keep history
        events_path(cfg.log_dir, job.index, job.num_shards).unlink(missing_ok=True)
    todo = sum(1 for j in jobs for pc in j.combos if pc.combo.combo_id not in prep.complete)
    console.print(
        f"augshard: {len(prep.plan.combos)} combos on {prep.plan.num_shards} shards "
        f"({todo} to run, {len(prep.complete)} complete), plan {prep.plan.fingerprint}"
    )
    results: dict[int, ShardResult] = {}
    # A shard with nothing left to compute is settled here, without paying a worker's start-up.
    spawn = [j for j in jobs if any(pc.combo.combo_id not in prep.complete for pc in j.combos)]
    for job in jobs:
        if job not in spawn:
            results[job.index] = run_shard(job)
    crashed: dict[int, str] = {}
    stop = _Stop()
    if executor_kind != "local":  # local shards get signals; remote ones read this file between chunks
        stop.stop_file = stop_file_path(cfg.log_dir, prep.plan.fingerprint)
        stop.stop_file.unlink(missing_ok=True)
    if spawn:
        # One single-worker pool per shard: a worker that dies breaks its own pool only, never the others'.
        pools: dict[int, object] = {}
        futures: dict[Future, ShardJob] = {}
        attempts = dict.fromkeys((j.index for j in spawn), 0)

        shared = make_executor(executor_kind, len(spawn), cfg.scheduler) if executor_kind != "local" else None

        def submit(job: ShardJob) -> None:
            if shared is not None:
                futures[shared.submit(run_shard, job)] = job
                return
            pool = make_executor(executor_kind, 1)
            pools[job.index] = pool
            futures[pool.submit(run_shard, job)] = job
            # The pool spawns its worker inside submit(); its pid is what the signal handler needs.
            for proc in getattr(pool, "_processes", {}).values():
                stop.pids[job.index] = proc.pid

        watcher = EventsWatcher(cfg.log_dir, prep.plan.num_shards, [j.index for j in jobs])
        view = ProgressView(console, watcher, live=live, override=functools.partial(_mark_crashed, crashed))
        deadline = None
        with stop, view:
            for job in spawn:
                submit(job)
            while futures:
                done, _ = wait(list(futures), timeout=1.0, return_when=FIRST_COMPLETED)
                for fut in done:
                    job = futures.pop(fut)
                    # Its result is in and its files are closed: only interpreter teardown is left (torch and
                    # friends can take seconds on a loaded machine), which neither the run nor an exit waits for.
                    if job.index in pools:
                        _signal_pids([stop.pids.pop(job.index, 0)], signal.SIGKILL)
                        pools.pop(job.index).shutdown(wait=True, cancel_futures=True)
                    try:
                        results[job.index] = fut.result()
                    except Exception as exc:  # noqa: BLE001 - a dead worker fails its shard, not the run
                        error = f"{type(exc).__name__}: {exc}"
                        if stop.count == 0 and attempts[job.index] < cfg.max_retries:
                            attempts[job.index] += 1
                            console.print(
                                f"[yellow]shard {job.index} died ({escape(error)}); retry "
                                f"{attempts[job.index]} of {cfg.max_retries}[/yellow]"
                            )
                            submit(job)
                            continue
                        status = "interrupted" if stop.count else "failed"
                        if not stop.count:
                            crashed[job.index] = error
                        results[job.index] = _crashed_result(job, error, status)
                if stop.count and deadline is None:
                    deadline = time.time() + STOP_GRACE_S
                if deadline is not None and time.time() > deadline:
                    _signal_pids(stop.pids.values(), signal.SIGKILL)
                view.refresh(force=not futures)
        for pool in pools.values():
            pool.shutdown(wait=False, cancel_futures=True)
        if shared is not None:
            shared.shutdown(wait=False, cancel_futures=True)
    if stop.stop_file is not None:
        stop.stop_file.unlink(missing_ok=True)
    if stop.count:
        from augshard.store import clean_stale_temp, remove_empty_temp

        clean_stale_temp(cfg.output_root)
        remove_empty_temp(cfg.output_root)
        done_ok = sum(1 for r in results.values() for e in r.entries if e["status"] == "ok")
        console.print(
            f"[red]interrupted[/red]: {done_ok} combos complete and kept, shard manifests written; "
            "rerun the same command to resume"
        )
        return stop.exit_code
    return _finish(cfg, prep, jobs, results, crashed, console, t0, merge)


def _mark_crashed(crashed: dict[int, str], statuses: list[ShardStatus]) -> list[ShardStatus]:
    """A shard whose worker died, as its future told the supervisor, shows dead even before its pid is reaped."""
    return [
        replace(st, state="dead") if st.shard in crashed and st.state in ("running", "pending") else st
        for st in statuses
    ]


def _crashed_result(job: ShardJob, error: str, status: str = "failed") -> ShardResult:
    """A shard whose process died or was killed: combos it finished are ok, the others carry `status`."""
    from augshard.events import log_path
    from augshard.manifest import write_shard_manifest
    from augshard.shard import claimed_by, manifest_entry
    from augshard.store import read_complete

    entries = list(job.unavailable)
    taken = claimed_by(job.claims_dir, job.index)  # combos it took from other shards' lists are its to report
    extra = [pc for _, lst in job.others for pc in lst if pc.combo.combo_id in taken]
    for pc in [*job.combos, *extra]:
        meta = read_complete(job.cfg.output_root, pc.combo, pc.fingerprint)
        entry = manifest_entry(job, pc, status="ok", meta=meta) if meta else manifest_entry(job, pc, status, error)
        entries.append(entry)
    path = write_shard_manifest(job.cfg.output_root, job.index, job.num_shards, entries)
    lpath = log_path(job.cfg.log_dir, job.index, job.num_shards)
    return ShardResult(job.index, entries=entries, log_path=str(lpath), manifest_path=str(path))


def _finish(cfg, prep, jobs, results, crashed, console, t0, merge) -> int:  # noqa: ANN001
    from augshard.events import events_path, fold, read_events
    from augshard.monitor import GLYPH, fmt_duration
    from augshard.store import clean_stale_temp, remove_empty_temp

    clean_stale_temp(cfg.output_root)  # what a worker killed mid-combo left behind
    remove_empty_temp(cfg.output_root)
    failed = [(r, e) for r in results.values() for e in r.failed]
    statuses = {j.index: fold(j.index, read_events(events_path(cfg.log_dir, j.index, j.num_shards))) for j in jobs}
    table = Table(title="shards", title_justify="left")
    for col in ("shard", "outcome", "combos", "ok", "resumed", "failed", "rows", "time"):
        table.add_column(col, justify="left" if col == "outcome" else "right")
    table.add_column("log", overflow="fold")
    for job in jobs:
        r = results[job.index]
        ok = [e for e in r.entries if e["status"] == "ok"]
        if job.index in crashed:
            outcome = f"[bold red]{GLYPH['dead']} crashed[/bold red]"
        elif r.failed:
            outcome = f"[red]{GLYPH['failed']} failed[/red]"
        else:
            outcome = f"[green]{GLYPH['done']} done[/green]"
        table.add_row(
            str(job.index),
            outcome,
            str(sum(1 for e in r.entries if e["status"] != "unavailable")),  # with stealing: what it ran, not its plan
            str(len(ok)),
            str(sum(1 for e in ok if e["resumed"])),
            str(len(r.failed)),
            f"{sum(int(e['rows']) for e in ok):,}",
            fmt_duration(r.duration_s),
            r.log_path,
        )
    console.print(table)
    for r, e in failed:
        # The combo_failed event names the log line where its traceback starts.
        where = next((f["log"] for f in statuses[r.index].failures if f["combo_id"] == e["combo_id"]), "")
        console.print(f"[red]failed[/red] {e['combo_dir']}: {escape(e['error'])} (see {where or r.log_path})")
    for index, error in sorted(crashed.items()):
        console.print(
            f"[red]crashed[/red] shard {index}: {escape(error)} (its worker died; see {results[index].log_path})"
        )
    for method, st in sorted(prep.statuses.items()):
        if not st.ok:
            n = sum(1 for combo, _ in prep.plan.unavailable if method in combo.methods)
            console.print(
                f"[yellow]unavailable[/yellow] method {method}: {escape(st.reason)} ({n} combos not run; "
                f"fix: {escape(st.fix)})"
            )
    if cfg.shard_index is None:
        summary = merge(cfg.output_root, cfg.output_name, keep_shards=cfg.keep_shards)
        for line in summary.lines():
            console.print(line)
        console.print(f"manifest: {Path(cfg.output_root) / cfg.output_name}")
    else:
        rows = sum(int(e["rows"]) for r in results.values() for e in r.entries if e["status"] == "ok")
        console.print(f"Total rows: {rows:,}")
        console.print(
            f"shard {cfg.shard_index} of {prep.plan.num_shards} done; merge all shards with "
            f"`augshard merge --output-root {cfg.output_root}`"
        )
    console.print(f"wall time: {fmt_duration(time.time() - t0)} ({time.time() - t0:.1f}s)")
    return 1 if failed else 0
