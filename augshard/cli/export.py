"""`augshard export`: one training set from a finished run."""

from __future__ import annotations

import signal
from pathlib import Path

import typer
from rich.markup import escape

from augshard import api
from augshard.cli.app import (
    app,
    console,
    err_console,
    flag_value,
    format_option,
    old_option,
    option,
    renamed,
    user_errors,
)
from augshard.core.config import DEFAULT_CONFIG
from augshard.core.errors import ConfigError
from augshard.core.run_paths import run_paths
from augshard.evaluation.document import EVALUATION, read_document
from augshard.evaluation.findings import evidence
from augshard.events.output import check_format, notice, print_rows, write_json
from augshard.exporting.export import ExportInterrupted
from augshard.exporting.model import EXPORT

# The input rows are exported by default now: the old flag that asked for them is taken, with this note.
INCLUDE_ORIGINALS = "the originals are exported by default now (as k 0); --no-originals leaves them out"


@app.command()
@user_errors
def export(
    to: str = option(EXPORT["to"]),
    output_root: str = option(EXPORT["output_root"]),
    output_name: str = option(EXPORT["output_name"]),
    config: str = typer.Option(None, "--config", help=f"Run defaults file, as for `run` [{DEFAULT_CONFIG}]."),
    dedupe: str = option(EXPORT["dedupe"]),
    near_threshold: float = option(EXPORT["near_threshold"]),
    drop_label_flips: bool = option(EXPORT["drop_label_flips"]),
    no_originals: bool = option(EXPORT["include_originals"]),  # --no-originals
    include_originals: bool = typer.Option(False, "--include-originals", hidden=True, help=INCLUDE_ORIGINALS),
    combos: str = option(EXPORT["combos"]),
    k: str = option(EXPORT["k"]),
    rows_per_file: int = option(EXPORT["rows_per_file"]),
    shard_size: int = old_option(EXPORT["rows_per_file"]),
    allow_incomplete: bool = option(EXPORT["allow_incomplete"]),
    force: bool = option(EXPORT["force"]),
    plan: str = option(EXPORT["plan"]),
    cache_dir: str = option(EXPORT["cache_dir"]),
    log_dir: str = option(EXPORT["log_dir"]),
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
    if include_originals:
        if no_originals:
            raise ConfigError("--include-originals and --no-originals: give one of them")
        notice(f"--include-originals: {INCLUDE_ORIGINALS}")
    paths = run_paths(config, output_root=output_root, output_name=output_name, cache_dir=cache_dir, log_dir=log_dir)
    rows_per_file = renamed(
        "--shard-size", shard_size, "--rows-per-file", rows_per_file, "a shard is a run's partition"
    )
    try:
        result = api.export(
            to, paths.output_root, best=best, min_gain=min_gain, by_features=by_features,
            output_name=paths.output_name, dedupe=dedupe, near_threshold=near_threshold,
            drop_label_flips=drop_label_flips, include_originals=flag_value(EXPORT["include_originals"], no_originals),
            combos=combos, k=k, rows_per_file=rows_per_file, allow_incomplete=allow_incomplete, force=force,
            plan=(plan or "").strip(), cache_dir=paths.cache_dir, log_dir=paths.log_dir,
        )  # fmt: skip
    except (ExportInterrupted, KeyboardInterrupt) as exc:
        err_console.print(f"[red]interrupted[/red]: nothing written to {escape(to)}")
        return 128 + (exc.signum if isinstance(exc, ExportInterrupted) else signal.SIGINT)
    if best is not None or min_gain is not None:  # on the terminal whatever the format (stdout may be a document)
        _say_what_best_found(result, best, paths.output_root, by_features)
    if fmt == "json":
        write_json(result.to_json())
        return 0
    out = console
    if fmt == "tsv":  # a row per combo on stdout; the summary lines go to stderr
        rows = [[getattr(c, col) for col in EXPORT_TSV] for c in result.combos]
        print_rows(console, EXPORT_TSV, rows, "tsv")
        out = err_console
    dropped = result.dropped
    out.print(
        f"exported {result.rows:,} rows ({len(result.files)} file(s), {len(result.combos)} combos"
        f"{f', {result.originals:,} originals' if result.originals else ''}) to {to}",
        markup=False,
    )
    out.print(
        f"dropped: {dropped.exact_duplicates:,} exact duplicates, {dropped.near_duplicates:,} near "
        f"duplicates, {dropped.label_flips:,} label flips",
        markup=False,
    )
    if result.split is None:
        err_console.print(f"[yellow]warning:[/yellow] {escape(result.split_line.removeprefix('warning: '))}")
    else:
        out.print(result.split_line, markup=False, highlight=False)
    for combo_dir, why in result.left_out.items():
        out.print(f"[yellow]left out[/yellow] {combo_dir}: {escape(why)}")
    out.print(f"card: {Path(to) / 'README.md'}; facts: {Path(to) / 'export.json'}", markup=False)
    return 0


# `export --format tsv`: a row per combo (docs/cli.md); `methods` came after the first seven, so it is last.
EXPORT_TSV = ("combo_dir", "k", "rows", "kept", "exact_duplicates", "near_duplicates", "label_flips", "methods")


def _say_what_best_found(result: api.ExportResult, best: int | None, root: str, features: str | None) -> None:
    """How many combos `--best N` / `--min-gain X` chose, and how many of them the evaluation calls `helps`."""
    chosen = [c.combo_dir for c in result.combos] + list(result.left_out)
    helping = evidence(read_document(Path(root) / EVALUATION), chosen, features)
    evidence_note = f"; {helping} of them with evidence of a gain (verdict helps)"
    if best is not None and len(chosen) < best:
        err_console.print(
            f"[yellow]--best {best}[/yellow]: evaluation.json ranks only {len(chosen)} combo(s) (it evaluated fewer, "
            f"or fewer met --min-gain): chose those {len(chosen)}, not {best}{evidence_note}"
        )
    elif best is not None:
        err_console.print(f"--best {best}: chose the {best} combo(s) with the best gain in evaluation.json"
                          f"{evidence_note}", markup=False, highlight=False)  # fmt: skip
    else:
        err_console.print(f"--min-gain: chose {len(chosen)} combo(s){evidence_note}", markup=False, highlight=False)
