"""`augshard export`: one training set from a finished run."""

from __future__ import annotations

import signal
from pathlib import Path

import typer
from rich.markup import escape

from augshard.card import facts
from augshard.cli.app import app, console, err_console, format_option, user_errors
from augshard.config import DEFAULT_CONFIG, run_paths
from augshard.config import DEFAULT_OUTPUT_NAME as OUTPUT_NAME
from augshard.config import DEFAULT_OUTPUT_ROOT as OUTPUT_ROOT
from augshard.errors import ConfigError
from augshard.export_model import ExportOptions
from augshard.exporting import ExportInterrupted
from augshard.exporting import export as run_export
from augshard.findings import choose_combos
from augshard.output import check_format, print_rows, write_json


@app.command()
@user_errors
def export(
    to: str = typer.Option(..., "--to", help="The folder to write (refused when it exists and is not empty)."),
    output_root: str = typer.Option(None, "--output-root", help=f"The run's output root [{OUTPUT_ROOT}]."),
    output_name: str = typer.Option(None, "--output-name", help=f"The run's merged manifest [{OUTPUT_NAME}]."),
    config: str = typer.Option(None, "--config", help=f"Run defaults file, as for `run` [{DEFAULT_CONFIG}]."),
    dedupe: str = typer.Option("exact", "--dedupe", help="none | exact | near (MinHash LSH) [exact]."),
    near_threshold: float = typer.Option(0.9, "--near-threshold", help="Jaccard similarity of a near duplicate."),
    drop_label_flips: bool = typer.Option(
        False, "--drop-label-flips", help="Leave out variants the label check predicts another label for."
    ),
    include_originals: bool = typer.Option(False, "--include-originals", help="Write the input rows too (k 0)."),
    combos: str = typer.Option(
        None,
        "--combos",
        help="Only these combos: ids, folder names or methods as shown (nlp_keyboard+nlp_ocr), comma-separated.",
    ),
    k: str = typer.Option(None, "--k", help="Only combos of these sizes, e.g. 1,2."),
    shard_size: int = typer.Option(500_000, "--shard-size", help="Rows per Parquet file [500,000]."),
    allow_incomplete: bool = typer.Option(
        False, "--allow-incomplete", help="Export the complete combos of a run with failed or stopped ones."
    ),
    force: bool = typer.Option(
        False, "--force", help="Replace --to if it exists and an earlier `augshard export` made it."
    ),
    plan: str = typer.Option(
        "", "--plan", help="Export only the combos of this plan (its fingerprint), when a stopped run left two."
    ),
    cache_dir: str = typer.Option(None, "--cache-dir", help="The run's cache folder (--to may not touch it)."),
    log_dir: str = typer.Option(None, "--log-dir", help="The run's log folder (--to may not touch it)."),
    best: int = typer.Option(None, "--best", help="Only the N combos with the best gain in evaluation.json."),
    min_gain: float = typer.Option(
        None, "--min-gain", help="Only combos whose mean macro-F1 gain in evaluation.json is at least X."
    ),
    by_features: str = typer.Option(
        None, "--by-features", help="Which evaluation's gains --best/--min-gain read: tfidf | embedding [the first]."
    ),
    fmt: str = format_option("table (lines) | json (export.json's facts) | tsv (rows per combo)."),
) -> int:
    """Make one training set of a run: deduplicated, with provenance, a dataset card and export.json."""

    check_format(fmt)
    paths = run_paths(config, output_root=output_root, output_name=output_name, cache_dir=cache_dir, log_dir=log_dir)
    output_root, output_name = paths.output_root, paths.output_name
    try:
        sizes = tuple(int(x) for x in k.split(",") if x.strip()) if k else ()
    except ValueError:
        raise ConfigError(f"--k: expected sizes like 1,2, got '{k}'") from None
    chosen_by = ""
    if best is not None or min_gain is not None:
        if combos or k:
            raise ConfigError("--best/--min-gain choose the combos from evaluation.json: give no --combos or --k")
        if best is not None and best < 1:
            raise ConfigError(f"--best must be at least 1, got {best}")
        chosen, chosen_by = choose_combos(Path(output_root), best, min_gain, by_features)
        combos = ",".join(chosen)
    elif by_features:
        raise ConfigError("--by-features goes with --best or --min-gain")
    options = ExportOptions(
        to=Path(to), output_root=Path(output_root), output_name=output_name, dedupe=dedupe,
        near_threshold=near_threshold, drop_label_flips=drop_label_flips, include_originals=include_originals,
        combos=tuple(c.strip() for c in (combos or "").split(",") if c.strip()), k=sizes, shard_size=shard_size,
        allow_incomplete=allow_incomplete, force=force, plan=plan.strip(), cache_dir=Path(paths.cache_dir),
        log_dir=Path(paths.log_dir), chosen_by=chosen_by,
    )  # fmt: skip
    try:
        result = run_export(options)
    except (ExportInterrupted, KeyboardInterrupt) as exc:
        err_console.print(f"[red]interrupted[/red]: nothing written to {escape(to)}")
        return 128 + (exc.signum if isinstance(exc, ExportInterrupted) else signal.SIGINT)
    doc = facts(result)
    if fmt == "json":
        write_json(doc.to_json())
        return 0
    out = console
    if fmt == "tsv":  # a row per combo on stdout; the summary lines go to stderr
        print_rows(console, EXPORT_TSV, [[c[col] for col in EXPORT_TSV] for c in doc.combos], "tsv")
        out = err_console
    dropped = doc.dropped
    out.print(
        f"exported {doc.rows:,} rows ({len(doc.files)} file(s), {len(doc.combos)} combos"
        f"{f', {result.originals:,} originals' if result.originals else ''}) to {to}",
        markup=False,
    )
    out.print(
        f"dropped: {dropped['exact_duplicates']:,} exact duplicates, {dropped['near_duplicates']:,} near "
        f"duplicates, {dropped['label_flips']:,} label flips",
        markup=False,
    )
    for o in result.skipped:
        why = o.error if o.ok else o.status.value  # an ok combo is left out for another plan's folder
        out.print(f"[yellow]left out[/yellow] {o.combo_dir}: {escape(why)}")
    out.print(f"card: {Path(to) / 'README.md'}; facts: {Path(to) / 'export.json'}", markup=False)
    return 0


# `export --format tsv`: a row per combo (docs/cli.md); `methods` came after the first seven, so it is last.
EXPORT_TSV = ("combo_dir", "k", "rows", "kept", "exact_duplicates", "near_duplicates", "label_flips", "methods")
