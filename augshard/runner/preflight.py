"""A run's preflight: input, catalogue, methods, model and output folders checked, and the plan made once."""

from __future__ import annotations

import difflib
import math
import os
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from augshard.core.config import (
    DEFAULT_METHODS_CONFIG,
    POWERSET_CONFIRM_ABOVE,
    RunConfig,
    auto_shards,
    resolve_conf_path,
)
from augshard.core.errors import ConfigError, InputError, MethodError, OutputError
from augshard.core.planning import Plan, PlannedCombo, make_plan, plan_combos
from augshard.core.settings import API, CONFIG_FILE, DEFAULT, FLAG
from augshard.events.output import notice
from augshard.methods import PROBE, MethodSpec, MethodStatus, check_methods, method_check_record
from augshard.methods.bench import load_costs
from augshard.methods.catalogue import Selection, read_catalogue, resolve_selection
from augshard.methods.offline import apply_offline_env
from augshard.methods.probes import probe_line
from augshard.runner.estimate import probe_dataset
from augshard.shard.encoders import resolve_backend, resolve_device
from augshard.shard.quality import ensure_onnx_export, resolve_embedding_model
from augshard.storage.balance import Allocation, allocate
from augshard.storage.data import Dataset, Split, check_reserved_columns, load_dataset, require_column
from augshard.storage.outputs import check_merged_manifest, check_run_record
from augshard.storage.store import read_complete


@dataclass
class Preflight:
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
    shards_reason: str = "--num-shards"  # why the run has as many shards as it has
    asks: Allocation | None = None  # the variants each row asks for (--balance, --variants-per-class)
    probe: Dataset | None = None  # a few usable rows, spread over the input, the time estimate is measured on
    checks_s: float = 0.0  # what these checks took (a run from Python starts with them)

    @property
    def variants_asked(self) -> int:
        """The variants a combo asks for: usable rows x --variants-per-sample, or the balanced counts' sum."""
        return self.asks.asked_total if self.asks else self.rows_usable * self.cfg.variants_per_sample

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


def preflight(cfg: RunConfig, console: Console, dry_run: bool = False) -> Preflight:
    """Input, catalogue and methods are checked here, so user errors surface before anything is written."""
    t0 = time.perf_counter()
    if cfg.executor != "local":
        cfg = shared_paths(cfg)
    catalogue_path = resolve_conf_path(cfg.methods_config, DEFAULT_METHODS_CONFIG)
    selection = select_methods(cfg, catalogue_path, console)
    if note := range_note(cfg):
        notice(escape(note))
    if cfg.origin.source("augment_split") != DEFAULT and not cfg.split_col:
        notice("--augment-split does nothing without --split-col COL (the column holding each row's split): every "
               "row gets variants")  # fmt: skip
    specs = list(selection.specs)
    check_combo_count(cfg, len(specs))
    dataset = _load_input(cfg)
    asks = allocate(dataset, cfg)  # before the folders: a class --variants-per-class misspells is an input error
    for root, what in ((cfg.output_root, "output root"), (cfg.cache_dir, "--cache-dir"), (cfg.log_dir, "--log-dir")):
        check_output_root(Path(root), what)
    inputs = (cfg.input,) if cfg.input else ()
    check_merged_manifest(cfg.output_root, cfg.output_name, cfg.cache_dir, cfg.log_dir, cfg.force, inputs)
    check_run_record(cfg.output_root, cfg.force)
    apply_offline_env()
    cfg = resolve_devices(cfg)
    _check_embedding_model(cfg, console, dry_run)
    costs = _costs(cfg, specs, console)
    combos = plan_combos(cfg, specs, dataset.sha256, costs)  # fingerprints: independent of the shard count
    complete = _complete_in(cfg, combos)
    # Only methods that still have work are built and probed: a rerun of a finished job imports no library.
    needed = {m for pc in combos if pc.combo.combo_id not in complete for m in pc.combo.methods}
    statuses = _method_statuses(specs, needed, console, selection.named)
    needed_statuses = {m: st for m, st in statuses.items() if m in needed}
    for warning in range_warnings(cfg, needed_statuses, [row.evidence for row in dataset.rows]):
        notice(escape(warning), "warning")
    unavailable = {m: st.reason for m, st in statuses.items() if not st.ok}
    reason = "--num-shards"
    if cfg.num_shards is None:
        todo = sum(
            1 for pc in combos if pc.combo.combo_id not in complete and not set(pc.combo.methods) & set(unavailable)
        )
        num_shards, reason = auto_shards(todo)
        cfg = replace(cfg, num_shards=num_shards)
    plan = make_plan(cfg, specs, dataset.sha256, unavailable, costs, combos=combos)
    return Preflight(
        cfg,
        plan,
        specs,
        statuses,
        dataset.sha256,
        len(dataset.rows),
        dict(dataset.skipped),
        catalogue_path,
        complete & {pc.combo.combo_id for pc in plan.combos},
        reason,
        asks,
        probe_dataset(dataset),
        time.perf_counter() - t0,
    )


