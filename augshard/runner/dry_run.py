"""The dry run: what `augshard run` would do (each combo's shard, cost and action), as a table, TSV or JSON, and as
the typed plan the API returns (`RunPlan`)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from rich.console import Console
from rich.markup import escape

from augshard.core.config import RunConfig
from augshard.core.planning import Plan
from augshard.events.output import plural, print_rows, write_json
from augshard.runner.preflight import Preflight, devices_line, preflight

PLAN_COLUMNS = ("shard", "combo", "k", "est. cost", "action")


def plan_rows(plan: Plan, complete: set[str], shard_index: int | None = None) -> tuple[list[list[str]], list[int]]:
    """The plan of a dry run, a row per combo (markup cells), each shard closed by its total; and the row indexes
    after which a table draws a rule."""
    rows: list[list[str]] = []
    sections = []
    for i, shard in enumerate(plan.shards):
        if shard_index is not None and i != shard_index:
            continue
        for pc in shard:
            action = "skip (complete)" if pc.combo.combo_id in complete else "run"
            rows.append([str(i), pc.combo.dir_name, str(pc.combo.k), f"{pc.cost:g}", action])
        total = f"[bold]shard total: {len(shard)} {plural(len(shard), 'combo')}[/bold]"
        rows.append([str(i), total, "", f"{plan.shard_cost(i):g}", ""])
        sections.append(len(rows) - 1)
    for combo, reason in plan.unavailable:
        rows.append(["-", combo.dir_name, str(combo.k), "-", f"unavailable ({escape(reason[:60])})"])
    return rows, sections


def dry_run(cfg: RunConfig, console: Console, fmt: str = "table") -> int:
    """Validate everything and print the plan; write nothing."""

    prep = preflight(cfg, console, dry_run=True)
    if fmt == "json":
        write_json(dry_run_document(prep))
        return 0
    cfg, plan = prep.cfg, prep.plan
    if fmt == "tsv":  # one row per combo on stdout; the shard totals are sums of its cost column
        combos = dry_run_document(prep)["combos"]
        print_rows(console, DRY_RUN_TSV, [[c.get(col) for col in DRY_RUN_TSV] for c in combos], "tsv")
    else:
        rows, sections = plan_rows(plan, prep.complete, cfg.shard_index)
        title = f"augshard plan {plan.fingerprint} ({plan.num_shards} {plural(plan.num_shards, 'shard')})"
        print_rows(console, PLAN_COLUMNS, rows, fmt, title, right=("shard", "k", "est. cost"), sections=sections)
    for line in _dry_run_lines(prep):  # with tsv, `console` is stderr: the summary never mixes with the rows
        console.print(line)
    return 0


# `run --dry-run --format tsv`: the fields of the JSON document's combos (docs/cli.md).
DRY_RUN_TSV = ("shard", "combo_dir", "combo_id", "methods", "k", "cost", "action", "reason")


def _dry_run_lines(prep: Preflight) -> list[str]:
    cfg, plan = prep.cfg, prep.plan
    skipped = ", ".join(f"{n} {r}" for r, n in prep.rows_skipped.items()) or "none"
    lines = [
        f"methods ({len(plan.methods)}): {', '.join(plan.methods)}",
        f"input {cfg.input}: {prep.rows_usable:,} usable rows; skipped: {skipped}",
        f"{len(plan.combos)} {plural(len(plan.combos), 'combo')} planned on {plan.num_shards} "
        f"{plural(plan.num_shards, 'shard')} ({prep.shards_reason}): {prep.todo} to run, {len(prep.complete)} already "
        f"complete, {len(plan.unavailable)} unavailable; quality filter {cfg.quality_metric} "
        f"[{cfg.quality_min_sim}, {cfg.quality_max_sim}]; output root {cfg.output_root}",
    ]
    if prep.unavailable_methods:
        lines.insert(1, f"unavailable methods: {', '.join(prep.unavailable_methods)}")
    lines.insert(1, devices_line(cfg, prep.specs))
    if cfg.executor != "local":
        roots = ", ".join(getattr(cfg, k) for k in ("output_root", "log_dir", "cache_dir"))
        lines.append(f"executor {cfg.executor}: every worker must see the same storage at {roots}")
    return [*lines, "dry run: nothing was written"]


def dry_run_document(prep: Preflight) -> dict:
    """`run --dry-run --format json`: the plan and what a run would do (schema in docs/cli.md)."""
    cfg, plan = prep.cfg, prep.plan
    shard_of = {pc.combo.combo_id: i for i, shard in enumerate(plan.shards) for pc in shard}
    combos = [
        {
            "shard": shard_of[pc.combo.combo_id],
            "combo_dir": pc.combo.dir_name,
            "combo_id": pc.combo.combo_id,
            "methods": pc.combo.name,
            "k": pc.combo.k,
            "cost": pc.cost,
            "action": "skip" if pc.combo.combo_id in prep.complete else "run",
        }
        for pc in plan.combos
        if cfg.shard_index is None or shard_of[pc.combo.combo_id] == cfg.shard_index
    ]
    combos += [
        {"shard": None, "combo_dir": c.dir_name, "combo_id": c.combo_id, "methods": c.name, "k": c.k, "cost": None,
         "action": "unavailable", "reason": reason}
        for c, reason in plan.unavailable
    ]  # fmt: skip
    return {
        "plan": plan.fingerprint,
        "num_shards": plan.num_shards,
        "shards_reason": prep.shards_reason,
        "shard_index": cfg.shard_index,
        "methods": list(plan.methods),
        "unavailable_methods": {m: st.reason for m, st in prep.unavailable_methods.items()},
        "input": {"path": str(cfg.input), "rows_usable": prep.rows_usable, "rows_skipped": prep.rows_skipped},
        "quality": {"metric": cfg.quality_metric, "min_sim": cfg.quality_min_sim, "max_sim": cfg.quality_max_sim},
        "device": cfg.device,
        "embedding_backend": cfg.embedding_backend if cfg.quality_metric == "embedding" else None,
        "output_root": cfg.output_root,
        "to_run": prep.todo,
        "complete": len(prep.complete),
        "combos": combos,
    }


# --- the plan as the API returns it ---------------------------------------------------------------------------


class Action(str, Enum):
    """What a run would do with a combo."""

    RUN = "run"
    SKIP = "skip"  # already complete for this config
    UNAVAILABLE = "unavailable"  # uses a method that cannot be built here

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ComboPlan:
    """One combo of a plan: its shard, its estimated cost and what a run would do with it."""

    combo_id: str
    combo_dir: str
    methods: tuple[str, ...]
    k: int
    shard: int | None  # None: unavailable, on no shard
    cost: float | None
    action: Action
    reason: str = ""  # why it is unavailable


@dataclass(frozen=True)
class RunPlan:
    """What a dry run shows: the combos on their shards, costs, and what cannot run here."""

    fingerprint: str
    num_shards: int
    shards_reason: str  # why the run has as many shards as it has
    methods: tuple[str, ...]
    unavailable_methods: dict[str, str]  # method -> why it cannot run here
    rows_usable: int
    rows_skipped: dict[str, int]  # reason -> rows
    combos: tuple[ComboPlan, ...]
    config: RunConfig  # as prepared: `auto` shards, device and backend decided
    notes: tuple[str, ...] = ()  # the notes and warnings the CLI prints on stderr

    @property
    def to_run(self) -> tuple[ComboPlan, ...]:
        return tuple(c for c in self.combos if c.action is Action.RUN)

    @property
    def shard_costs(self) -> tuple[float, ...]:
        """The estimated cost of each shard's combos (its share of the work)."""
        costs = [0.0] * self.num_shards
        for c in self.combos:
            if c.shard is not None and c.cost is not None:
                costs[c.shard] += c.cost
        return tuple(costs)


def run_plan(prep: Preflight, notes: tuple[str, ...] = ()) -> RunPlan:
    """The plan as the API returns it (`augshard.plan`), typed from the dry run's JSON document."""
    doc = dry_run_document(prep)  # the dry run's JSON document: one description of a plan, typed here
    combos = tuple(
        ComboPlan(
            **{key: c[key] for key in ("combo_id", "combo_dir", "k", "shard", "cost")},
            methods=tuple(c["methods"].split("+")),
            action=Action(c["action"]),
            reason=c.get("reason") or "",
        )
        for c in doc["combos"]
    )
    return RunPlan(
        fingerprint=doc["plan"],
        num_shards=doc["num_shards"],
        shards_reason=doc["shards_reason"],
        methods=tuple(doc["methods"]),
        unavailable_methods=dict(doc["unavailable_methods"]),
        rows_usable=prep.rows_usable,
        rows_skipped=dict(prep.rows_skipped),
        combos=combos,
        config=prep.cfg,
        notes=notes,
    )
