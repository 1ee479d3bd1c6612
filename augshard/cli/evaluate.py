"""`augshard evaluate`: each combo's effect on a classifier, measured without leakage."""

from __future__ import annotations

import signal
from typing import Any

import typer

from augshard import api
from augshard.cli.app import app, console, err_console, format_option, old_option, option, renamed, user_errors
from augshard.core.config import DEFAULT_CONFIG, run_paths
from augshard.evaluation.findings import main_section
from augshard.evaluation.options import EVALUATE
from augshard.events.output import check_format, interactive, print_rows, write_json, write_tsv
from augshard.runner.interrupts import Interrupted

SHOWN_BY_DEFAULT = 20  # combos of the table on a terminal, best and worst; --all shows every one


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
    show_all: bool = typer.Option(False, "--all", help="Every combo in the table (else the 20 best and worst)."),
    fmt: str = format_option("table | tsv (one row per section and combo) | json (evaluation.json)."),
) -> int:
    """Which combos make a classifier better: folds over the originals, baseline vs baseline + a combo's variants
    of the training originals, scored on test originals only; paired gains with corrected intervals."""

    check_format(fmt)
    paths = run_paths(config, output_root=output_root, output_name=output_name, cache_dir=cache_dir)
    workers = renamed("--num-shards", num_shards, "--workers", workers, "a shard is a run's partition")
    advance = _progress() if interactive(err_console) else _progress_lines()
    try:
        result = api.evaluate(
            label_col, paths.output_root, on_progress=advance,
            output_name=paths.output_name, group_col=group_col, folds=folds, repeats=repeats, features=features,
            train_sizes=train_sizes, combos=combos, export_dir=export_dir or None, field=field, seed=seed,
            workers=None if workers == "auto" else workers, allow_incomplete=allow_incomplete,
            drop_rare_classes=drop_rare_classes, cache_dir=paths.cache_dir, embedding_model=embedding_model,
            out=out or None, force=force, plan=(plan or "").strip(),
        )  # fmt: skip
    except (Interrupted, KeyboardInterrupt) as exc:
        getattr(advance, "stop", lambda: None)()  # a progress bar on the terminal: gone, the cursor back
        err_console.print("[red]interrupted[/red]: every worker stopped; no evaluation.json written (an earlier one "
                          "is left as it was)")  # fmt: skip
        return 128 + (exc.signum if isinstance(exc, Interrupted) else signal.SIGINT)
    doc = result.document
    if fmt == "json":
        write_json(doc)
    elif fmt == "tsv":
        _tsv(doc)
    else:
        _table(doc, show_all)
        err_console.print(f"evaluation: {result.path}", markup=False, highlight=False)
    return 0


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


def _tsv(doc: dict[str, Any]) -> None:
    columns = ("features", "train_size", "combo_id", "combo_dir", "k", "variants_used", "macro_f1", "macro_f1_std",
               "accuracy", "gain", "ci_low", "ci_high", "p_value", "p_holm", "verdict")  # fmt: skip
    rows = []
    for s in doc["results"]:
        b = s["baseline"]
        rows.append([s["features"], s["train_size"], "baseline", "", 0, 0, b["macro_f1"]["mean"], b["macro_f1"]["std"],
                     b["accuracy"]["mean"], 0, 0, 0, 1, 1, "baseline"])  # fmt: skip
        for c in s["combos"]:
            g = c["gain"]
            rows.append([s["features"], s["train_size"], c["combo_id"], c["combo_dir"], c["k"], c["variants_used"],
                         c["macro_f1"]["mean"], c["macro_f1"]["std"], c["accuracy"]["mean"], g["mean"], g["ci_low"],
                         g["ci_high"], g["p_value"], g["p_holm"], c["verdict"]])  # fmt: skip
    write_tsv(columns, rows)


