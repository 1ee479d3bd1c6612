"""What a finished run says: each shard's outcome, failures with where to look, low yields explained, the label
check, unavailable methods, the merged manifest's summary (the merge is `storage/merge.py`'s, called by the
supervisor): as a document (`--format json`) or printed."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from augshard.events.monitor import GLYPH, STYLE
from augshard.events.narrow import NARROW_BELOW, compact, compact_duration, fitted
from augshard.events.output import fmt_duration, interactive, notice, plural, print_rows, write_json
from augshard.events.status import fold
from augshard.events.stream import events_path, read_events
from augshard.runner.job import RunOutcome, ShardJob, ShardResult
from augshard.runner.preflight import Preflight
from augshard.shard.labels import LabelCheck
from augshard.storage.merge import ManifestSummary
from augshard.storage.meta import read_meta
from augshard.storage.outcome import ShardState, Status
from augshard.storage.store import META

LOW_YIELD_SHOWN = 20


@dataclass(frozen=True)
class Failure:
    combo_dir: str
    combo_id: str
    error: str
    log: str  # where its traceback starts (path:line), else the shard's log


@dataclass(frozen=True)
class Crash:
    shard: int
    error: str
    log: str


@dataclass(frozen=True)
class LowYield:
    combo_dir: str
    rows: int
    asked: int
    why: str


@dataclass(frozen=True)
class LabelSummary(LabelCheck):
    """The run's label check: the classifier's check and the range of the combos' label-flip shares."""

    warning: str = ""
    flip_share_min: float = 0.0
    flip_share_max: float = 0.0


@dataclass(frozen=True)
class ClassBalance:
    """One class of a balanced run (--balance, --variants-per-class) over its complete combos: its originals, the
    variants a row asks for, and the variants asked and kept per combo (kept: the mean, least and most)."""

    label: str
    originals: int
    per_row: str
    asked: int
    kept_mean: float
    kept_min: int
    kept_max: int
    combos: int

    def cells(self) -> list[str]:
        share = f"{self.kept_mean / self.asked:.0%}" if self.asked else "-"
        reaches = f"{self.originals + self.kept_mean:,.0f}"
        kept = f"{self.kept_mean:,.1f} ({self.kept_min:,}-{self.kept_max:,})"
        return [
            self.label or "(no label)",
            f"{self.originals:,}",
            self.per_row,
            f"{self.asked:,}",
            kept,
            share,
            reaches,
        ]


@dataclass(frozen=True)
class Unavailable:
    method: str
    reason: str
    fix: str
    combos: int  # combos of the plan not run for it


@dataclass(frozen=True)
class ShardRow:
    """One shard at a run's end: its outcome, combos it ran, ok, resumed, failed, rows, time and log (the document's
    `shards` rows; the JSON keys and TSV columns are these fields)."""

    shard: int
    outcome: str  # a ShardState value
    combos: int
    ok: int
    resumed: int
    failed: int
    rows: int
    duration_s: float
    log: str

    @classmethod
    def of(cls, result: ShardResult, crashed: dict[int, str]) -> ShardRow:
        ok = [o for o in result.outcomes if o.ok]
        if result.index in crashed:
            state = ShardState.CRASHED
        elif result.failed:
            state = ShardState.FAILED
        else:
            state = ShardState.DONE
        ran = sum(1 for o in result.outcomes if o.status is not Status.UNAVAILABLE)  # with stealing: what it ran
        return cls(
            result.index, state.value, ran, len(ok), sum(1 for o in ok if o.resumed), len(result.failed),
            sum(o.rows for o in ok), result.duration_s, result.log_path,
        )  # fmt: skip

    def cells(self) -> list[str]:
        """The row as a table shows it (markup cells)."""
        state = ShardState(self.outcome)
        style, glyph = STYLE[state], GLYPH[state]
        counts = [str(n) for n in (self.combos, self.ok, self.resumed, self.failed)]
        return [str(self.shard), f"[{style}]{glyph} {state.value}[/{style}]", *counts, f"{self.rows:,}",
                fmt_duration(self.duration_s), self.log]  # fmt: skip

    def narrow_cells(self) -> list[Any]:
        """The row on a narrow terminal: the rows and time compact and whole, the log's file name (its folder is the
        run's log folder) as long as it fits."""
        *cells, _rows, _time, _log = self.cells()
        return [*cells, compact(self.rows), compact_duration(self.duration_s), (Path(self.log).name, ())]


SUMMARY_KEYS = tuple(f.name for f in dataclasses.fields(ShardRow))


