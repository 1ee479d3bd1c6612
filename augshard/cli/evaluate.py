"""`augshard evaluate`: each combo's effect on a classifier, measured without leakage."""

from __future__ import annotations

import signal
from typing import Any

import typer

from augshard import api
from augshard.cli.app import app, err_console, format_option, old_option, option, renamed, user_errors
from augshard.cli.evaluation_view import check_train_size, print_evaluation, tsv
from augshard.core.config import DEFAULT_CONFIG
from augshard.core.run_paths import run_paths
from augshard.evaluation.options import EVALUATE
from augshard.events.output import check_format, interactive, write_json
from augshard.runner.interrupts import Interrupted


@app.command()
@user_errors
def evaluate(
    label_col: str = option(EVALUATE["label_col"]),
    output_root: str = option(EVALUATE["output_root"]),
    output_name: str = option(EVALUATE["output_name"]),
    config: str = typer.Option(None, "--config", help=f"Run defaults file, as for `run` [{DEFAULT_CONFIG}]."),
    group_col: str = option(EVALUATE["group_col"]),
    folds: int = option(EVALUATE["folds"]),
    repeats: int = option(EVALUATE["repeats"]),
    features: str = option(EVALUATE["features"]),
    train_sizes: str = option(EVALUATE["train_sizes"]),
    combos: str = option(EVALUATE["combos"]),
    export_dir: str = option(EVALUATE["export_dir"]),
    field: str = option(EVALUATE["field"]),
    seed: int = option(EVALUATE["seed"]),
    workers: str = option(EVALUATE["workers"]),  # a count or 'auto'
    num_shards: str = old_option(EVALUATE["workers"]),
    allow_incomplete: bool = option(EVALUATE["allow_incomplete"]),
    drop_rare_classes: bool = option(EVALUATE["drop_rare_classes"]),
    cache_dir: str = option(EVALUATE["cache_dir"]),
    embedding_model: str = option(EVALUATE["embedding_model"]),
    out: str = option(EVALUATE["out"]),
    force: bool = option(EVALUATE["force"]),
    plan: str = option(EVALUATE["plan"]),
    confirm_top: int = option(EVALUATE["confirm_top"]),
    confirm_repeats: int = option(EVALUATE["confirm_repeats"]),
    group_near: bool = option(EVALUATE["group_near"]),
    model: str = option(EVALUATE["model"]),
    test_split: str = option(EVALUATE["test_split"]),
    split_col: str = option(EVALUATE["split_col"]),
    show_all: bool = typer.Option(False, "--all", help="Every combo in the table (else the 20 best and worst)."),
    train_size: float = typer.Option(None, "--train-size", help="Show this train size's table [the largest]."),
    class_names: str = typer.Option(
        None, "--class", help="Classes of the per-class table, comma-separated [the 3 rarest]."
    ),
    fmt: str = format_option("table | tsv (one row per section and combo) | json (evaluation.json)."),
) -> int:
    """Which combos make a classifier better: folds over the originals, baseline vs baseline + a combo's variants
    of the training originals, scored on test originals only; paired gains with corrected intervals."""

    check_format(fmt)
    paths = run_paths(config, output_root=output_root, output_name=output_name, cache_dir=cache_dir)
    workers = renamed("--num-shards", num_shards, "--workers", workers, "a shard is a run's partition")
    check_train_size(train_size, _sizes(train_sizes))
    advance = _progress() if interactive(err_console) else _progress_lines()
    try:
        result = api.evaluate(
            label_col, paths.output_root, on_progress=advance,
            output_name=paths.output_name, group_col=group_col, folds=folds, repeats=repeats, features=features,
            train_sizes=train_sizes, combos=combos, export_dir=export_dir or None, field=field, seed=seed,
            workers=None if workers == "auto" else workers, allow_incomplete=allow_incomplete,
            drop_rare_classes=drop_rare_classes, cache_dir=paths.cache_dir, embedding_model=embedding_model,
            out=out or None, force=force, plan=(plan or "").strip(), confirm_top=confirm_top,
            confirm_repeats=confirm_repeats, group_near=group_near, model=model, test_split=test_split,
            split_col=split_col,
        )  # fmt: skip
    except (Interrupted, KeyboardInterrupt) as exc:
        getattr(advance, "stop", lambda: None)()  # a progress bar on the terminal: gone, the cursor back
        err_console.print("[red]interrupted[/red]: every worker stopped; no evaluation.json written (an earlier one "
                          "is left as it was)")  # fmt: skip
        return 128 + (exc.signum if isinstance(exc, Interrupted) else signal.SIGINT)
    doc = result.document
    if fmt == "json":
        write_json(doc.to_json())
    elif fmt == "tsv":
        tsv(doc)
    else:
        print_evaluation(doc, show_all, train_size, _items(class_names))
        err_console.print(f"evaluation: {result.path}", markup=False, highlight=False)
    return 0


def _sizes(text: str | None) -> tuple[float, ...]:
    try:
        return tuple(float(s) for s in _items(text)) or tuple(EVALUATE["train_sizes"].default)
    except ValueError:
        return ()  # the API says what is wrong with them


def _items(text: str | None) -> tuple[str, ...]:
    return tuple(c.strip() for c in (text or "").split(",") if c.strip())


def _progress() -> Any:
    """A Rich progress bar on the terminal's stderr, advanced as each combo's folds are done."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

    bar = Progress("evaluating", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                   console=err_console, transient=True)  # fmt: skip
    task = bar.add_task("combos", total=None)

    def advance(done: int, total: int) -> None:
        if not bar.live.is_started:
            bar.start()
        bar.update(task, completed=done, total=total)
        if done == total:
            bar.stop()

    advance.stop = bar.stop  # type: ignore[attr-defined]
    return advance


def _progress_lines() -> Any:
    """Off a terminal: a line on stderr at every tenth of the work, so a log shows it moving."""
    import time

    start = time.monotonic()
    shown = [-1]

    def advance(done: int, total: int) -> None:
        tenth = done * 10 // total
        if tenth > shown[0]:
            shown[0] = tenth
            err_console.print(f"evaluated {done}/{total} (baseline and combos) in {time.monotonic() - start:.0f}s",
                              markup=False, highlight=False)  # fmt: skip

    return advance
