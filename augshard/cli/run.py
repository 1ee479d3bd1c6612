"""`augshard run`: flags into a RunConfig, then the API's dry run or run, printed."""

from __future__ import annotations

import sys

import typer

from augshard.api import plan_and_print, run_and_print
from augshard.cli.app import (
    FORMAT_HELP,
    app,
    console,
    err_console,
    flag_value,
    format_option,
    method_ids,
    option,
    user_errors,
)
from augshard.core.config import DEFAULT_CONFIG, DEFAULT_COSTS_PATH, RUN, load_config
from augshard.events.output import check_format, notice


@app.command()
@user_errors
def run(
    input: str = option(RUN["input"]),
    text_col: str = option(RUN["text_col"]),
    evidence_col: str = option(RUN["evidence_col"]),
    id_col: str = option(RUN["id_col"]),
    label_col: str = option(RUN["label_col"]),
    criterion_col: str = option(RUN["criterion_col"]),
    split_col: str = option(RUN["split_col"]),
    augment_split: list[str] = option(RUN["augment_split"], metavar="TEXT"),  # repeatable, each maybe comma-separated
    methods_config: str = option(RUN["methods_config"]),
    config: str = typer.Option(None, "--config", help=f"Run defaults file; flags override it [{DEFAULT_CONFIG}]."),
    output_root: str = option(RUN["output_root"]),
    cache_dir: str = option(RUN["cache_dir"]),
    disk_cache: str = option(RUN["disk_cache"]),
    log_dir: str = option(RUN["log_dir"]),
    num_shards: str = option(RUN["num_shards"]),  # a count or 'auto'
    variants_per_sample: int = option(RUN["variants_per_sample"]),
    balance: bool = option(RUN["balance"]),
    balance_target: int = option(RUN["balance_target"]),
    max_variants_per_sample: int = option(RUN["max_variants_per_sample"]),
    variants_per_class: list[str] = option(RUN["variants_per_class"], metavar="LABEL=N"),  # repeatable
    quality_min_sim: float = option(RUN["quality_min_sim"]),
    quality_max_sim: float = option(RUN["quality_max_sim"]),
    quality_metric: str = option(RUN["quality_metric"]),
    quality_scope: str = option(RUN["quality_scope"]),
    embedding_backend: str = option(RUN["embedding_backend"]),
    device: str = option(RUN["device"]),
    seed: int = option(RUN["seed"]),
    combo_mode: str = option(RUN["combo_mode"]),
    max_combo_size: int = option(RUN["max_combo_size"]),
    confirm_powerset: bool = option(RUN["confirm_powerset"]),
    methods: str = option(RUN["methods"], autocompletion=method_ids),
    exclude_methods: str = option(RUN["exclude_methods"], autocompletion=method_ids),
    force: bool = option(RUN["force"]),
    no_steal: bool = option(RUN["steal"]),  # --no-steal
    shard_index: int = option(RUN["shard_index"]),
    gpu_slots: int = option(RUN["gpu_slots"]),
    max_retries: int = option(RUN["max_retries"]),
    executor: str = option(RUN["executor"]),
    scheduler: str = option(RUN["scheduler"]),
    keep_shards: bool = option(RUN["keep_shards"]),
    save_format: str = option(RUN["save_format"]),
    keep_vectors: bool = option(RUN["keep_vectors"]),
    global_dedupe: bool = typer.Option(
        False, "--global-dedupe", help="The original tool's flag: duplicates are dropped by `augshard export`."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate everything and print the plan; write nothing."),
    no_estimate: bool = typer.Option(
        False, "--no-estimate", help="With --dry-run: no time estimate (it runs the methods on a few rows first)."
    ),
    no_live: bool = typer.Option(False, "--no-live", help="Plain progress lines instead of the live shard table."),
    calibrate: str = option(RUN["calibrate"]),
    calibrated: bool = typer.Option(
        False, "--calibrated", help=f"Like --calibrate with the default file {DEFAULT_COSTS_PATH}."
    ),
    fmt: str = format_option(FORMAT_HELP + " With tsv or json, progress goes to stderr."),
) -> int:
    """Plan the combos, run them on shards, write datasets and manifests, and merge them."""
    flags = dict(locals(), steal=no_steal)  # every setting's flag named as the setting, but --no-steal
    overrides = {s.name: flag_value(s, flags[s.name]) for s in RUN if s.flags}
    overrides["calibrate"] = calibrate or (True if calibrated else None)
    cfg = load_config(config, overrides, command=tuple(sys.argv))  # run.yaml records the command line
    out = console if check_format(fmt) == "table" else err_console  # scripts get stdout to themselves
    if global_dedupe:
        notice(f"--global-dedupe: {GLOBAL_DEDUPE_NOTE}")
    if dry_run:
        return plan_and_print(cfg, out, fmt, estimate=not no_estimate)
    return run_and_print(cfg, out, live=not no_live, fmt=fmt).exit_code


GLOBAL_DEDUPE_NOTE = (
    "a run keeps every variant of every combo; duplicates across the run are dropped when you make one training "
    "set of it: `augshard export --to DIR --dedupe exact`"
)
