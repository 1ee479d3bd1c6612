"""The dry run: what `augshard run` would do (each combo's shard, cost and action), as a table, TSV or JSON, all
from one typed value, the plan the API returns (`RunPlan`, whose `to_json()` is the dry run's document)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from rich.console import Console
from rich.markup import escape

from augshard.core.combos import Combo
from augshard.core.config import RunConfig
from augshard.core.planning import PlannedCombo
from augshard.events.notebook import Tabular
from augshard.events.output import plural, print_rows, write_json
from augshard.runner.estimate import Estimate, duration, estimate_plan, process_age
from augshard.runner.preflight import Preflight, devices_line, preflight
from augshard.runner.supervisor import shard_imports
from augshard.storage.balance import Allocation

PLAN_COLUMNS = ("shard", "combo", "k", "est. time", "action")  # without an estimate: "est. cost" (relative)


def plan_rows(plan: RunPlan) -> tuple[list[list[str]], list[int]]:
    """The plan of a dry run, a row per combo (markup cells), each shard closed by its total; and the row indexes
    after which a table draws a rule."""
    rows: list[list[str]] = []
    sections = []
    shown = range(plan.num_shards) if plan.config.shard_index is None else [plan.config.shard_index]
    for i in shown:
        shard = [c for c in plan.combos if c.shard == i]
        rows += [c.cells(plan.estimate is not None or None) for c in shard]
        total = f"[bold]shard total: {len(shard)} {plural(len(shard), 'combo')}[/bold]"
        cost = duration(plan.shard_seconds[i]) if plan.estimate else f"{plan.shard_costs[i]:g}"
        rows.append([str(i), total, "", cost, ""])
        sections.append(len(rows) - 1)
    rows += [c.cells() for c in plan.combos if c.action is Action.UNAVAILABLE]
    return rows, sections


def dry_run(cfg: RunConfig, console: Console, fmt: str = "table", estimate: bool = True) -> int:
    """Validate everything and print the plan (with `estimate`, the time it will take); write nothing."""

    prep = preflight(cfg, console, dry_run=True)
    plan = run_plan(prep, estimate=estimate, launch_s=process_age())  # the CLI's run starts as this one did
    if fmt == "json":
        write_json(plan.to_json())
        return 0
    if fmt == "tsv":  # one row per combo on stdout; the shard totals are sums of its cost column
        print_rows(console, DRY_RUN_TSV, [c.tsv_row() for c in plan.combos], "tsv")
    else:
        rows, sections = plan_rows(plan)
        title = f"augshard plan {plan.plan_fingerprint} ({plan.num_shards} {plural(plan.num_shards, 'shard')})"
        columns = PLAN_COLUMNS if plan.estimate else (*PLAN_COLUMNS[:3], "est. cost", PLAN_COLUMNS[4])
        print_rows(console, columns, rows, fmt, title, right=columns[:4:2] + columns[3:4], sections=sections)
    lines = _dry_run_lines(prep)
    if plan.estimate:
        lines.insert(-1, plan.estimate.line())
    for line in lines:  # with tsv, `console` is stderr: the summary never mixes with the rows
        console.print(line)
    return 0


# `run --dry-run --format tsv`: the fields of the JSON document's combos (docs/cli.md).
DRY_RUN_TSV = ("shard", "combo_dir", "combo_id", "methods", "k", "cost", "action", "reason", "seconds")


def _dry_run_lines(prep: Preflight) -> list[str]:
    cfg, plan = prep.cfg, prep.plan
    skipped = ", ".join(f"{n} {r}" for r, n in prep.rows_skipped.items()) or "none"
    usable = f"{prep.rows_usable:,} usable rows"
    if cfg.split_col:  # the user's split: only its augmented rows are usable
        usable = f"{prep.rows_usable:,} rows to augment (where {cfg.split_col} is {' or '.join(cfg.augment_split)})"
    lines = [
        f"methods ({len(plan.methods)}): {', '.join(plan.methods)}",
        f"input {cfg.input}: {usable}; skipped: {skipped}",
        f"{len(plan.combos)} {plural(len(plan.combos), 'combo')} planned on {plan.num_shards} "
        f"{plural(plan.num_shards, 'shard')} ({prep.shards_reason}): {prep.todo} to run, {len(prep.complete)} already "
        f"complete, {len(plan.unavailable)} unavailable; quality filter {cfg.quality_metric} "
        f"[{cfg.quality_min_sim}, {cfg.quality_max_sim}]; output root {cfg.output_root}",
    ]
    if prep.asks and not prep.asks.uniform:
        lines.insert(2, f"{prep.asks.line()} (variants asked per combo: {prep.asks.asked_total:,})")
    if prep.unavailable_methods:
        lines.insert(1, f"unavailable methods: {', '.join(prep.unavailable_methods)}")
    lines.insert(1, devices_line(cfg, prep.specs))
    if cfg.executor != "local":
        roots = ", ".join(getattr(cfg, k) for k in ("output_root", "log_dir", "cache_dir"))
        lines.append(f"executor {cfg.executor}: every worker must see the same storage at {roots}")
    return [*lines, "dry run: nothing was written"]


# --- the plan: what the API returns and the dry run's JSON document ------------------------------------------


class Action(str, Enum):
    """What a run would do with a combo."""

    RUN = "run"
    SKIP = "skip"  # already complete for this config
    UNAVAILABLE = "unavailable"  # uses a method that cannot be built here

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ComboPlan:
    """One combo of a plan: its shard, its estimated cost and what a run would do with it (a row of the document's
    `combos`)."""

    combo_id: str
    combo_dir: str
    methods: tuple[str, ...]
    k: int
    shard: int | None  # None: unavailable, on no shard
    cost: float | None
    action: Action
    reason: str = ""  # why it is unavailable
    seconds: float | None = None  # its estimated calls and filter, when the plan has an estimate and it is to run

    @classmethod
    def planned(cls, pc: PlannedCombo, shard: int, complete: bool) -> ComboPlan:
        action = Action.SKIP if complete else Action.RUN
        return cls(pc.combo.combo_id, pc.combo.dir_name, pc.combo.methods, pc.combo.k, shard, pc.cost, action)

    @classmethod
    def unavailable(cls, combo: Combo, reason: str) -> ComboPlan:
        return cls(combo.combo_id, combo.dir_name, combo.methods, combo.k, None, None, Action.UNAVAILABLE, reason)

    def to_json(self) -> dict[str, Any]:
        """The document's row: `reason` only for an unavailable combo, `methods` joined by '+'."""
        doc: dict[str, Any] = {"shard": self.shard, "combo_dir": self.combo_dir, "combo_id": self.combo_id}
        doc |= {"methods": "+".join(self.methods), "k": self.k, "cost": self.cost, "action": self.action.value}
        if self.action is Action.UNAVAILABLE:
            doc["reason"] = self.reason
        doc["seconds"] = self.seconds
        return doc

    def tsv_row(self) -> list[Any]:
        row = self.to_json()
        return [row.get(col) for col in DRY_RUN_TSV]

    def cells(self, estimated: bool | None = None) -> list[str]:
        """The row as the dry run's table shows it (markup cells): its time when the plan is `estimated`, else its
        relative cost."""
        if self.action is Action.UNAVAILABLE:
            return ["-", self.combo_dir, str(self.k), "-", f"unavailable ({escape(self.reason[:60])})"]
        action = "skip (complete)" if self.action is Action.SKIP else "run"
        cost = f"{self.cost:g}" if estimated is None else (duration(self.seconds) if self.seconds is not None else "-")
        return [str(self.shard), self.combo_dir, str(self.k), cost, action]