def _load_input(cfg: RunConfig) -> Dataset:
    dataset = load_dataset(
        cfg.input, cfg.text_col, cfg.evidence_col, cfg.id_col, Split.of(cfg.split_col, cfg.augment_split)
    )
    flags = {"--text-col": cfg.text_col, "--evidence-col": cfg.evidence_col, "--id-col": cfg.id_col,
             "--label-col": cfg.label_col, "--criterion-col": cfg.criterion_col,
             "--split-col": cfg.split_col}  # fmt: skip
    check_reserved_columns(dataset.table, str(cfg.input), flags)
    for name, flag in ((cfg.label_col, "--label-col"), (cfg.criterion_col, "--criterion-col")):
        require_column(dataset.table, name, flag, str(cfg.input))
    if not dataset.rows:
        reasons = ", ".join(f"{n} {r}" for r, n in dataset.skipped.items())
        raise InputError(f"{cfg.input}: no usable rows ({reasons})")
    return dataset


# The original tool bounded difflib's character ratio; augshard's default metric is MiniLM cosine, whose values for
# the same edit sit elsewhere: a range given without its metric may mean the original's, and is said to bound another.
RANGE_NOTE = (
    "--quality-min-sim {low:g} / --quality-max-sim {high:g} bound the {metric} metric ({what}), not the original "
    "tool's character ratio: pass --quality-metric char_ratio for the original tool's character ratio"
)
METRIC_WHAT = {"embedding": "MiniLM cosine of the result", "none": "recorded only: every variant is kept"}
EXPLICIT = {DEFAULT: 0, CONFIG_FILE: 1, FLAG: 2, API: 2}  # how explicitly a setting was given


def range_note(cfg: RunConfig) -> str | None:
    """The note when --quality-min-sim / --quality-max-sim (or the config file's) were given but the metric they
    bound was not given with them (left to its default, or from the config file under a range given by flag)."""
    given = max(EXPLICIT[cfg.origin.source(n)] for n in ("quality_min_sim", "quality_max_sim"))
    if cfg.quality_metric == "char_ratio" or not given or given <= EXPLICIT[cfg.origin.source("quality_metric")]:
        return None
    what = METRIC_WHAT.get(cfg.quality_metric, cfg.quality_metric)
    return RANGE_NOTE.format(low=cfg.quality_min_sim, high=cfg.quality_max_sim, metric=cfg.quality_metric, what=what)


def check_combo_count(cfg: RunConfig, methods: int) -> None:
    """`--combo-mode all`, or any plan over POWERSET_CONFIRM_ABOVE combos, runs only with --confirm-powerset."""
    top = {"single": 1, "bounded_k": min(cfg.max_combo_size, methods), "all": methods}[cfg.combo_mode]
    count = sum(math.comb(methods, k) for k in range(1, top + 1))
    if cfg.confirm_powerset or (cfg.combo_mode != "all" and count <= POWERSET_CONFIRM_ABOVE):
        return
    raise ConfigError(
        f"--combo-mode {cfg.combo_mode} makes {count:,} combos of {methods} methods; pass --confirm-powerset to run "
        "them all, or select fewer methods or a smaller --max-combo-size"
    )


def resolve_devices(cfg: RunConfig) -> RunConfig:
    """`--device auto` and `--embedding-backend auto` decided once, here: every shard then runs the same way (and
    the decision is part of the fingerprints where it can change an output)."""
    device = resolve_device(cfg.device)
    backend = cfg.embedding_backend
    if cfg.quality_metric == "embedding" or cfg.label_col:  # the label check uses the sentence model too
        backend = resolve_backend(backend, device)
    return replace(cfg, device=device, embedding_backend=backend)


def devices_line(cfg: RunConfig, specs: list[MethodSpec]) -> str:
    """Where the similarity model and the model methods run, for the run header and the dry run."""
    if cfg.quality_metric == "embedding":
        model = Path(cfg.embedding_model).name if cfg.embedding_model else "all-MiniLM-L6-v2"
        parts = [f"similarity: {model} on {cfg.device} ({cfg.embedding_backend})"]
    else:
        parts = [f"similarity: {cfg.quality_metric}"]
    scope = f"{cfg.quality_scope} scope"
    if cfg.default_range and cfg.quality_metric != "embedding":
        scope += f"; {cfg.quality_metric}'s default range"
    parts.append(f"kept in [{cfg.quality_min_sim:g}, {cfg.quality_max_sim:g}] ({scope})")
    if any(s.requires_gpu for s in specs):
        parts.append(f"model methods on {cfg.device}")
    if cfg.evidence_col is None:
        parts.append("the whole text is augmented (no --evidence-col: give one to augment only the evidence span)")
    return "; ".join(parts)


