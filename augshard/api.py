"""The Python API, the layer the CLI calls: `plan`, `run`, `load`, `export`, `evaluate`, with typed results."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from augshard.core.config import RUN, RunConfig, coerce_settings, load_config, validate
from augshard.core.errors import ConfigError, OutputError, unknown_name
from augshard.core.settings import items
from augshard.evaluation.document import EvaluationDocument, Row, Section
from augshard.evaluation.evaluate import EvaluateOptions
from augshard.evaluation.evaluate import evaluate as evaluate_run
from augshard.evaluation.findings import choose_combos
from augshard.evaluation.options import EVALUATE
from augshard.events.notebook import Tabular
from augshard.exporting.export import export as export_run
from augshard.exporting.model import EXPORT, ExportedCombo, ExportFacts, ExportOptions
from augshard.runner.dry_run import Action, ComboPlan, RunPlan, dry_run, run_plan
from augshard.runner.lock import ReadLock
from augshard.runner.preflight import Preflight, preflight
from augshard.runner.summary import RunDocument
from augshard.runner.supervisor import RunEnd, run_checked
from augshard.runner.watch import (
    ProgressCallback,
    RunProgress,
    RunWatch,
    collected_notes,
    display_console,
    main_not_reimported,
    quiet_console,
)
from augshard.storage import parquet_files
from augshard.storage.inputs import in_memory
from augshard.storage.manifest import read_manifest, shard_manifest_name
from augshard.storage.merge import merged_outcomes
from augshard.storage.outcome import ComboOutcome

if TYPE_CHECKING:
    from rich.console import Console


__all__ = [
    "Action",
    "ComboGain",
    "ComboPlan",
    "EvaluationResult",
    "ExportResult",
    "ExportedCombo",
    "RunPlan",
    "RunProgress",
    "RunResult",
    "evaluate",
    "export",
    "load",
    "make_config",
    "plan",
    "run",
]

# A run's settings are RunConfig's fields (augshard.core.config.RUN), each an explicit keyword of make_config, plan
# and run (None: the config file's, else the default) so that an editor or a notebook completes them;
# tests/test_settings.py holds each signature to its table. `Path_`: a path given as a str or an os.PathLike.
Path_ = str | os.PathLike[str]
# `input`: a file's path, or rows in memory (storage/inputs.py: a pandas DataFrame, a pyarrow Table, a
# datasets.Dataset, a DatasetDict with `split`), written once as Parquet under the cache folder for the shards to read.
Input = Path_ | Any
Counts = str | Iterable[str] | Mapping[str, int] | None  # variants_per_class: "a=3,b=5", ["a=3", "b=5"], {"a": 3}


# --- configuration --------------------------------------------------------------------------------------------


@RUN.keywords("augshard.make_config")
def make_config(
    config: RunConfig | Path_ | None = None, *,
    input: Input | None = None, text_col: str | None = None, evidence_col: str | None = None, id_col: str | None = None,
    label_col: str | None = None, criterion_col: str | None = None, methods_config: Path_ | None = None,
    split_col: str | None = None, augment_split: str | Iterable[str] | None = None, balance: bool | None = None,
    balance_target: int | None = None, max_variants_per_sample: int | None = None, variants_per_class: Counts = None,
    methods: str | Iterable[str] | None = None, exclude_methods: str | Iterable[str] | None = None,
    combo_mode: str | None = None, max_combo_size: int | None = None, confirm_powerset: bool | None = None,
    variants_per_sample: int | None = None, seed: int | None = None, quality_metric: str | None = None,
    quality_min_sim: float | None = None, quality_max_sim: float | None = None, quality_scope: str | None = None,
    max_candidates_per_variant: int | None = None, chunk_size: int | None = None, embedding_model: str | None = None,
    embedding_batch_size: int | None = None, embedding_backend: str | None = None, device: str | None = None,
    output_root: Path_ | None = None, output_name: str | None = None, cache_dir: Path_ | None = None,
    log_dir: Path_ | None = None, disk_cache: Path_ | None = None, save_format: str | None = None,
    keep_vectors: bool | None = None, num_shards: int | str | None = None, shard_index: int | None = None,
    steal: bool | None = None, gpu_slots: int | None = None, max_retries: int | None = None,
    executor: str | None = None, scheduler: str | None = None, force: bool | None = None,
    keep_shards: bool | None = None, calibrate: Path_ | bool | None = None, split: str | None = None,
) -> RunConfig:  # fmt: skip
    """A validated RunConfig: `config` (a RunConfig, or a YAML file; None: conf/augshard.yaml as the CLI reads it)
    with the settings given (RunConfig fields, as the CLI's flags) on top. An in-memory `input` (with `split` for a
    DatasetDict) is written as `<cache_dir>/inputs/<origin>-<content hash>.parquet`, the config's input."""
    settings = {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in RUN.given(locals()).items()}
    rows = in_memory(input, split)
    if rows is not None:
        settings["input"] = rows.name  # where under cache_dir is known once the config is
    cfg = _config(config, settings)
    return cfg if rows is None else dataclasses.replace(cfg, input=str(rows.write(cfg.cache_dir)))