@dataclass(frozen=True)
class RunPlan(Tabular):
    """What a dry run shows: the combos on their shards, costs, and what cannot run here; `to_json()` is
    `run --dry-run --format json` (schema in docs/cli.md; `plan` there is the plan fingerprint); `to_pandas()` its
    combos, one row each, as the TSV has them."""

    plan_fingerprint: str
    num_shards: int
    shards_reason: str  # why the run has as many shards as it has
    methods: tuple[str, ...]
    unavailable_methods: dict[str, str]  # method -> why it cannot run here
    rows_usable: int
    rows_skipped: dict[str, int]  # reason -> rows
    combos: tuple[ComboPlan, ...]  # with --shard-index, that shard's (and the unavailable ones)
    config: RunConfig  # as prepared: `auto` shards, device and backend decided
    notes: tuple[str, ...] = ()  # the notes and warnings the CLI prints on stderr
    to_run_count: int = 0  # combos of the whole plan a run would compute (every shard's)
    complete_count: int = 0  # combos of the whole plan already complete
    balance: Allocation | None = (
        None  # the variants each row asks for; not uniform with --balance, --variants-per-class
    )
    estimate: Estimate | None = None  # how long the run will take here (the dry run and plan(); None: not asked)

    @property
    def fingerprint(self) -> str:
        """The plan fingerprint's old name, kept for one release."""
        warnings.warn("RunPlan.fingerprint is now RunPlan.plan_fingerprint; the old name goes in the next release",
                      FutureWarning, 2)  # fmt: skip
        return self.plan_fingerprint

    @property
    def to_run(self) -> tuple[ComboPlan, ...]:
        return tuple(c for c in self.combos if c.action is Action.RUN)

    @property
    def shard_costs(self) -> tuple[float, ...]:
        """The estimated cost of each shard's combos (its share of the work)."""
        return self._per_shard("cost")

    @property
    def shard_seconds(self) -> tuple[float, ...]:
        """The estimated seconds of each shard's combos to run (its calls and filter; without stealing)."""
        return self._per_shard("seconds")

    def _per_shard(self, name: str) -> tuple[float, ...]:
        totals = [0.0] * self.num_shards
        for c in self.combos:
            if c.shard is not None and getattr(c, name) is not None:
                totals[c.shard] += getattr(c, name)
        return tuple(totals)

    def to_json(self) -> dict[str, Any]:
        """`run --dry-run --format json`: the plan and what a run would do."""
        cfg = self.config
        return {
            "plan": self.plan_fingerprint,
            "num_shards": self.num_shards,
            "shards_reason": self.shards_reason,
            "shard_index": cfg.shard_index,
            "methods": list(self.methods),
            "unavailable_methods": dict(self.unavailable_methods),
            "input": {"path": str(cfg.input), "rows_usable": self.rows_usable, "rows_skipped": dict(self.rows_skipped)},
            "quality": {"metric": cfg.quality_metric, "min_sim": cfg.quality_min_sim, "max_sim": cfg.quality_max_sim},
            "device": cfg.device,
            "embedding_backend": cfg.embedding_backend if cfg.quality_metric == "embedding" else None,
            "output_root": cfg.output_root,
            "to_run": self.to_run_count,
            "complete": self.complete_count,
            "combos": [c.to_json() for c in self.combos],
            "variants_asked": self.balance.asked_total if self.balance else None,
            "balance": self.balance.to_json() if self.balance else None,
            "estimate": self.estimate.to_json() if self.estimate else None,
        }

    def table_rows(self) -> list[dict[str, Any]]:
        return [dict(zip(DRY_RUN_TSV, c.tsv_row(), strict=True)) for c in self.combos]

    def table_caption(self) -> str:
        return (
            f"augshard plan {self.plan_fingerprint}: {len(self.combos)} combos on {self.num_shards} "
            f"{plural(self.num_shards, 'shard')}, {self.to_run_count} to run, {self.complete_count} complete"
        )