def range_warnings(cfg: RunConfig, statuses: dict[str, MethodStatus], texts: list[str]) -> list[str]:
    """Methods whose edits cannot fall in the kept `char_ratio` range on these texts: a method that changes one
    character (as its probe shows) scores about 1 - 1/L on a text of L characters, so it stays above max_sim unless
    L <= 1 / (1 - max_sim). When under 5% of the texts are that short, nearly every variant will be rejected: the
    user hears it before the run, with the numbers."""
    if cfg.quality_metric != "char_ratio" or cfg.quality_max_sim >= 1.0 or not texts:
        return []
    out = []
    for m, st in sorted(statuses.items()):
        if not st.ok or not st.probe_output:
            continue
        ops = difflib.SequenceMatcher(None, PROBE.lower(), st.probe_output.lower(), autojunk=False).get_opcodes()
        changed = sum(max(i2 - i1, j2 - j1) for op, i1, i2, j1, j2 in ops if op != "equal")
        if changed != 1:  # one probe tells a method's edit size only when it is a single character (TextAttack's
            continue  # character methods): a method that changes more varies from text to text
        longest = changed / (1.0 - cfg.quality_max_sim)
        fits = sum(1 for t in texts if len(t) <= longest)
        if fits < 0.05 * len(texts):
            out.append(
                f"method {m} changes one character per edit (its probe): that scores "
                f"under max_sim {cfg.quality_max_sim} (char_ratio) only on texts of {longest:.0f} characters or "
                f"fewer, and {fits} of {len(texts)} input texts are; expect almost none of its variants to be kept "
                f"(raise --quality-max-sim)"
            )
    return out


def _check_embedding_model(cfg: RunConfig, console: Console, dry_run: bool) -> None:
    if cfg.quality_metric != "embedding":
        return

    resolve_embedding_model(cfg.embedding_model)  # a missing model is a user error, said before any shard starts
    if cfg.embedding_backend == "onnx":
        # A dry run writes nothing, not even the export: it only checks that one can be made.
        ensure_onnx_export(cfg.embedding_model, lambda line: console.print(escape(line)), check_only=dry_run)


def _costs(cfg: RunConfig, specs: list[MethodSpec], console: Console) -> dict[str, float] | None:
    if not cfg.calibrate:
        return None

    costs = load_costs(cfg.calibrate)
    measured = sum(s.id in costs for s in specs)
    console.print(f"costs: measured for {measured} of {len(specs)} methods ({cfg.calibrate}); others: catalogue")
    return costs


def _complete_in(cfg: RunConfig, combos: list[PlannedCombo]) -> set[str]:
    if cfg.force:
        return set()
    return {pc.combo.combo_id for pc in combos if read_complete(cfg.output_root, pc.combo, pc.fingerprint)}


def select_methods(cfg: RunConfig, catalogue_path: Path, console: Console) -> Selection:
    """The catalogue read (its notes said: what a file in the original tool's format was read as) and the
    methods `--methods` / `--exclude-methods` select from it."""
    catalogue = read_catalogue(catalogue_path)
    for note in catalogue.notes:
        notice(escape(note))
    return resolve_selection(catalogue.specs, cfg.methods, cfg.exclude_methods, catalogue_path=str(catalogue_path))


def _method_statuses(
    specs: list[MethodSpec], needed: set[str], console: Console, named: frozenset[str] = frozenset()
) -> dict[str, MethodStatus]:
    """Every selected method's status; one probed under the same entry, libraries and resources before (available
    or not) comes from the probe cache: the supervisor then imports no library at all.

    A method named by its id that cannot run is an error; one reached through a pattern is reported and skipped."""
    record = method_check_record()
    checked = check_methods(
        [s for s in specs if s.id in needed], record, on_probe=lambda ids: notice(escape(probe_line(ids, record)))
    )
    statuses = {
        s.id: checked.get(s.id) or MethodStatus(s.id, s.lib, s.kind, ok=True, reason="not checked") for s in specs
    }
    bad = {m: st for m, st in statuses.items() if not st.ok}
    # An error that already says why comes alone (one line); otherwise each unavailable method is a warning.
    if len(specs) == 1 and bad:
        raise MethodError(f"none of the selected methods can run here ({specs[0].id}: {bad[specs[0].id].reason}); "
                          "see `augshard methods`")  # fmt: skip
    named_bad = sorted(m for m in bad if m in named)
    if named_bad:
        m = named_bad[0]
        more = f" (and {', '.join(named_bad[1:])})" if len(named_bad) > 1 else ""
        raise MethodError(f"method {m}{more} cannot run here: {bad[m].reason} (fix: {bad[m].fix})")
    for m, st in bad.items():
        notice(f"method {m} is unavailable: {escape(st.reason)} (fix: {escape(st.fix)})", "warning")
    if len(bad) == len(specs):  # several: the ids here, their reasons in the warnings above
        raise MethodError(
            f"none of the selected methods can run here ({', '.join(sorted(bad))}); see `augshard methods`"
        )
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