@dataclass(frozen=True)
class RunDocument:
    """What a finished run says (the run's `--format json` document; schema in docs/cli.md): field order is the
    document's key order (`plan_fingerprint` is its `plan`); `summary` and `manifest` after a merge, `rows` for one
    shard of a job array instead."""

    plan_fingerprint: str
    num_shards: int
    shards_reason: str
    shards: list[ShardRow]
    failed: list[Failure]
    crashed: list[Crash]
    low_yield: list[LowYield]
    label_check: LabelSummary | None
    unavailable_methods: list[Unavailable]
    exit_code: int
    summary: ManifestSummary | None = None
    balance: list[ClassBalance] | None = None  # with --balance or --variants-per-class: each class's yield
    manifest: str | None = None
    rows: int | None = None
    wall_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        doc = {"plan" if k == "plan_fingerprint" else k: v for k, v in dataclasses.asdict(self).items()}
        if self.summary is not None:
            doc["summary"] = self.summary.as_json()
        return {k: v for k, v in doc.items() if v is not None or k == "label_check"}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> RunDocument:
        label = doc.get("label_check")
        return cls(
            plan_fingerprint=doc["plan"],
            num_shards=doc["num_shards"],
            shards_reason=doc["shards_reason"],
            shards=[ShardRow(**row) for row in doc["shards"]],
            failed=[Failure(**f) for f in doc["failed"]],
            crashed=[Crash(**c) for c in doc["crashed"]],
            low_yield=[LowYield(**w) for w in doc["low_yield"]],
            label_check=LabelSummary(**label) if label is not None else None,
            unavailable_methods=[Unavailable(**u) for u in doc["unavailable_methods"]],
            exit_code=doc["exit_code"],
            summary=ManifestSummary(**doc["summary"]) if "summary" in doc else None,
            manifest=doc.get("manifest"),
            rows=doc.get("rows"),
            wall_s=doc.get("wall_s"),
            balance=[ClassBalance(**c) for c in doc["balance"]] if doc.get("balance") is not None else None,
        )


def _low_yield(prep: Preflight, results: dict[int, ShardResult]) -> list[LowYield]:
    """Combos of this run that kept fewer than half the variants they asked for, each with why in numbers."""
    asked = prep.variants_asked
    low = sorted((o for r in results.values() for o in r.outcomes if o.ok and o.rows * 2 < asked), key=lambda o: o.rows)
    out = []
    for o in low:
        try:
            meta = read_meta(Path(prep.cfg.output_root) / o.combo_dir / META)
        except (OSError, ValueError):
            continue
        if meta.variants.explanation:
            out.append(LowYield(o.combo_dir, o.rows, asked, meta.variants.explanation))
    return out


def _balance(prep: Preflight, results: dict[int, ShardResult]) -> list[ClassBalance] | None:
    """Each class's variants kept per combo over the run's complete combos (their meta.json), rarest first."""
    if prep.asks is None or prep.asks.uniform:
        return None
    kept: dict[str, list[int]] = {c.label: [] for c in prep.asks.classes}
    for o in (o for r in results.values() for o in r.outcomes if o.ok):
        try:
            balance = read_meta(Path(prep.cfg.output_root) / o.combo_dir / META).balance
        except (OSError, ValueError):
            continue
        for c in balance.classes if balance else ():
            kept.setdefault(c.label, []).append(c.kept)
    return [
        ClassBalance(
            c.label,
            c.originals,
            c.per_row,
            c.asked,
            round(sum(k) / len(k), 2) if (k := kept[c.label]) else 0,
            min(k, default=0),
            max(k, default=0),
            len(k),
        )  # fmt: skip
        for c in prep.asks.classes
    ]


def _label_check(prep: Preflight, results: dict[int, ShardResult]) -> LabelSummary | None:
    """The label check of the run (--label-col): the classifier's cross-validated accuracy, and the range of the
    combos' label-flip shares."""
    if not prep.cfg.label_col:
        return None
    ok = [o for r in results.values() for o in r.outcomes if o.ok and o.label_flip_share is not None]
    for o in ok:
        try:
            label = read_meta(Path(prep.cfg.output_root) / o.combo_dir / META).label_check
        except (OSError, ValueError):
            continue
        if label is not None:
            shares = [o.label_flip_share for o in ok]
            check = {f.name: getattr(label, f.name) for f in dataclasses.fields(LabelCheck)}
            return LabelSummary(**check, warning=label.warning, flip_share_min=min(shares),
                                flip_share_max=max(shares))  # fmt: skip
    return None


def run_document(
    prep: Preflight, jobs: list[ShardJob], outcome: RunOutcome, merged: ManifestSummary | None
) -> RunDocument:
    """What a finished run says: its shards, failures with where to look, low yields, unavailable methods, and
    the merged manifest's summary (`merged`: None for one shard of a job array, which merges nothing)."""

    cfg, results = prep.cfg, outcome.results
    statuses = {j.index: fold(j.index, read_events(events_path(cfg.log_dir, j.index, j.num_shards))) for j in jobs}
    failed = []
    for r in results.values():
        for o in r.failed:
            # The combo_failed event names the log line where its traceback starts.
            where = next((f["log"] for f in statuses[r.index].failures if f["combo_id"] == o.combo_id), "")
            failed.append(Failure(o.combo_dir, o.combo_id, o.error, where or r.log_path))
    ending: dict[str, Any] = {}
    if merged is not None:
        ending["summary"] = merged
        ending["manifest"] = str(Path(cfg.output_root) / cfg.output_name)
    else:
        ending["rows"] = sum(o.rows for r in results.values() for o in r.outcomes if o.ok)
    return RunDocument(
        plan_fingerprint=prep.plan.plan_fingerprint,
        num_shards=prep.plan.num_shards,
        shards_reason=prep.shards_reason,
        shards=[ShardRow.of(results[j.index], outcome.crashed) for j in jobs],
        failed=failed,
        crashed=[Crash(i, e, results[i].log_path) for i, e in sorted(outcome.crashed.items())],
        low_yield=_low_yield(prep, results),
        label_check=_label_check(prep, results),
        unavailable_methods=[
            Unavailable(m, st.reason, st.fix, sum(m in c.methods for c, _ in prep.plan.unavailable))
            for m, st in prep.unavailable_methods.items()
        ],
        exit_code=1 if failed else 0,
        balance=_balance(prep, results),
        **ending,
    )


