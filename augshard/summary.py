"""What a finished run says: each shard's outcome, failures with where to look, low yields explained, the label
check, unavailable methods, the merged manifest's summary: as a document (`--format json`) or printed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from augshard.manifest import Summary
from augshard.output import notice, plural

if TYPE_CHECKING:
    from augshard.prepare import Prepared
    from augshard.shard import ShardJob, ShardResult
    from augshard.supervisor import RunOutcome


LOW_YIELD_SHOWN = 20


def _low_yield(prep: Prepared, results: dict[int, ShardResult]) -> list[dict[str, Any]]:
    """Combos of this run that kept fewer than half the variants they asked for, each with why in numbers."""
    from augshard.store import META, read_meta

    asked = prep.rows_usable * prep.cfg.variants_per_sample
    low = sorted((o for r in results.values() for o in r.outcomes if o.ok and o.rows * 2 < asked), key=lambda o: o.rows)
    out = []
    for o in low:
        try:
            meta = read_meta(Path(prep.cfg.output_root) / o.combo_dir / META)
        except (OSError, ValueError):
            continue
        if meta.variants.explanation:
            out.append({"combo_dir": o.combo_dir, "rows": o.rows, "asked": asked, "why": meta.variants.explanation})
    return out


def _label_check(prep: Prepared, results: dict[int, ShardResult]) -> dict[str, Any] | None:
    """The label check of the run (--label-col): the classifier's cross-validated accuracy, and the range of the
    combos' label-flip shares."""
    from augshard.labels import LabelCheck
    from augshard.store import META, read_meta

    if not prep.cfg.label_col:
        return None
    ok = [o for r in results.values() for o in r.outcomes if o.ok and o.label_flip_share is not None]
    for o in ok:
        try:
            label = read_meta(Path(prep.cfg.output_root) / o.combo_dir / META).label_check
        except (OSError, ValueError):
            continue
        if label is not None:
            check = LabelCheck(label.label_col, label.classes, label.originals, label.cv_accuracy,
                               label.majority_rate, label.weak)  # fmt: skip
            shares = [o.label_flip_share for o in ok]
            return {"label_col": label.label_col, "classes": label.classes, "originals": label.originals,
                    "cv_accuracy": label.cv_accuracy, "majority_rate": label.majority_rate, "weak": label.weak,
                    "warning": check.warning, "flip_share_min": min(shares), "flip_share_max": max(shares)}  # fmt: skip
    return None


def run_document(prep: Prepared, jobs: list[ShardJob], outcome: RunOutcome) -> dict[str, Any]:
    """What a finished run says: its shards, failures with where to look, low yields, unavailable methods, and
    the merged manifest's summary (the run's `--format json` document; schema in docs/cli.md)."""
    from augshard.events import events_path, read_events
    from augshard.manifest import merge
    from augshard.monitor import summary_rows
    from augshard.status import fold

    cfg, results = prep.cfg, outcome.results
    statuses = {j.index: fold(j.index, read_events(events_path(cfg.log_dir, j.index, j.num_shards))) for j in jobs}
    failed = []
    for r in results.values():
        for o in r.failed:
            # The combo_failed event names the log line where its traceback starts.
            where = next((f["log"] for f in statuses[r.index].failures if f["combo_id"] == o.combo_id), "")
            failed.append(
                {"combo_dir": o.combo_dir, "combo_id": o.combo_id, "error": o.error, "log": where or r.log_path}
            )
    doc: dict[str, Any] = {
        "plan": prep.plan.fingerprint,
        "num_shards": prep.plan.num_shards,
        "shards_reason": prep.shards_reason,
        "shards": [
            dict(zip(SUMMARY_KEYS, row, strict=True))
            for row in summary_rows([results[j.index] for j in jobs], outcome.crashed, plain=True)
        ],
        "failed": failed,
        "crashed": [{"shard": i, "error": e, "log": results[i].log_path} for i, e in sorted(outcome.crashed.items())],
        "low_yield": _low_yield(prep, results),
        "label_check": _label_check(prep, results),
        "unavailable_methods": [
            {
                "method": m,
                "reason": st.reason,
                "fix": st.fix,
                "combos": sum(m in c.methods for c, _ in prep.plan.unavailable),
            }
            for m, st in prep.unavailable_methods.items()
        ],
        "exit_code": 1 if failed else 0,
    }
    if cfg.shard_index is None:
        doc["summary"] = merge(cfg.output_root, cfg.output_name, keep_shards=cfg.keep_shards).as_json()
        doc["manifest"] = str(Path(cfg.output_root) / cfg.output_name)
    else:
        doc["rows"] = sum(o.rows for r in results.values() for o in r.outcomes if o.ok)
    return doc