def _table(doc: dict[str, Any], show_all: bool) -> None:

    p = doc["protocol"]
    console.print(
        f"{p['originals']:,} originals in {p['groups']:,} groups, {len(p['classes'])} classes of '{p['label_col']}'; "
        f"{p['folds']} folds x {p['repeats']} repeat(s); every model scored on test originals only",
        markup=False,
    )
    for features in p["features"]:
        section = main_section(doc, features)
        _combo_table(section, show_all)
        _method_table(section)
    curves = [s for s in doc["results"] if len(p["train_sizes"]) > 1]
    if curves:
        rows = []
        for s in curves:
            best = s["combos"][0] if s["combos"] else None
            helps = sum(c["verdict"] == "helps" for c in s["combos"])
            rows.append([s["features"], f"{s['train_size']:g}", f"{s['baseline']['train_originals']:,.0f}",
                         f"{s['baseline']['macro_f1']['mean']:.4f}", best["name"] if best else "",
                         f"{best['gain']['mean']:+.4f}" if best else "", str(helps)])  # fmt: skip
        columns = ("features", "train size", "train originals", "baseline F1", "best combo", "its gain", "helps")
        print_rows(console, columns, rows, title="Learning curve (macro-F1)", right=columns[1:4] + columns[5:])


def _combo_table(section: dict[str, Any], show_all: bool) -> None:
    b = section["baseline"]["macro_f1"]
    combos = section["combos"]
    shown = combos
    if not show_all and len(combos) > 2 * SHOWN_BY_DEFAULT:
        shown = combos[:SHOWN_BY_DEFAULT] + combos[-SHOWN_BY_DEFAULT:]
    colour = {"helps": "green", "hurts": "red"}
    rows = []
    for c in shown:
        g = c["gain"]
        tint = colour.get(c["verdict"])
        verdict = f"[{tint}]{c['verdict']}[/{tint}]" if tint else c["verdict"]
        rows.append([str(combos.index(c) + 1), c["name"], str(c["k"]), f"{c['variants_used']:,.0f}",
                     f"{c['macro_f1']['mean']:.4f} ± {c['macro_f1']['std']:.4f}", f"{g['mean']:+.4f}",
                     f"[{g['ci_low']:+.4f}, {g['ci_high']:+.4f}]", f"{g['p_holm']:.3g}", verdict])  # fmt: skip
    title = (f"Gain in macro-F1 over the baseline ({b['mean']:.4f} ± {b['std']:.4f}): {section['features']}, "
             f"train size {section['train_size']:g}, {section['splits']} splits")  # fmt: skip
    if len(shown) < len(combos):
        title += f"; the {SHOWN_BY_DEFAULT} best and worst of {len(combos)} (--all for every one)"
    columns = ("#", "combo", "k", "variants", "macro-F1", "gain", "95% CI", "p (Holm)", "verdict")
    sections = [SHOWN_BY_DEFAULT - 1] if len(shown) < len(combos) else []
    print_rows(console, columns, rows, title=title, right=("#", "k", "variants", "gain", "p (Holm)"),
               sections=sections)  # fmt: skip
    helps = sum(c["verdict"] == "helps" for c in combos)
    hurts = sum(c["verdict"] == "hurts" for c in combos)
    console.print(
        f"{helps} combo(s) help and {hurts} hurt after Holm's adjustment over {len(combos)}; the others show no "
        "evidence either way (an interval that includes 0 is never called a gain)",
        markup=False,
    )


def _method_table(section: dict[str, Any]) -> None:
    if not section["methods"]:
        return
    rows = []
    for m in section["methods"]:
        g = m["marginal"]
        rows.append([m["method"], str(m["combos_with"]), f"{m['mean_gain_with']:+.4f}",
                     f"{m['mean_gain_without']:+.4f}", f"{g['mean']:+.4f}",
                     f"[{g['ci_low']:+.4f}, {g['ci_high']:+.4f}]"])  # fmt: skip
    columns = ("method", "combos", "gain with", "gain without", "marginal", "95% CI")
    print_rows(console, columns, rows, title=f"Marginal effect of each method ({section['features']})",
               right=columns[1:5])  # fmt: skip