def summarize_run(
    prep: Preflight,
    jobs: list[ShardJob],
    outcome: RunOutcome,
    merged: ManifestSummary | None,
    console: Console,
    t0: float,
    fmt: str,
) -> RunDocument:
    """The end of a run: each shard's outcome, every failure with where to look, the merge's summary, the wall
    time; printed, and returned for the API."""
    doc = dataclasses.replace(run_document(prep, jobs, outcome, merged), wall_s=round(time.time() - t0, 1))
    if fmt == "json":
        write_json(doc.to_json())
    else:
        _print_summary(prep, jobs, outcome, doc, console, fmt)
    return doc


def _print_summary(
    prep: Preflight, jobs: list[ShardJob], outcome: RunOutcome, doc: RunDocument, console: Console, fmt: str
) -> None:

    if fmt == "tsv":  # the shard rows as values on stdout; the rest below goes to `console`, stderr here
        print_rows(console, SUMMARY_KEYS, [list(dataclasses.astuple(row)) for row in doc.shards], "tsv")
    elif fmt == "table" and interactive(console) and console.width < NARROW_BELOW:  # each column whole, the log cut
        rows = [row.narrow_cells() for row in doc.shards]
        console.print(fitted(SUMMARY_COLUMNS, rows, console.width, len(SUMMARY_COLUMNS) - 1, SUMMARY_COLUMNS[2:8],
                             "shards"))  # fmt: skip
    else:
        rows = [row.cells() for row in doc.shards]
        print_rows(console, SUMMARY_COLUMNS, rows, fmt, "shards", right=SUMMARY_COLUMNS[2:8])
    for f in doc.failed:
        console.print(f"[red]failed[/red] {f.combo_dir}: {escape(f.error)} (see {f.log})")
    for c in doc.crashed:
        console.print(f"[red]crashed[/red] shard {c.shard}: {escape(c.error)} (its worker died; see {c.log})")
    for low in doc.low_yield[:LOW_YIELD_SHOWN]:
        console.print(f"[yellow]low yield[/yellow] {low.combo_dir}: {escape(low.why)}")
    if len(doc.low_yield) > LOW_YIELD_SHOWN:
        more = len(doc.low_yield) - LOW_YIELD_SHOWN
        console.print(f"[yellow]low yield[/yellow] {more} more {plural(more, 'combo')}; see `augshard report`")
    if doc.balance:
        asks, n = prep.asks, max((c.combos for c in doc.balance), default=0)
        head = (
            f"balance: target {asks.target:,} per class" if asks and asks.target is not None else "variants per class"
        )
        title = f"{head}; variants per combo, kept: mean (least-most) over {n} {plural(n, 'combo')}"
        print_rows(console, BALANCE_COLUMNS, [c.cells() for c in doc.balance], fmt, title, right=BALANCE_COLUMNS[1:])
    label = doc.label_check
    if label:
        console.print(
            f"label check on '{label.label_col}': cross-validated accuracy {label.cv_accuracy} over "
            f"{label.originals:,} originals (always the most frequent label: {label.majority_rate}); "
            f"label flips per combo {label.flip_share_min:.0%} to {label.flip_share_max:.0%} (augshard report)",
            markup=False,
        )
        if label.warning:
            notice(escape(label.warning), "warning")
    for u in doc.unavailable_methods:
        console.print(
            f"[yellow]unavailable[/yellow] method {u.method}: {escape(u.reason)} ({u.combos} "
            f"{plural(u.combos, 'combo')} not run; fix: {escape(u.fix)})"
        )
    if doc.summary is not None:
        for line in doc.summary.lines():
            console.print(line)
        console.print(f"manifest: {doc.manifest}")
    else:
        console.print(f"Total rows: {doc.rows or 0:,}")
        console.print(
            f"shard {prep.cfg.shard_index} of {prep.plan.num_shards} done; merge all shards with "
            f"`augshard merge --output-root {prep.cfg.output_root}`"
        )
    wall = doc.wall_s or 0.0
    console.print(f"wall time: {fmt_duration(wall)} ({wall:.1f}s)")


BALANCE_COLUMNS = ("class", "originals", "per row", "asked", "kept", "yield", "reaches")
SUMMARY_COLUMNS = ("shard", "outcome", "combos", "ok", "resumed", "failed", "rows", "time", "log")
