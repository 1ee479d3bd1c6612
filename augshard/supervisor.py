"""The supervisor: validates, plans once, runs one job per shard on an executor, reports, merges."""

from __future__ import annotations

import functools
import os
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
from augshard.methods import MethodSpec, MethodStatus, check_method, load_catalogue, select
from augshard.monitor import ProgressView
from augshard.plan import Plan, make_plan
from augshard.shard import ShardJob, ShardResult


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


def prepare(cfg: RunConfig, console: Console) -> Prepared:
    """Input, catalogue and methods are checked here, so user errors surface before anything is written."""
    from augshard.data import load_dataset
    from augshard.methods.resources import apply_offline_env
    from augshard.store import read_complete

    catalogue_path = resolve_conf_path(cfg.methods_config, DEFAULT_METHODS_CONFIG)
    catalogue = load_catalogue(catalogue_path)
    specs = select(catalogue, cfg.methods, str(catalogue_path))
    dataset = load_dataset(cfg.input, cfg.text_col, cfg.evidence_col, cfg.id_col)
    if not dataset.rows:
        reasons = ", ".join(f"{n} {r}" for r, n in dataset.skipped.items())
        raise InputError(f"{cfg.input}: no usable rows ({reasons})")
    _check_output_root(Path(cfg.output_root))
    apply_offline_env()
    statuses = {s.id: check_method(s) for s in specs}
    unavailable = {m: st.reason for m, st in statuses.items() if not st.ok}
    for m, st in statuses.items():
        if not st.ok:
            console.print(
                f"[yellow]warning:[/yellow] method {m} is unavailable: {escape(st.reason)} (fix: {escape(st.fix)})"
            )
    if len(unavailable) == len(specs):
        raise MethodError(
            f"none of the selected methods can run here ({', '.join(sorted(unavailable))}); see `augshard methods`"
        )
    costs = None
    if cfg.calibrate:
        from augshard.methods.bench import load_costs

        costs = load_costs(cfg.calibrate)
        measured = sum(s.id in costs for s in specs)
        console.print(f"costs: measured for {measured} of {len(specs)} methods ({cfg.calibrate}); others: catalogue")
    plan = make_plan(cfg, specs, dataset.sha256, unavailable, costs)
    complete = set()
    if not cfg.force:
        complete = {
            pc.combo.combo_id
            for pc in plan.combos
            if read_complete(cfg.output_root, pc.combo, pc.fingerprint) is not None
        }
    return Prepared(
        plan, specs, statuses, dataset.sha256, len(dataset.rows), dict(dataset.skipped), catalogue_path, complete
    )


def _check_output_root(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise OutputError(f"output root is a file, not a folder: {root}")
    probe = root
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"output root is not writable: {root} (no write permission on {probe})")


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
    prep = prepare(cfg, console)
    console.print(render_plan(cfg, prep))
    todo = sum(1 for pc in prep.plan.combos if pc.combo.combo_id not in prep.complete)
    skipped = ", ".join(f"{n} {r}" for r, n in prep.rows_skipped.items()) or "none"
    console.print(f"input {cfg.input}: {prep.rows_usable:,} usable rows; skipped: {skipped}")
    console.print(
        f"{len(prep.plan.combos)} combos planned: {todo} to run, {len(prep.complete)} already complete, "
        f"{len(prep.plan.unavailable)} unavailable; quality filter {cfg.quality_metric} "
        f"[{cfg.quality_min_sim}, {cfg.quality_max_sim}]; output root {cfg.output_root}"
    )
    console.print("dry run: nothing was written")
    return 0


def _jobs(cfg: RunConfig, prep: Prepared) -> list[ShardJob]:
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
        )
        for i in indexes
    ]


