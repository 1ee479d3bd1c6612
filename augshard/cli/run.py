"""`augshard run`: flags into a RunConfig, then the API's dry run or run, printed."""

from __future__ import annotations

import typer

from augshard.api import plan_and_print, run_and_print
from augshard.cli.app import (
    FORMAT_HELP,
    app,
    console,
    err_console,
    format_option,
    method_ids,
    user_errors,
)
from augshard.core.config import DEFAULT_CONFIG, DEFAULT_METHODS_CONFIG, load_config
from augshard.events.output import check_format, notice


@app.command()
@user_errors
def run(
    input: str = typer.Option(None, "--input", help="Input dataset (CSV or Parquet)."),
    text_col: str = typer.Option(None, "--text-col", help="Column holding the text."),
    evidence_col: str = typer.Option(None, "--evidence-col", help="Column holding the evidence span (optional)."),
    id_col: str = typer.Option(None, "--id-col", help="Column holding a unique row id (optional)."),
    label_col: str = typer.Option(
        None, "--label-col", help="Column holding the label: every variant gets label_pred and label_agrees."
    ),
    criterion_col: str = typer.Option(None, "--criterion-col", help="The original tool's passthrough column."),
    methods_config: str = typer.Option(
        None, "--methods-config", "--methods-yaml", help=f"Method catalogue [{DEFAULT_METHODS_CONFIG}]."
    ),
    config: str = typer.Option(None, "--config", help=f"Run defaults file; flags override it [{DEFAULT_CONFIG}]."),
    output_root: str = typer.Option(None, "--output-root", help="Where combo folders and manifests go."),
    cache_dir: str = typer.Option(None, "--cache-dir", help="Per-shard SQLite caches."),
    disk_cache: str = typer.Option(None, "--disk-cache", help="One SQLite cache file for every shard instead."),
    log_dir: str = typer.Option(None, "--log-dir", help="Per-shard logs and event streams."),
    num_shards: str = typer.Option(
        None, "--num-shards", "--num-proc", help="Shards, or 'auto' = min(CPU cores, combos to run) [auto]."
    ),
    variants_per_sample: str = typer.Option(None, "--variants-per-sample", help="Variants per row and combo [2]."),
    quality_min_sim: str = typer.Option(
        None, "--quality-min-sim", help="Lowest accepted similarity [embedding 0.55, char_ratio 0.40]."
    ),
    quality_max_sim: str = typer.Option(
        None, "--quality-max-sim", help="Highest accepted similarity [embedding 0.95, char_ratio 0.98]."
    ),
    quality_metric: str = typer.Option(None, "--quality-metric", help="embedding | char_ratio | none [embedding]."),
    quality_scope: str = typer.Option(
        None, "--quality-scope", help="final | each-step (every step against its input too, as the original) [final]."
    ),
    embedding_backend: str = typer.Option(
        None,
        "--embedding-backend",
        help="auto | torch | onnx: how the embedding model runs; auto = onnx on the CPU, torch on a GPU [auto].",
    ),
    device: str = typer.Option(
        None, "--device", help="auto | cpu | cuda | cuda:N, for the similarity model and model methods [auto]."
    ),
    seed: str = typer.Option(None, "--seed", help="Seed of every random call [42]."),
    combo_mode: str = typer.Option(None, "--combo-mode", help="single | bounded_k | all [bounded_k]."),
    max_combo_size: str = typer.Option(None, "--max-combo-size", help="Largest combo with bounded_k [2]."),
    confirm_powerset: bool = typer.Option(
        False, "--confirm-powerset", help="Allow --combo-mode all, or any plan of over 10,000 combos."
    ),
    methods: str = typer.Option(
        None, "--methods", help="Method ids, shell patterns or 'all', comma-separated.", autocompletion=method_ids
    ),
    exclude_methods: str = typer.Option(
        None, "--exclude-methods", help="Ids or patterns to leave out, comma-separated.", autocompletion=method_ids
    ),
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
    save_format: str = typer.Option(None, "--save-format", help="parquet | csv (dataset.csv beside the Parquet)."),
    keep_vectors: bool = typer.Option(
        False,
        "--keep-vectors",
        help="Also write vectors.parquet in each combo folder: the embedding filter's vector of every variant.",
    ),
    global_dedupe: bool = typer.Option(
        False, "--global-dedupe", help="The original tool's flag: duplicates are dropped by `augshard export`."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate everything and print the plan; write nothing."),
    no_live: bool = typer.Option(False, "--no-live", help="Plain progress lines instead of the live shard table."),
    calibrate: str = typer.Option(
        None, "--calibrate", help="Balance shards with measured costs from this `methods --bench` file."
    ),
    calibrated: bool = typer.Option(
        False, "--calibrated", help="Like --calibrate with the default file data/cache/method_costs.json."
    ),
    fmt: str = format_option(FORMAT_HELP + " With tsv or json, progress goes to stderr."),
) -> int:
    """Plan the combos, run them on shards, write datasets and manifests, and merge them."""
    overrides = dict(locals())  # every flag named as its setting, but these few
    for key in ("config", "dry_run", "no_live", "fmt", "no_steal", "calibrated", "global_dedupe"):
        overrides.pop(key)

    overrides.update(
        force=force or None,
        confirm_powerset=confirm_powerset or None,
        keep_shards=keep_shards or None,
        keep_vectors=keep_vectors or None,
        steal=False if no_steal else None,
        calibrate=calibrate or (True if calibrated else None),
    )
    cfg = load_config(config, overrides)
    out = console if check_format(fmt) == "table" else err_console  # scripts get stdout to themselves
    if global_dedupe:
        notice(f"--global-dedupe: {GLOBAL_DEDUPE_NOTE}")
    if dry_run:
        return plan_and_print(cfg, out, fmt)
    return run_and_print(cfg, out, live=not no_live, fmt=fmt).exit_code


GLOBAL_DEDUPE_NOTE = (
    "a run keeps every variant of every combo; duplicates across the run are dropped when you make one training "
    "set of it: `augshard export --to DIR --dedupe exact`"
)
