"""The `augshard` command line (Typer): parses flags into a RunConfig and calls the room that does the work."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from augshard.config import DEFAULT_CONFIG, DEFAULT_METHODS_CONFIG
from augshard.errors import AugshardError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Many augmented variants of a labelled text dataset: sharded, resumable, deterministic.",
)
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """An AugshardError is the user's to fix: one red line, exit code 2, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            code = fn(*args, **kwargs)
        except AugshardError as exc:
            err_console.print(f"[bold red]error:[/bold red] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except OSError as exc:  # the disk or the system said no outside a combo: one line, a run-time failure
            where = f" ({exc.filename})" if exc.filename else ""
            err_console.print(f"[bold red]error:[/bold red] {escape(exc.strerror or str(exc))}{where}", soft_wrap=True)
            raise typer.Exit(1) from None
        if code:
            raise typer.Exit(code)
        return code

    return wrapper


@app.command()
@user_errors
def run(
    input: str = typer.Option(None, "--input", help="Input dataset (CSV or Parquet)."),
    text_col: str = typer.Option(None, "--text-col", help="Column holding the text."),
    evidence_col: str = typer.Option(None, "--evidence-col", help="Column holding the evidence span (optional)."),
    id_col: str = typer.Option(None, "--id-col", help="Column holding a unique row id (optional)."),
    methods_config: str = typer.Option(None, "--methods-config", help=f"Method catalogue [{DEFAULT_METHODS_CONFIG}]."),
    config: str = typer.Option(None, "--config", help=f"Run defaults file; flags override it [{DEFAULT_CONFIG}]."),
    output_root: str = typer.Option(None, "--output-root", help="Where combo folders and manifests go."),
    cache_dir: str = typer.Option(None, "--cache-dir", help="Per-shard SQLite caches."),
    log_dir: str = typer.Option(None, "--log-dir", help="Per-shard logs and event streams."),
    num_shards: str = typer.Option(None, "--num-shards", help="Number of shards, or 'auto' (CPU count) [7]."),
    variants_per_sample: str = typer.Option(None, "--variants-per-sample", help="Variants per row and combo [2]."),
    quality_min_sim: str = typer.Option(None, "--quality-min-sim", help="Lowest accepted similarity [0.55]."),
    quality_max_sim: str = typer.Option(None, "--quality-max-sim", help="Highest accepted similarity [0.95]."),
    quality_metric: str = typer.Option(None, "--quality-metric", help="embedding | char_ratio | none [embedding]."),
    embedding_backend: str = typer.Option(
        None,
        "--embedding-backend",
        help="torch | onnx: how the embedding model runs (onnx: pip install 'augshard[onnx]') [torch].",
    ),
    seed: str = typer.Option(None, "--seed", help="Seed of every random call [42]."),
    combo_mode: str = typer.Option(None, "--combo-mode", help="single | bounded_k | all [bounded_k]."),
    max_combo_size: str = typer.Option(None, "--max-combo-size", help="Largest combo with bounded_k [2]."),
    methods: str = typer.Option(None, "--methods", help="Comma-separated subset of the catalogue's method ids."),
    force: bool = typer.Option(False, "--force", help="Recompute combos that are already complete."),
    no_steal: bool = typer.Option(
        False, "--no-steal", help="Keep every combo on the shard the plan gave it (no work stealing)."
    ),
    shard_index: str = typer.Option(None, "--shard-index", help="Run only shard I of N (job arrays); no merge."),
    gpu_slots: str = typer.Option(None, "--gpu-slots", help="Shards that may hold GPU models at once [1]."),
    max_retries: str = typer.Option(None, "--max-retries", help="Restarts of a shard whose process died [2]."),
    executor: str = typer.Option(None, "--executor", help="local | dask | dask-local [local]."),
    scheduler: str = typer.Option(None, "--scheduler", help="Dask scheduler address for --executor dask."),
    keep_shards: bool = typer.Option(False, "--keep-shards", help="Keep the shard manifests after merging."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate everything and print the plan; write nothing."),
    no_live: bool = typer.Option(False, "--no-live", help="Plain progress lines instead of the live shard table."),
    calibrate: str = typer.Option(
        None, "--calibrate", help="Balance shards with measured costs from this `methods --bench` file."
    ),
    calibrated: bool = typer.Option(
        False, "--calibrated", help="Like --calibrate with the default file data/cache/method_costs.json."
    ),
) -> int:
    """Plan the combos, run them on shards, write datasets and manifests, and merge them."""
    from augshard.config import load_config

    overrides = {
        "input": input,
        "text_col": text_col,
        "evidence_col": evidence_col,
        "id_col": id_col,
        "methods_config": methods_config,
        "output_root": output_root,
        "cache_dir": cache_dir,
        "log_dir": log_dir,
        "num_shards": num_shards,
        "variants_per_sample": variants_per_sample,
        "quality_min_sim": quality_min_sim,
        "quality_max_sim": quality_max_sim,
        "quality_metric": quality_metric,
        "embedding_backend": embedding_backend,
        "seed": seed,
        "combo_mode": combo_mode,
        "max_combo_size": max_combo_size,
        "methods": methods,
        "force": force or None,
        "steal": False if no_steal else None,
        "shard_index": shard_index,
        "gpu_slots": gpu_slots,
        "max_retries": max_retries,
        "executor": executor,
        "scheduler": scheduler,
        "keep_shards": keep_shards or None,
        "calibrate": calibrate or (True if calibrated else None),
    }
    cfg = load_config(config, overrides)
    if dry_run:
        from augshard.prepare import dry_run as preview

        return preview(cfg, console)
    from augshard.supervisor import run as run_plan

    return run_plan(cfg, console, live=not no_live)


@app.command()
@user_errors
def merge(
    output_root: str = typer.Option("data/processed/augsets", "--output-root", help="Folder with shard manifests."),
    output_name: str = typer.Option("manifest_final.csv", "--output-name", help="Name of the merged manifest."),
    keep_shards: bool = typer.Option(False, "--keep-shards", help="Keep the shard manifests after merging."),
) -> int:
    """Merge the shard manifests of one plan into one manifest and print a summary."""
    from augshard.manifest import merge as merge_manifests

    summary = merge_manifests(output_root, output_name, keep_shards)
    for line in summary.lines():
        console.print(line)
    console.print(f"manifest: {output_root}/{output_name}")
    return 1 if summary.failed else 0


@app.command()
@user_errors
def methods(
    methods_config: str = typer.Option(None, "--methods-config", help=f"Method catalogue [{DEFAULT_METHODS_CONFIG}]."),
    check: bool = typer.Option(True, "--check/--no-check", help="Build each method and augment a probe sentence."),
    bench: bool = typer.Option(False, "--bench", help="Time each available method and write the costs file."),
    input: str = typer.Option(None, "--input", help="With --bench: texts to time on [the shipped sample]."),
    text_col: str = typer.Option(None, "--text-col", help="With --bench: column of --input [text; sample: evidence]."),
    rows: int = typer.Option(50, "--rows", help="With --bench: how many texts each method augments."),
    out: str = typer.Option(None, "--out", help="With --bench: the costs file [data/cache/method_costs.json]."),
) -> int:
    """List the catalogue: id, library, class, and whether each method can run here (and if not, why).

    With --bench, time every available method instead and write the relative costs that `run --calibrate` uses.
    """
    from rich.table import Table

    from augshard.config import resolve_conf_path
    from augshard.methods import check_methods, load_catalogue, method_check_record
    from augshard.methods.offline import apply_offline_env

    path = resolve_conf_path(methods_config, DEFAULT_METHODS_CONFIG)
    specs = load_catalogue(path)
    apply_offline_env()
    if bench:
        return _bench_methods(specs, input, text_col, rows, out)
    table = Table(title=f"method catalogue {path}")
    for col in ("id", "library", "class", "status", "reason", "fix"):
        table.add_column(col, overflow="fold")
    unavailable = 0
    # Every method is probed for real, and the record `run` trusts is rewritten from what was found.
    statuses = check_methods(list(specs.values()), method_check_record(), trust_record=False) if check else {}
    for spec in specs.values():
        if not check:
            table.add_row(spec.id, spec.lib, spec.kind, "not checked", "", "")
            continue
        st = statuses[spec.id]
        unavailable += not st.ok
        status = "[green]ok[/green]" if st.ok else "[red]unavailable[/red]"
        table.add_row(spec.id, spec.lib, spec.kind, status, escape(st.reason), escape(st.fix))
    console.print(table)
    if check:
        console.print(f"{len(specs) - unavailable} of {len(specs)} methods can run here")
    return 0


def _bench_methods(specs: dict, input: str | None, text_col: str | None, rows: int, out: str | None) -> int:
    """`methods --bench`: time every available method on the same texts and write the costs file."""
    from rich.table import Table

    from augshard.config import DEFAULT_COSTS_PATH
    from augshard.methods.bench import bench as bench_methods
    from augshard.methods.bench import costs_document, sample_texts, write_costs

    texts, source = sample_texts(input, text_col, rows)
    console.print(f"timing {len(specs)} methods on {len(texts)} texts from {source}")
    result = bench_methods(list(specs.values()), texts, source)
    costs = result.relative_costs()
    table = Table(title=f"method costs ({len(texts)} rows each)")
    for col in ("id", "rows/s", "s/row", "relative cost"):
        table.add_column(col, justify="left" if col == "id" else "right")
    for t in sorted(result.timings, key=lambda t: (costs[t.id], t.id)):
        table.add_row(t.id, f"{t.rows_per_second:,.1f}", f"{t.seconds_per_row:.5f}", f"{costs[t.id]:g}")
    console.print(table)
    for t in result.timings:
        if t.errors:
            console.print(f"[yellow]note:[/yellow] {t.id} raised on {t.errors} of {t.rows} texts (timed anyway)")
    for method_id, reason in result.skipped:
        console.print(f"[yellow]skipped (unavailable):[/yellow] {method_id}: {escape(reason)}")
    written = write_costs(out or DEFAULT_COSTS_PATH, costs_document(result))
    console.print(f"{len(result.timings)} methods timed, {len(result.skipped)} skipped; costs: {written}")
    return 0


@app.command()
@user_errors
def prepare(
    target: str = typer.Option(
        None,
        "--target",
        help="Where to build the NLTK data (default: AUGSHARD_NLTK_DATA or ~/.cache/augshard/nltk_data).",
    ),
) -> int:
    """Make the offline resources the methods need (NLTK data, TextAttack's cache marker); idempotent."""
    from pathlib import Path

    from augshard.methods.provision import prepare as prepare_resources
    from augshard.methods.provision import write_homoglyph_file

    try:
        where = prepare_resources(Path(target) if target else None, log=console.print)
        write_homoglyph_file(log=console.print)
    except (RuntimeError, OSError) as exc:
        raise AugshardError(str(exc)) from None
    console.print(f"NLTK data ready in {where}")
    return 0


@app.command()
@user_errors
def monitor(
    log_dir: str = typer.Option("logs/augment", "--log-dir", help="Where the shards write their event streams."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep refreshing until every shard is finished."),
    interval: float = typer.Option(2.0, "--interval", help="Seconds between refreshes with --follow."),
    stall_after: float = typer.Option(
        30.0, "--stall-after", help="A running shard silent this long (no heartbeat) is shown dead."
    ),
    no_live: bool = typer.Option(False, "--no-live", help="Plain lines instead of the live table with --follow."),
) -> int:
    """Show every shard's state, progress and ETA from its event stream (from any terminal, during or after a run)."""
    import time
    from pathlib import Path

    from augshard.monitor import follow as follow_events
    from augshard.monitor import render
    from augshard.status import EventsWatcher

    if interval <= 0 or stall_after <= 0:
        raise AugshardError("--interval and --stall-after must be positive")
    watcher = EventsWatcher(log_dir, stall_after=stall_after)
    statuses = watcher.statuses()
    if not follow:
        if not statuses:
            raise AugshardError(f"no shard event streams (shard_<i>_of_<N>.events.jsonl) in {log_dir}")
        console.print(render(statuses, title=f"augshard shards ({Path(log_dir) / '*.events.jsonl'})"))
        return 0
    if not statuses:
        console.print(f"waiting for shard event streams in {log_dir} …")
        while not watcher.statuses():
            time.sleep(interval)
    final = follow_events(console, watcher, interval, live=not no_live, patience=stall_after)
    return 0 if all(st.state == "done" for st in final) else 1


@app.command()
@user_errors
def verify(
    output_root: str = typer.Option("data/processed/augsets", "--output-root", help="Folder with the manifest."),
    output_name: str = typer.Option("manifest_final.csv", "--output-name", help="Name of the merged manifest."),
) -> int:
    """Check the manifest against the datasets on disk; exit 1 with the list of problems."""
    from augshard.verify import verify as verify_outputs

    report = verify_outputs(output_root, output_name)
    for problem in report.problems:
        console.print(f"[red]✗[/red] {escape(problem)}")
    for line in report.lines():
        console.print(line)
    return 1 if report.problems else 0


@app.command()
@user_errors
def report(
    output_root: str = typer.Option("data/processed/augsets", "--output-root", help="Folder with the manifest."),
    output_name: str = typer.Option("manifest_final.csv", "--output-name", help="Name of the merged manifest."),
    log_dir: str = typer.Option("logs/augment", "--log-dir", help="Event streams, for the time per shard."),
    out: str = typer.Option("report.html", "--out", help="Where to write the HTML page."),
    examples: int = typer.Option(3, "--examples", help="Original vs variant examples per combo."),
) -> int:
    """Write a self-contained HTML page with charts: rows, acceptance, similarity, examples, time per shard."""
    from augshard.report import write_report

    path = write_report(output_root, out, output_name=output_name, log_dir=log_dir, examples=examples)
    console.print(f"report: {path}")
    return 0


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("[red]interrupted[/red]")
        sys.exit(130)
