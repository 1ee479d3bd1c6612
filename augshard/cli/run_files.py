"""The commands that read a run: `merge`, `monitor`, `verify`, `report`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from augshard.cli.app import (
    FORMAT_HELP,
    app,
    console,
    err_console,
    format_option,
    user_errors,
)
from augshard.core.config import DEFAULT_CONFIG
from augshard.core.config import DEFAULT_LOG_DIR as LOG_DIR
from augshard.core.config import DEFAULT_OUTPUT_NAME as OUTPUT_NAME
from augshard.core.config import DEFAULT_OUTPUT_ROOT as OUTPUT_ROOT
from augshard.core.errors import AugshardError
from augshard.core.run_paths import run_paths
from augshard.events.monitor import follow as follow_events
from augshard.events.monitor import print_statuses
from augshard.events.output import check_format, notice, print_rows, write_json
from augshard.events.status import EventsWatcher
from augshard.report.page import write_report
from augshard.runner.lock import RunLock
from augshard.storage.merge import merge as merge_manifests
from augshard.storage.merge import merged_before
from augshard.storage.outcome import ShardState
from augshard.storage.outputs import check_merged_manifest
from augshard.storage.verify import verify as verify_outputs


@app.command()
@user_errors
def merge(
    output_root: str = typer.Option(None, "--output-root", help=f"Folder with shard manifests [{OUTPUT_ROOT}]."),
    output_name: str = typer.Option(None, "--output-name", help=f"Name of the merged manifest [{OUTPUT_NAME}]."),
    config: str = typer.Option(None, "--config", help=f"Run defaults file, as for `run` [{DEFAULT_CONFIG}]."),
    keep_shards: bool = typer.Option(False, "--keep-shards", help="Keep the shard manifests after merging."),
    force: bool = typer.Option(
        False, "--force", help="Replace a file at --output-name that is not a manifest augshard wrote."
    ),
    fmt: str = format_option(),
) -> int:
    """Merge the shard manifests of one plan into one manifest and print a summary."""
    check_format(fmt)
    paths = run_paths(config, output_root=output_root, output_name=output_name)
    output_root, output_name = paths.output_root, paths.output_name
    if not Path(output_root).is_dir():
        summary = merge_manifests(output_root, output_name, keep_shards)  # says the root is missing
    else:
        check_merged_manifest(output_root, output_name, paths.cache_dir, paths.log_dir, force)
        with RunLock(output_root):  # a run owns its shard manifests until it has merged them itself
            if merged_before(output_root, output_name):
                notice(
                    f"no shard manifests left in {escape(output_root)}: merged before; {escape(output_name)} as it is"
                )
            summary = merge_manifests(output_root, output_name, keep_shards)
    manifest = str(Path(output_root) / output_name)
    if fmt == "json":
        write_json({**summary.as_json(), "manifest": manifest})
    elif fmt == "tsv":
        doc = {**summary.as_json(), "manifest": manifest}
        print_rows(console, ("field", "value"), _tsv_fields(doc), "tsv")
    else:
        for line in summary.lines():
            console.print(line)
        console.print(f"manifest: {manifest}", markup=False)
    return 1 if summary.unfinished else 0


def _tsv_fields(doc: dict[str, Any]) -> list[list[Any]]:
    """A document as field/value rows of single values: `per_k` as one `per_k.<k>` row per size, a list of names
    comma-joined."""
    rows: list[list[Any]] = []
    for key, value in doc.items():
        if isinstance(value, dict):
            rows += [[f"{key}.{k}", v] for k, v in value.items()]
        elif isinstance(value, list):
            rows.append([key, ",".join(map(str, value))])
        else:
            rows.append([key, value])
    return rows


@app.command()
@user_errors
def monitor(
    log_dir: str = typer.Option(None, "--log-dir", help=f"Where the shards write their event streams [{LOG_DIR}]."),
    config: str = typer.Option(None, "--config", help=f"Run defaults file, as for `run` [{DEFAULT_CONFIG}]."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep refreshing until every shard is finished."),
    interval: float = typer.Option(2.0, "--interval", help="Seconds between refreshes with --follow."),
    stall_after: float = typer.Option(
        30.0, "--stall-after", help="A running shard silent this long (no heartbeat) is shown dead."
    ),
    no_live: bool = typer.Option(False, "--no-live", help="Plain lines instead of the live table with --follow."),
    fmt: str = format_option(FORMAT_HELP + " With --follow, the final state; progress on stderr."),
) -> int:
    """Show every shard's state, progress and ETA from its event stream (from any terminal, during or after a run)."""
    check_format(fmt)
    log_dir = run_paths(config, log_dir=log_dir).log_dir
    if interval <= 0 or stall_after <= 0:
        raise AugshardError("--interval and --stall-after must be positive")
    watcher = EventsWatcher(log_dir, stall_after=stall_after)
    statuses = watcher.statuses()
    title = f"augshard shards ({Path(log_dir) / '*.events.jsonl'})"
    if not follow:
        if not statuses:
            raise AugshardError(f"no shard event streams (shard_<i>_of_<N>.events.jsonl) in {log_dir}")
        print_statuses(console, statuses, fmt, title)
        return 0
    out = console if fmt == "table" else err_console
    if not statuses:
        out.print(f"waiting for shard event streams in {log_dir} …")
        while not watcher.statuses():
            time.sleep(interval)
    final = follow_events(out, watcher, interval, live=not no_live, patience=stall_after, final_table=fmt == "table")
    if fmt != "table":
        print_statuses(console, final, fmt, title)
    return 0 if all(st.state is ShardState.DONE for st in final) else 1