def _config(config: RunConfig | Path_ | None, settings: dict[str, Any]) -> RunConfig:
    if config is not None and not isinstance(config, (RunConfig, str, os.PathLike)):
        raise ConfigError(f"config must be a RunConfig or a YAML file's path, got {config!r}")
    if isinstance(config, RunConfig):
        given = coerce_settings(settings)
        if "quality_metric" in given and config.default_range:
            # A range left at its metric's default follows the metric: char_ratio then keeps its own default range.
            given.setdefault("quality_min_sim", None)
            given.setdefault("quality_max_sim", None)
        cfg = dataclasses.replace(config, **given)
        validate(cfg)
        return cfg
    return load_config(None if config is None else os.fspath(config), settings)


# --- the plan -------------------------------------------------------------------------------------------------


@RUN.keywords("augshard.plan")
def plan(
    config: RunConfig | Path_ | None = None, *,
    input: Input | None = None, text_col: str | None = None, evidence_col: str | None = None, id_col: str | None = None,
    label_col: str | None = None, criterion_col: str | None = None, methods_config: Path_ | None = None,
    split_col: str | None = None, augment_split: str | Iterable[str] | None = None, balance: bool | None = None,
    balance_target: int | None = None, max_variants_per_sample: int | None = None, variants_per_class: Counts = None,
    methods: str | Iterable[str] | None = None, exclude_methods: str | Iterable[str] | None = None,
    combo_mode: str | None = None, max_combo_size: int | None = None, confirm_powerset: bool | None = None,
    variants_per_sample: int | None = None, seed: int | None = None, quality_metric: str | None = None,
    quality_min_sim: float | None = None, quality_max_sim: float | None = None, quality_scope: str | None = None,
    max_candidates_per_variant: int | None = None, chunk_size: int | None = None, embedding_model: str | None = None,
    embedding_batch_size: int | None = None, embedding_backend: str | None = None, device: str | None = None,
    output_root: Path_ | None = None, output_name: str | None = None, cache_dir: Path_ | None = None,
    log_dir: Path_ | None = None, disk_cache: Path_ | None = None, save_format: str | None = None,
    keep_vectors: bool | None = None, num_shards: int | str | None = None, shard_index: int | None = None,
    steal: bool | None = None, gpu_slots: int | None = None, max_retries: int | None = None,
    executor: str | None = None, scheduler: str | None = None, force: bool | None = None,
    keep_shards: bool | None = None, calibrate: Path_ | bool | None = None, split: str | None = None,
    estimate: bool = True,
) -> RunPlan:  # fmt: skip
    """Validate everything a run needs and plan it, as `augshard run --dry-run`; writes nothing, prints nothing.
    With `estimate`, `RunPlan.estimate` is the time the run will take here (a probe of its rows, seconds)."""
    cfg = make_config(config, split=split, **RUN.given(locals()))
    with collected_notes() as notes:
        prep = preflight(cfg, quiet_console(), dry_run=True)
    return run_plan(prep, tuple(notes), estimate)


def plan_and_print(cfg: RunConfig, console: Console, fmt: str = "table", estimate: bool = True) -> int:
    """`augshard run --dry-run`: the plan printed as a table, TSV or JSON; returns the exit code."""
    return dry_run(cfg, console, fmt, estimate)