SUMMARY_KEYS = ("shard", "outcome", "combos", "ok", "resumed", "failed", "rows", "duration_s", "log")


def summarize_run(
    prep: Prepared, jobs: list[ShardJob], outcome: RunOutcome, console: Console, t0: float, fmt: str
) -> int:
    """The end of a run: each shard's outcome, every failure with where to look, the merge, the wall time."""
    from augshard.output import write_json

    doc = run_document(prep, jobs, outcome)
    doc["wall_s"] = round(time.time() - t0, 1)
    if fmt == "json":
        write_json(doc)
    else:
        _print_summary(prep, jobs, outcome, doc, console, fmt)
    return doc["exit_code"]


def _print_summary(
    prep: Prepared, jobs: list[ShardJob], outcome: RunOutcome, doc: dict[str, Any], console: Console, fmt: str
) -> None:
    from augshard.monitor import SUMMARY_COLUMNS, fmt_duration, summary_rows
    from augshard.output import print_rows

    if fmt == "tsv":  # the shard rows as values on stdout; the rest below goes to `console`, stderr here
        print_rows(console, SUMMARY_KEYS, [[row[k] for k in SUMMARY_KEYS] for row in doc["shards"]], "tsv")
    else:
        rows = summary_rows([outcome.results[j.index] for j in jobs], outcome.crashed)
        print_rows(console, SUMMARY_COLUMNS, rows, fmt, "shards", right=SUMMARY_COLUMNS[2:8])
    for f in doc["failed"]:
        console.print(f"[red]failed[/red] {f['combo_dir']}: {escape(f['error'])} (see {f['log']})")
    for c in doc["crashed"]:
        console.print(f"[red]crashed[/red] shard {c['shard']}: {escape(c['error'])} (its worker died; see {c['log']})")
    for low in doc["low_yield"][:LOW_YIELD_SHOWN]:
        console.print(f"[yellow]low yield[/yellow] {low['combo_dir']}: {escape(low['why'])}")
    if len(doc["low_yield"]) > LOW_YIELD_SHOWN:
        more = len(doc["low_yield"]) - LOW_YIELD_SHOWN
        console.print(f"[yellow]low yield[/yellow] {more} more {plural(more, 'combo')}; see `augshard report`")
    label = doc.get("label_check")
    if label:
        console.print(
            f"label check on '{label['label_col']}': cross-validated accuracy {label['cv_accuracy']} over "
            f"{label['originals']:,} originals (always the most frequent label: {label['majority_rate']}); "
            f"label flips per combo {label['flip_share_min']:.0%} to {label['flip_share_max']:.0%} (augshard report)",
            markup=False,
        )
        if label["warning"]:
            notice(escape(label["warning"]), "warning")
    for u in doc["unavailable_methods"]:
        console.print(
            f"[yellow]unavailable[/yellow] method {u['method']}: {escape(u['reason'])} ({u['combos']} "
            f"{plural(u['combos'], 'combo')} not run; fix: {escape(u['fix'])})"
        )
    if "summary" in doc:
        for line in Summary(**doc["summary"]).lines():
            console.print(line)
        console.print(f"manifest: {doc['manifest']}")
    else:
        console.print(f"Total rows: {doc['rows']:,}")
        console.print(
            f"shard {prep.cfg.shard_index} of {prep.plan.num_shards} done; merge all shards with "
            f"`augshard merge --output-root {prep.cfg.output_root}`"
        )
    console.print(f"wall time: {fmt_duration(doc['wall_s'])} ({doc['wall_s']:.1f}s)")