def run_plan(
    prep: Preflight, notes: tuple[str, ...] = (), estimate: bool = False, launch_s: float | None = None
) -> RunPlan:
    """The plan of a prepared run, as the API returns it and the dry run prints it; with `estimate`, the time it
    will take here, measured on a probe of its rows (runner/estimate.py), from a launch of `launch_s` (by default
    the preflight's checks: a run from Python)."""
    cfg, plan = prep.cfg, prep.plan
    timed = plan_estimate(prep, prep.checks_s if launch_s is None else launch_s) if estimate else None
    combos = [
        ComboPlan.planned(pc, i, pc.combo.combo_id in prep.complete)
        for i, shard in enumerate(plan.shards)
        if cfg.shard_index is None or i == cfg.shard_index
        for pc in shard
    ]
    if timed is not None:
        combos = [replace(c, seconds=timed.of(c.combo_id)) for c in combos]
    combos += [ComboPlan.unavailable(c, reason) for c, reason in plan.unavailable]
    return RunPlan(
        plan_fingerprint=plan.plan_fingerprint,
        num_shards=plan.num_shards,
        shards_reason=prep.shards_reason,
        methods=tuple(plan.methods),
        unavailable_methods={m: st.reason for m, st in prep.unavailable_methods.items()},
        rows_usable=prep.rows_usable,
        rows_skipped=dict(prep.rows_skipped),
        combos=tuple(combos),
        config=cfg,
        notes=notes,
        to_run_count=prep.todo,
        complete_count=len(prep.complete),
        balance=prep.asks,
        estimate=timed,
    )


def plan_estimate(prep: Preflight, launch_s: float) -> Estimate:
    """The estimate of a prepared run: its shards' combos still to run, timed on the preflight's probe rows, after a
    launch of `launch_s`."""
    cfg, shards = prep.cfg, prep.plan.shards
    todo = [
        [pc.combo for pc in shard if pc.combo.combo_id not in prep.complete]
        for i, shard in enumerate(shards)
        if cfg.shard_index is None or i == cfg.shard_index
    ]
    assert prep.probe is not None, "a preflight always has its probe rows"
    return estimate_plan(cfg, prep.specs, todo, prep.probe, prep.variants_asked, shard_imports(prep), launch_s)