@app.command()
@user_errors
def verify(
    output_root: str = typer.Option(None, "--output-root", help=f"Folder with the manifest [{OUTPUT_ROOT}]."),
    output_name: str = typer.Option(None, "--output-name", help=f"Name of the merged manifest [{OUTPUT_NAME}]."),
    config: str = typer.Option(None, "--config", help=f"Run defaults file, as for `run` [{DEFAULT_CONFIG}]."),
    fmt: str = format_option(),
) -> int:
    """Check the manifest against the datasets on disk; exit 1 with the list of problems."""

    check_format(fmt)
    paths = run_paths(config, output_root=output_root, output_name=output_name)
    report = verify_outputs(paths.output_root, paths.output_name)
    if fmt == "json":
        write_json(report.as_json())
    elif fmt == "tsv":  # a problem a row on stdout; the counts are a summary: stderr
        print_rows(console, ("problem",), [[p] for p in report.problems], "tsv")
        for line in report.lines():
            err_console.print(line, markup=False)
    else:
        for problem in report.problems:
            console.print(f"[red]✗[/red] {escape(problem)}")
        for line in report.lines():
            console.print(line, markup=False)
    return 1 if report.problems else 0


@app.command()
@user_errors
def report(
    output_root: str = typer.Option(None, "--output-root", help=f"Folder with the manifest [{OUTPUT_ROOT}]."),
    output_name: str = typer.Option(None, "--output-name", help=f"Name of the merged manifest [{OUTPUT_NAME}]."),
    log_dir: str = typer.Option(None, "--log-dir", help=f"Event streams, for the time per shard [{LOG_DIR}]."),
    config: str = typer.Option(None, "--config", help=f"Run defaults file, as for `run` [{DEFAULT_CONFIG}]."),
    out: str = typer.Option("report.html", "--out", help="Where to write the HTML page."),
    examples: int = typer.Option(3, "--examples", help="Original vs variant examples per combo."),
    force: bool = typer.Option(False, "--force", help="Replace a file at --out that is not an augshard report."),
) -> int:
    """Write a self-contained HTML page with charts: rows, acceptance, similarity, examples, time per shard."""
    paths = run_paths(config, output_root=output_root, output_name=output_name, log_dir=log_dir)
    path = write_report(
        paths.output_root, out, output_name=paths.output_name, log_dir=paths.log_dir, examples=examples,
        cache_dir=paths.cache_dir, force=force,
    )  # fmt: skip
    console.print(f"report: {path}")
    return 0