# --- running --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunResult(Tabular):
    """What a run came to: its exit status, each combo's outcome (the manifest's rows) and where they are; in a
    notebook, a table of its combos (`to_pandas()`: one row per combo)."""

    exit_code: int  # 0 every combo ok, 1 some combo failed, 128 + signal: interrupted
    plan: RunPlan
    combos: tuple[ComboOutcome, ...]  # this run's plan, one per combo (unavailable ones included)
    manifest: Path | None  # manifest_final.csv; a shard job's own manifest; None when interrupted
    output_root: Path
    wall_s: float
    notes: tuple[str, ...] = ()  # the notes and warnings the CLI prints on stderr
    document: RunDocument | None = None  # what `run --format json` prints; None when interrupted

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def interrupted(self) -> bool:
        return self.exit_code >= 128

    @property
    def failed(self) -> tuple[ComboOutcome, ...]:
        """Combos a rerun has left to do (failed or interrupted); their errors in `error`, tracebacks in the logs."""
        return tuple(o for o in self.combos if o.unfinished)

    @property
    def rows(self) -> int:
        return sum(o.rows for o in self.combos if o.ok)

    def table_rows(self) -> list[dict[str, Any]]:
        keys = ("combo_id", "combo_dir", "methods", "k", "status", "rows", "rows_rejected", "resumed", "shard",
                "duration_s", "error", "dataset_path")  # fmt: skip
        return [{k: getattr(o, k) for k in keys} | {"status": o.status.value} for o in self.combos]

    def table_caption(self) -> str:
        state = "ok" if self.ok else "interrupted" if self.interrupted else f"{len(self.failed)} combos left to do"
        return f"augshard run: {len(self.combos)} combos, {self.rows:,} rows, {state} ({self.wall_s:g}s)"


@RUN.keywords("augshard.run")
def run(
    config: RunConfig | Path_ | None = None, *, on_progress: ProgressCallback | None = None,
    progress: bool | str = "auto",
    input: Input | None = None, text_col: str | None = None, evidence_col: str | None = None, id_col: str | None = None,
    label_col: str | None = None, criterion_col: str | None = None, methods_config: Path_ | None = None,
    split_col: str | None = None, augment_split: str | Iterable[str] | None = None, balance: bool | None = None,
    balance_target: int | None = None, max_variants_per_sample: int | None = None, variants_per_class: Counts = None,
    methods: str | Iterable[str] | None = None, exclude_methods: str | Iterable[str] | None = None,
    combo_mode: str | None = None, max_combo_size: int | None = None, confirm_powerset: bool | None = None,
    variants_per_sample: int | None = None, seed: int | None = None, quality_metric: str | None = None,
    quality_min_sim: float | None = None, quality_max_sim: float | None = None, quality_scope: str | None = None,
    max_candidates_per_variant: int | None = None, chunk_size: int | None = None, embedding_model: str | None = None,
    embedding_batch_size: int | None = None, embedding_backend: str | None = None, device: str | None = None,
    output_root: Path_ | None = None, output_name: str | None = None, cache_dir: Path_ | None = None,
    log_dir: Path_ | None = None, disk_cache: Path_ | None = None, save_format: str | None = None,
    keep_vectors: bool | None = None, num_shards: int | str | None = None, shard_index: int | None = None,
    steal: bool | None = None, gpu_slots: int | None = None, max_retries: int | None = None,
    executor: str | None = None, scheduler: str | None = None, force: bool | None = None,
    keep_shards: bool | None = None, calibrate: Path_ | bool | None = None, split: str | None = None,
) -> RunResult:  # fmt: skip
    """Run the plan on shards, write every combo and the merged manifest, as `augshard run`; prints nothing.

    `on_progress` receives a `RunProgress` each time the shards' state changes (polled twice a second, from a helper
    thread); the last one, with every shard finished, comes before `run` returns. `progress`: "auto" shows
    the live shard table in a Jupyter notebook only; True shows it anywhere (on stderr); False never.
    Call it from the main thread (its signal handlers stop the shards on Ctrl-C / a kernel interrupt).
    """
    settings = RUN.given(locals())
    display = display_console(progress)
    if on_progress is not None and not callable(on_progress):
        raise ConfigError(f"on_progress must be a function of a RunProgress, got {on_progress!r}")
    cfg = make_config(config, split=split, **settings)
    t0 = time.time()
    console = quiet_console()
    with collected_notes() as notes:
        prep = preflight(cfg, console)
        watch = RunWatch(prep, t0, on_progress, display)
        with main_not_reimported(), watch:
            end = _run_checked(prep, console, live=False, fmt="table", t0=t0)
    watch.raise_callback_error()
    return _result(prep, end, t0, tuple(notes))


def run_and_print(cfg: RunConfig, console: Console, live: bool = True, fmt: str = "table") -> RunResult:
    """`augshard run`: the run with its header, progress and summary printed on `console` (the CLI's output)."""
    t0 = time.time()
    prep = preflight(cfg, console)
    end = _run_checked(prep, console, live=live, fmt=fmt, t0=t0)
    return _result(prep, end, t0)


def _run_checked(prep: Preflight, console: Console, live: bool, fmt: str, t0: float) -> RunEnd:
    return run_checked(prep, console, live=live, fmt=fmt, t0=t0)


