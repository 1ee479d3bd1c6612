"""Preparing a run: input, catalogue, methods, model and output folders checked, and the plan made once; the dry run."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from augshard.config import DEFAULT_METHODS_CONFIG, RunConfig, resolve_conf_path
from augshard.errors import InputError, MethodError, OutputError
from augshard.methods import MethodSpec, MethodStatus, check_methods, load_catalogue, method_check_record, select
from augshard.plan import Plan, make_plan


@dataclass
class Prepared:
    """Everything validated before any shard starts."""

    cfg: RunConfig
    plan: Plan
    specs: list[MethodSpec]
    statuses: dict[str, MethodStatus]
    input_sha: str
    rows_usable: int
    rows_skipped: dict[str, int]
    catalogue_path: Path
    complete: set[str] = field(default_factory=set)  # combo ids already complete for this config

    @property
    def todo(self) -> int:
        return sum(1 for pc in self.plan.combos if pc.combo.combo_id not in self.complete)

    @property
    def unavailable_methods(self) -> dict[str, MethodStatus]:
        return {m: st for m, st in sorted(self.statuses.items()) if not st.ok}


def shared_paths(cfg: RunConfig) -> RunConfig:
    """Dask workers run elsewhere, from other working directories: every path must name shared storage."""
    paths = {k: os.path.abspath(getattr(cfg, k)) for k in ("input", "output_root", "cache_dir", "log_dir")}
    catalogue = resolve_conf_path(cfg.methods_config, DEFAULT_METHODS_CONFIG)
    return replace(cfg, methods_config=os.path.abspath(catalogue), **paths)


def prepare(cfg: RunConfig, console: Console, dry_run: bool = False) -> Prepared:
    """Input, catalogue and methods are checked here, so user errors surface before anything is written."""
    from augshard.data import load_dataset
    from augshard.methods.offline import apply_offline_env

    if cfg.executor != "local":
        cfg = shared_paths(cfg)
    catalogue_path = resolve_conf_path(cfg.methods_config, DEFAULT_METHODS_CONFIG)
    specs = select(load_catalogue(catalogue_path), cfg.methods, str(catalogue_path))
    dataset = load_dataset(cfg.input, cfg.text_col, cfg.evidence_col, cfg.id_col)
    if not dataset.rows:
        reasons = ", ".join(f"{n} {r}" for r, n in dataset.skipped.items())
        raise InputError(f"{cfg.input}: no usable rows ({reasons})")
    check_output_root(Path(cfg.output_root))
    check_output_root(Path(cfg.cache_dir), "--cache-dir")
    check_output_root(Path(cfg.log_dir), "--log-dir")
    apply_offline_env()
    _check_embedding_model(cfg, console, dry_run)
    costs = _costs(cfg, specs, console)
    # Only methods that still have work are built and probed: a rerun of a finished job imports no library.
    plan = make_plan(cfg, specs, dataset.sha256, {}, costs)
    complete = _complete_in(cfg, plan)
    needed = {m for pc in plan.combos if pc.combo.combo_id not in complete for m in pc.combo.methods}
    statuses = _method_statuses(specs, needed, console)
    unavailable = {m: st.reason for m, st in statuses.items() if not st.ok}
    if unavailable:
        # The plan is made once more, without the combos that cannot run (listed as unavailable in it).
        plan = make_plan(cfg, specs, dataset.sha256, unavailable, costs)
        complete = _complete_in(cfg, plan)
    return Prepared(
        cfg, plan, specs, statuses, dataset.sha256, len(dataset.rows), dict(dataset.skipped), catalogue_path, complete
    )


def _check_embedding_model(cfg: RunConfig, console: Console, dry_run: bool) -> None:
    if cfg.quality_metric != "embedding":
        return
    from augshard.quality import ensure_onnx_export, resolve_embedding_model

    resolve_embedding_model(cfg.embedding_model)  # a missing model is a user error, said before any shard starts
    if cfg.embedding_backend == "onnx":
        # A dry run writes nothing, not even the export: it only checks that one can be made.
        ensure_onnx_export(cfg.embedding_model, lambda line: console.print(escape(line)), check_only=dry_run)


def _costs(cfg: RunConfig, specs: list[MethodSpec], console: Console) -> dict[str, float] | None:
    if not cfg.calibrate:
        return None
    from augshard.methods.bench import load_costs

    costs = load_costs(cfg.calibrate)
    measured = sum(s.id in costs for s in specs)
    console.print(f"costs: measured for {measured} of {len(specs)} methods ({cfg.calibrate}); others: catalogue")
    return costs


def _complete_in(cfg: RunConfig, plan: Plan) -> set[str]:
    from augshard.store import read_complete

    if cfg.force:
        return set()
    return {pc.combo.combo_id for pc in plan.combos if read_complete(cfg.output_root, pc.combo, pc.fingerprint)}


def _method_statuses(specs: list[MethodSpec], needed: set[str], console: Console) -> dict[str, MethodStatus]:
    """Every selected method's status; one that passed under the same libraries and resources before is not
    rebuilt here (its shard builds it anyway): the supervisor then imports no library at all."""
    checked = check_methods([s for s in specs if s.id in needed], method_check_record())
    statuses = {
        s.id: checked.get(s.id) or MethodStatus(s.id, s.lib, s.kind, ok=True, reason="not checked") for s in specs
    }
    bad = {m: st for m, st in statuses.items() if not st.ok}
    for m, st in bad.items():
        console.print(
            f"[yellow]warning:[/yellow] method {m} is unavailable: {escape(st.reason)} (fix: {escape(st.fix)})"
        )
    if len(bad) == len(specs):
        # One method: its reason is the whole story; several: the ids, with reasons in the warnings above.
        why = f"{specs[0].id}: {bad[specs[0].id].reason}" if len(specs) == 1 else ", ".join(sorted(bad))
        raise MethodError(f"none of the selected methods can run here ({why}); see `augshard methods`")
    return statuses


def check_output_root(root: Path, what: str = "output root") -> None:
    """The folder (or its nearest existing parent) must take a new entry: tried for real, since permission bits
    do not stop root while a read-only mount or a pseudo filesystem (/proc, /sys) does."""
    if root.exists() and not root.is_dir():
        raise OutputError(f"{what} is a file, not a folder: {root}")
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"{what} is not writable: {root} ({probe} is a file, not a folder)")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".augshard-probe-", dir=probe))
    except OSError as exc:
        reason = f"cannot create entries in {probe}: {exc.strerror}"
        raise OutputError(f"{what} is not writable: {root} ({reason})") from None


def dry_run(cfg: RunConfig, console: Console) -> int:
    """Validate everything and print the plan; write nothing."""
    from augshard.monitor import render_plan

    prep = prepare(cfg, console, dry_run=True)
    cfg = prep.cfg
    console.print(render_plan(prep.plan, prep.complete, cfg.shard_index))
    skipped = ", ".join(f"{n} {r}" for r, n in prep.rows_skipped.items()) or "none"
    console.print(f"input {cfg.input}: {prep.rows_usable:,} usable rows; skipped: {skipped}")
    console.print(
        f"{len(prep.plan.combos)} combos planned: {prep.todo} to run, {len(prep.complete)} already complete, "
        f"{len(prep.plan.unavailable)} unavailable; quality filter {cfg.quality_metric} "
        f"[{cfg.quality_min_sim}, {cfg.quality_max_sim}]; output root {cfg.output_root}"
    )
    if cfg.executor != "local":
        roots = ", ".join(getattr(cfg, k) for k in ("output_root", "log_dir", "cache_dir"))
        console.print(f"executor {cfg.executor}: every worker must see the same storage at {roots}")
    console.print("dry run: nothing was written")
    return 0
