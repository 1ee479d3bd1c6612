"""`augshard evaluate`: each combo's effect on a classifier, measured without leakage."""

from __future__ import annotations

import signal
from typing import Any

import typer

from augshard import api
from augshard.cli.app import app, err_console, format_option, renamed, user_errors
from augshard.cli.evaluation_view import check_train_size, print_evaluation, tsv
from augshard.core.config import DEFAULT_CACHE_DIR as CACHE_DIR
from augshard.core.config import DEFAULT_CONFIG, run_paths
from augshard.core.config import DEFAULT_OUTPUT_NAME as OUTPUT_NAME
from augshard.core.config import DEFAULT_OUTPUT_ROOT as OUTPUT_ROOT
from augshard.core.errors import ConfigError
from augshard.events.output import check_format, interactive, write_json
from augshard.runner.interrupts import Interrupted


@app.command()
@user_errors
def evaluate(
    label_col: str = typer.Option(..., "--label-col", help="The label column of the run's input."),
    output_root: str = typer.Option(None, "--output-root", help=f"The run's output root [{OUTPUT_ROOT}]."),
    output_name: str = typer.Option(None, "--output-name", help=f"The run's merged manifest [{OUTPUT_NAME}]."),
    config: str = typer.Option(None, "--config", help=f"Run defaults file, as for `run` [{DEFAULT_CONFIG}]."),
    group_col: str = typer.Option(None, "--group-col", help="Rows sharing a value stay in one fold (e.g. a post id)."),
    folds: int = typer.Option(5, "--folds", help="Folds over the originals [5]."),
    repeats: int = typer.Option(1, "--repeats", help="Repeats of the folds with other seeds [1]."),
    features: str = typer.Option(
        None, "--features", help="tfidf | embedding | both | model, comma-separated [tfidf; model with --model]."
    ),
    train_sizes: str = typer.Option(
        "1.0", "--train-sizes", help="Fractions of the training originals, e.g. 0.1,0.25,1.0 (a learning curve)."
    ),
    combos: str = typer.Option(None, "--combos", help="Only these combos: ids, folders or method names."),
    export_dir: str = typer.Option(None, "--export", help="Evaluate an `augshard export` folder as a whole."),
    field: str = typer.Option("text", "--field", help="What the classifier reads: text | evidence [text]."),
    seed: int = typer.Option(0, "--seed", help="Seed of the folds and subsets [0]."),
    workers: str = typer.Option("auto", "--workers", help="Worker processes: auto (one per core) or N."),
    num_shards: str = typer.Option(None, "--num-shards", hidden=True, help="Old spelling of --workers."),
    allow_incomplete: bool = typer.Option(
        False, "--allow-incomplete", help="Evaluate the complete combos of a run with failed or stopped ones."
    ),
    drop_rare_classes: bool = typer.Option(
        False, "--drop-rare-classes", help="Leave out classes with fewer rows than folds (else refused)."
    ),
    cache_dir: str = typer.Option(None, "--cache-dir", help=f"Where encoded vectors are cached [{CACHE_DIR}]."),
    embedding_model: str = typer.Option(
        None, "--embedding-model", help="Sentence model directory for --features embedding [the bundled MiniLM]."
    ),
    out: str = typer.Option(None, "--out", help="Where to write evaluation.json [the output root or --export]."),
    force: bool = typer.Option(False, "--force", help="Replace an --out that is not an evaluation.json augshard made."),
    plan: str = typer.Option(
        "", "--plan", help="Evaluate only the combos of this plan (its fingerprint), when a stopped run left two."
    ),
    confirm_top: int = typer.Option(
        None,
        "--confirm-top",
        help="Re-evaluate the screen's K best on fresh splits (0: no confirm stage) [10 when "
        "there are more than 10 combos].",
    ),
    confirm_repeats: int = typer.Option(5, "--confirm-repeats", help="Repeats of the folds in the confirm stage."),
    group_near: bool = typer.Option(
        False, "--group-near", help="Originals MinHash-similar above 0.9 are also one group."
    ),
    model: str = typer.Option(
        None,
        "--model",
        help="Your classifier: module:factory or file.py:factory returning a scikit-learn "
        "estimator of raw texts (adds the features set 'model').",
    ),
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
    count = None if workers == "auto" else _count(workers)
    check_train_size(train_size, _sizes(train_sizes))
    advance = _progress() if interactive(err_console) else _progress_lines()
    try:
        result = api.evaluate(
            label_col, paths.output_root, on_progress=advance,
            output_name=paths.output_name, group_col=group_col, folds=folds, repeats=repeats, features=features,
            train_sizes=train_sizes, combos=combos or "", export_dir=export_dir or None, field=field, seed=seed,
            workers=count, allow_incomplete=allow_incomplete, drop_rare_classes=drop_rare_classes,
            cache_dir=paths.cache_dir, embedding_model=embedding_model, out=out or None, force=force, plan=plan.strip(),
            confirm_top=confirm_top, confirm_repeats=confirm_repeats, group_near=group_near, model=model,
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


def _sizes(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(s) for s in _items(text))
    except ValueError:
        return ()  # the API says what is wrong with them


def _items(text: str | None) -> tuple[str, ...]:
    return tuple(c.strip() for c in (text or "").split(",") if c.strip())


def _count(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"--workers must be 'auto' or a whole number, got '{text}'") from None


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
