"""The `augshard` command line (Typer): parses flags into a RunConfig and calls the supervisor."""

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
    variants_per_sample: int = typer.Option(None, "--variants-per-sample", help="Variants per row and combo [2]."),
    quality_min_sim: str = typer.Option(None, "--quality-min-sim", help="Lowest accepted similarity [0.55]."),
    quality_max_sim: str = typer.Option(None, "--quality-max-sim", help="Highest accepted similarity [0.95]."),
    quality_metric: str = typer.Option(None, "--quality-metric", help="embedding | char_ratio | none [embedding]."),
    seed: int = typer.Option(None, "--seed", help="Seed of every random call [42]."),
    combo_mode: str = typer.Option(None, "--combo-mode", help="single | bounded_k | all [bounded_k]."),
    max_combo_size: int = typer.Option(None, "--max-combo-size", help="Largest combo with bounded_k [2]."),
    methods: str = typer.Option(None, "--methods", help="Comma-separated subset of the catalogue's method ids."),
    force: bool = typer.Option(False, "--force", help="Recompute combos that are already complete."),
    shard_index: int = typer.Option(None, "--shard-index", help="Run only shard I of N (job arrays); no merge."),
    keep_shards: bool = typer.Option(False, "--keep-shards", help="Keep the shard manifests after merging."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate everything and print the plan; write nothing."),
) -> int:
    """Plan the combos, run them on shards, write datasets and manifests, and merge them."""
    from augshard import supervisor
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
        "seed": seed,
        "combo_mode": combo_mode,
        "max_combo_size": max_combo_size,
        "methods": methods,
        "force": force or None,
        "shard_index": shard_index,
        "keep_shards": keep_shards or None,
    }
    cfg = load_config(config, overrides)
    if dry_run:
        return supervisor.dry_run(cfg, console)
    return supervisor.run(cfg, console)


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
) -> int:
    """List the catalogue: id, library, class, and whether each method can run here (and if not, why)."""
    from rich.table import Table

    from augshard.config import resolve_conf_path
    from augshard.methods import check_method, load_catalogue
    from augshard.methods.resources import apply_offline_env

    path = resolve_conf_path(methods_config, DEFAULT_METHODS_CONFIG)
    specs = load_catalogue(path)
    apply_offline_env()
    table = Table(title=f"method catalogue {path}")
    for col in ("id", "library", "class", "status", "reason", "fix"):
        table.add_column(col, overflow="fold")
    unavailable = 0
    for spec in specs.values():
        if not check:
            table.add_row(spec.id, spec.lib, spec.kind, "not checked", "", "")
            continue
        st = check_method(spec)
        unavailable += not st.ok
        status = "[green]ok[/green]" if st.ok else "[red]unavailable[/red]"
        table.add_row(spec.id, spec.lib, spec.kind, status, escape(st.reason), escape(st.fix))
    console.print(table)
    if check:
        console.print(f"{len(specs) - unavailable} of {len(specs)} methods can run here")
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

    from augshard.methods.resources import prepare as prepare_resources

    try:
        where = prepare_resources(Path(target) if target else None, log=console.print)
    except RuntimeError as exc:
        raise AugshardError(str(exc)) from None
    console.print(f"NLTK data ready in {where}")
    return 0


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("[red]interrupted[/red]")
        sys.exit(130)