def run(cfg: RunConfig, console: Console, executor_kind: str = "local", live: bool = True) -> int:
    """Run the plan; returns the exit code (0 ok, 1 some combo failed, 130 interrupted).

    Progress is the live shard table on a terminal (`live`), plain lines otherwise.
    """
    from augshard.events import EventsWatcher, events_path
    from augshard.executors import make_executor
    from augshard.manifest import merge
    from augshard.shard import run_shard
    from augshard.store import clean_stale_temp

    t0 = time.time()
    prep = prepare(cfg, console)
    for d in (cfg.output_root, cfg.cache_dir, cfg.log_dir):
        Path(d).mkdir(parents=True, exist_ok=True)
    clean_stale_temp(cfg.output_root)
    jobs = _jobs(cfg, prep)
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
    if spawn:
        executor = make_executor(executor_kind, len(spawn))
        futures: dict[Future, ShardJob] = {executor.submit(run_shard, job): job for job in spawn}
        watcher = EventsWatcher(cfg.log_dir, prep.plan.num_shards, [j.index for j in jobs])
        view = ProgressView(console, watcher, live=live, override=functools.partial(_mark_crashed, crashed))
        try:
            pending = set(futures)
            with view:
                while pending:
                    done, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
                    for fut in done:
                        job = futures[fut]
                        try:
                            results[job.index] = fut.result()
                        except Exception as exc:  # noqa: BLE001 - a dead worker fails its shard, not the run
                            crashed[job.index] = f"{type(exc).__name__}: {exc}"
                            results[job.index] = _crashed_result(job, crashed[job.index])
                    view.refresh(force=not pending)
        except KeyboardInterrupt:
            _kill_workers(executor)
            console.print("[red]interrupted[/red]: completed combos are kept; rerun the same command to resume")
            return 130
        executor.shutdown(wait=True)
    return _finish(cfg, prep, jobs, results, crashed, console, t0, merge)


def _mark_crashed(crashed: dict[int, str], statuses: list[ShardStatus]) -> list[ShardStatus]:
    """A shard whose worker died, as its future told the supervisor, shows dead even before its pid is reaped."""
    return [
        replace(st, state="dead") if st.shard in crashed and st.state in ("running", "pending") else st
        for st in statuses
    ]


def _crashed_result(job: ShardJob, error: str) -> ShardResult:
    """A shard whose process died: its unfinished combos are recorded as failed in its manifest."""
    from augshard.events import log_path
    from augshard.manifest import write_shard_manifest
    from augshard.store import read_complete

    entries = list(job.unavailable)
    for pc in job.combos:
        meta = read_complete(job.cfg.output_root, pc.combo, pc.fingerprint)
        entries.append(
            {
                "combo_id": pc.combo.combo_id,
                "combo_dir": pc.combo.dir_name,
                "methods": pc.combo.name,
                "k": pc.combo.k,
                "rows": meta["rows"] if meta else 0,
                "rows_skipped": meta["rows_skipped"] if meta else 0,
                "rows_rejected": meta["rows_rejected"] if meta else 0,
                "status": "ok" if meta else "failed",
                "dataset_path": f"{pc.combo.dir_name}/dataset.parquet",
                "duration_s": meta["timing"]["duration_seconds"] if meta else 0.0,
                "shard": job.index,
                "resumed": False,
                "plan_fingerprint": job.plan_fingerprint,
                "error": "" if meta else error[:300],
            }
        )
    path = write_shard_manifest(job.cfg.output_root, job.index, job.num_shards, entries)
    lpath = log_path(job.cfg.log_dir, job.index, job.num_shards)
    return ShardResult(job.index, entries=entries, log_path=str(lpath), manifest_path=str(path))


def _kill_workers(executor: object) -> None:
    processes = getattr(executor, "_processes", None) or {}
    for proc in list(processes.values()):
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, AttributeError):
            pass
    executor.shutdown(wait=False, cancel_futures=True)  # type: ignore[attr-defined]


def _finish(cfg, prep, jobs, results, crashed, console, t0, merge) -> int:  # noqa: ANN001
    from augshard.events import events_path, fold, read_events
    from augshard.monitor import GLYPH, fmt_duration
    from augshard.store import remove_empty_temp

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
            str(len(job.combos)),
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