def _result(prep: Preflight, end: RunEnd, t0: float, notes: tuple[str, ...] = ()) -> RunResult:
    """The run's outcomes as its shards returned them (resumed combos included), the rows of the manifests they
    wrote: merged as the merge does for a whole run, shard after shard when interrupted or for one shard's job."""
    cfg, root = prep.cfg, Path(prep.cfg.output_root)
    interrupted = end.exit_code >= 128
    shards = [r.outcomes for _, r in sorted(end.outcome.results.items())]
    if cfg.shard_index is None and not interrupted:
        outcomes, manifest = merged_outcomes(shards), root / cfg.output_name
    else:
        outcomes = [o for rows in shards for o in rows]
        manifest = None if interrupted else root / shard_manifest_name(cfg.shard_index, prep.plan.num_shards)
    if manifest is not None and not manifest.is_file():
        manifest = None
    wall = round(time.time() - t0, 1)
    return RunResult(end.exit_code, run_plan(prep, notes), tuple(outcomes), manifest, root, wall, notes, end.document)


# --- reading a run --------------------------------------------------------------------------------------------

LOAD_AS = ("pandas", "datasets")


def load(
    output_root: str | os.PathLike[str] | RunResult | None = None,
    as_: str = "pandas",
    combos: str | Iterable[str] | None = None,
    output_name: str = "manifest_final.csv",
) -> Any:
    """The rows of a finished run's complete combos as one table: a pandas DataFrame, or a `datasets.Dataset`
    (`as_="datasets"`). Every row carries its combo (`combo_id`, `combo_dir`, `methods`, `k`). `combos`: ids,
    folder names or methods as shown (a+b); None: every complete combo of the manifest."""
    if as_ not in LOAD_AS:
        raise ConfigError(f"as_ must be one of {', '.join(LOAD_AS)}, got {as_!r}")
    if isinstance(output_root, RunResult):
        root = output_root.output_root
    else:
        root = _path("output_root", output_root if output_root is not None else RunConfig.output_root)
    if not isinstance(output_name, str):
        raise ConfigError(f"output_name must be a file name, got {output_name!r}")
    table = _read_combos(root, output_name, items(combos))
    if as_ == "pandas":
        return table.to_pandas()
    try:
        import datasets  # optional: only `as_="datasets"` needs it
    except ImportError:
        raise ConfigError("as_='datasets' needs the datasets package: pip install datasets") from None
    return datasets.Dataset(table)


def _path(name: str, value: Any) -> Path:
    """A path argument as a Path; a ConfigError (not a TypeError) for a value that is none."""
    if not isinstance(value, (str, os.PathLike)):
        raise ConfigError(f"{name} must be a path (a str or os.PathLike), got {value!r}")
    return Path(value)


def _read_combos(root: Path, output_name: str, chosen: tuple[str, ...]) -> Any:
    import pyarrow as pa  # heavy: loaded when a run is read, not when augshard is imported

    manifest = root / output_name
    if not manifest.is_file():
        raise OutputError(f"no finished run in {root}: {manifest} is missing (run augshard.run first)")
    with ReadLock(root, "load"):  # no run rewrites the combos while they are read
        complete = [o for o in read_manifest(manifest) if o.ok]
        if chosen:
            names = {n: o for o in complete for n in (o.combo_id, o.combo_dir, o.methods)}
            missing = [c for c in chosen if c not in names]
            if missing:
                raise ConfigError(unknown_name(missing[0], sorted({o.combo_dir for o in complete}), "complete combo"))
            complete = list({names[c].combo_id: names[c] for c in chosen}.values())
        if not complete:
            raise OutputError(f"{manifest}: no complete combo to load")
        tables = []
        for o in complete:
            t = parquet_files.read_table(root / o.dataset_path)
            for name, value, kind in (("combo_id", o.combo_id, pa.string()), ("combo_dir", o.combo_dir, pa.string()),
                                      ("methods", o.methods, pa.string()), ("k", o.k, pa.int32())):  # fmt: skip
                if name not in t.column_names:
                    t = t.append_column(name, pa.array([value] * t.num_rows, kind))
            tables.append(t)
    return pa.concat_tables(tables, promote_options="permissive")


# --- tools over a finished run --------------------------------------------------------------------------------


# What an export made is its facts (export.json, typed); the names the API has always given them.
ExportResult = ExportFacts


@EXPORT.keywords("augshard.export")
def export(
    to: Path_, output_root: Path_ | None = None, *, best: int | None = None, min_gain: float | None = None,
    by_features: str | None = None, output_name: str | None = None, dedupe: str | None = None,
    near_threshold: float | None = None, drop_label_flips: bool | None = None, include_originals: bool | None = None,
    combos: str | Iterable[str] | None = None, k: str | Iterable[int] | None = None, rows_per_file: int | None = None,
    allow_incomplete: bool | None = None, force: bool | None = None, plan: str | None = None,
    cache_dir: Path_ | None = None, log_dir: Path_ | None = None,
) -> ExportResult:  # fmt: skip
    """One training set of a finished run, as `augshard export --to TO` (which calls this): deduplicated, with a
    dataset card and export.json. The options are `augshard.exporting.model.ExportOptions`' fields (None: the
    default). `best` / `min_gain` choose the combos from the run's evaluation.json instead (the N best, or those
    gaining at least X), by the gains of `by_features` (tfidf | embedding; default the first)."""

    to = _path("to", to)
    options = EXPORT.given(locals(), parsed=True)
    for name, value, kind in (("best", best, int), ("min_gain", min_gain, (int, float))):
        if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
            raise ConfigError(f"{name} must be a number, got {value!r}")
    if best is not None or min_gain is not None:
        if options.get("combos") or options.get("k"):
            raise ConfigError("--best/--min-gain choose the combos from evaluation.json: give no --combos or --k")
        if best is not None and best < 1:
            raise ConfigError(f"--best must be at least 1, got {best}")
        root = _path("output_root", options.get("output_root", ExportOptions.output_root))
        chosen, options["chosen_by"] = choose_combos(root, best, min_gain, by_features)
        options["combos"] = tuple(chosen)
    elif by_features:
        raise ConfigError("--by-features goes with --best or --min-gain")
    return export_run(ExportOptions(**options))


@dataclass(frozen=True)
class ComboGain:
    """One combo's effect on the classifier for one feature set and training size, from the deciding stage (the
    confirm stage's when there is one)."""

    features: str
    train_size: float
    combo_id: str
    combo_dir: str
    methods: tuple[str, ...]
    k: int
    macro_f1: float
    gain: float  # mean paired macro-F1 gain over the baseline
    ci_low: float
    ci_high: float
    p_holm: float | None
    verdict: str


@dataclass(frozen=True)
class EvaluationResult(Tabular):
    """`augshard evaluate`'s document (evaluation.json, typed: `augshard.evaluation.document`) and where it was
    written; `gains`: every row of its deciding stage, flat (also `to_pandas()`: one row per section and combo)."""

    path: Path
    document: EvaluationDocument

    @property
    def gains(self) -> tuple[ComboGain, ...]:
        return tuple(_gain(s, r) for s in self.document.deciding for r in s.combos)

    def table_rows(self) -> list[dict[str, Any]]:
        return [dataclasses.asdict(g) | {"methods": "+".join(g.methods)} for g in self.gains]

    def table_caption(self) -> str:
        return f"augshard evaluate: {len(self.gains)} gains over the baseline ({self.path})"


def _gain(s: Section, r: Row) -> ComboGain:
    g = r.gain
    return ComboGain(s.features, s.train_size, r.combo_id, r.combo_dir, tuple(r.methods), r.k, r.macro_f1.mean, g.mean,
                     g.ci_low, g.ci_high, g.p_holm, r.verdict)  # fmt: skip


@EVALUATE.keywords("augshard.evaluate")
def evaluate(
    label_col: str, output_root: Path_ | None = None, *, on_progress: Callable[[int, int], None] | None = None,
    output_name: str | None = None, group_col: str | None = None, folds: int | None = None, repeats: int | None = None,
    features: str | Iterable[str] | None = None, train_sizes: str | Iterable[float] | None = None,
    combos: str | Iterable[str] | None = None, export_dir: Path_ | None = None, field: str | None = None,
    seed: int | None = None, workers: int | None = None, allow_incomplete: bool | None = None,
    drop_rare_classes: bool | None = None, cache_dir: Path_ | None = None, embedding_model: str | None = None,
    out: Path_ | None = None, force: bool | None = None, plan: str | None = None, confirm_top: int | None = None,
    confirm_repeats: int | None = None, group_near: bool | None = None, model: Any = None,
    test_split: str | None = None, split_col: str | None = None,
) -> EvaluationResult:  # fmt: skip
    """Each combo's effect on a classifier, measured without leakage, as `augshard evaluate`; writes
    evaluation.json. The options are `augshard.evaluation.options.EvaluateOptions`' fields (None: the default);
    `on_progress(done, total)` is called as the tasks finish."""

    options = EVALUATE.given(locals(), parsed=True)
    if features is None and model is not None:  # your model alone, unless features name the built-ins too
        options["features"] = ("model",)
    opts = EvaluateOptions(**{"label_col": label_col, **options})
    with main_not_reimported():
        doc = evaluate_run(opts, on_progress)
    return EvaluationResult(opts.destination, doc)
