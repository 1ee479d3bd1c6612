"""The Python API, the layer the CLI calls: `plan`, `run`, `load`, `export`, `evaluate`, with typed results."""

from __future__ import annotations

import dataclasses
import os
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from augshard.core.config import RunConfig, coerce_settings, load_config, validate
from augshard.core.errors import ConfigError, OutputError, unknown_name
from augshard.evaluation.document import EvaluationDocument
from augshard.evaluation.evaluate import EvaluateOptions
from augshard.evaluation.evaluate import evaluate as evaluate_run
from augshard.evaluation.findings import choose_combos
from augshard.exporting.export import export as export_run
from augshard.exporting.model import ExportedCombo, ExportFacts, ExportOptions
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
from augshard.storage.manifest import read_manifest, shard_manifest_name
from augshard.storage.merge import merged_outcomes
from augshard.storage.outcome import ComboOutcome

# `import augshard` imports this module; the rooms below it (preflight, supervisor, export, evaluate) load libraries
# and the catalogue, so each function imports the one it calls: `augshard --help` and every worker start fast.
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

SETTINGS = tuple(f.name for f in dataclasses.fields(RunConfig) if f.name != "config_path")


# --- configuration --------------------------------------------------------------------------------------------


def make_config(config: RunConfig | str | os.PathLike[str] | None = None, **settings: Any) -> RunConfig:
    """A validated RunConfig: `config` (a RunConfig, or a YAML file; None: conf/augshard.yaml as the CLI reads it)
    with `settings` (RunConfig fields, as the CLI's flags) on top."""
    unknown = [k for k in settings if k not in SETTINGS]
    if unknown:
        raise ConfigError(unknown_name(unknown[0], SETTINGS, "setting"))
    if config is not None and not isinstance(config, (RunConfig, str, os.PathLike)):
        raise ConfigError(f"config must be a RunConfig or a YAML file's path, got {config!r}")
    settings = {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in settings.items()}
    if isinstance(config, RunConfig):
        given = coerce_settings({k: v for k, v in settings.items() if v is not None})
        if "quality_metric" in given and config.default_range:
            # A range left at its metric's default follows the metric: char_ratio then keeps its own default range.
            given.setdefault("quality_min_sim", None)
            given.setdefault("quality_max_sim", None)
        cfg = dataclasses.replace(config, **given)
        validate(cfg)
        return cfg
    return load_config(None if config is None else os.fspath(config), settings)


# --- the plan -------------------------------------------------------------------------------------------------


def plan(config: RunConfig | str | os.PathLike[str] | None = None, **settings: Any) -> RunPlan:
    """Validate everything a run needs and plan it, as `augshard run --dry-run`; writes nothing, prints nothing."""
    cfg = make_config(config, **settings)
    with collected_notes() as notes:
        prep = preflight(cfg, quiet_console(), dry_run=True)
    return run_plan(prep, tuple(notes))


def plan_and_print(cfg: RunConfig, console: Console, fmt: str = "table") -> int:
    """`augshard run --dry-run`: the plan printed as a table, TSV or JSON; returns the exit code."""
    return dry_run(cfg, console, fmt)


# --- running --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunResult:
    """What a run came to: its exit status, each combo's outcome (the manifest's rows) and where they are."""

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


def run(
    config: RunConfig | str | os.PathLike[str] | None = None,
    *,
    on_progress: ProgressCallback | None = None,
    progress: bool | str = "auto",
    **settings: Any,
) -> RunResult:
    """Run the plan on shards, write every combo and the merged manifest, as `augshard run`; prints nothing.

    `on_progress` receives a `RunProgress` each time the shards' state changes (polled twice a second, from a helper
    thread); the last one, with every shard finished, comes before `run` returns. `progress`: "auto" shows
    the live shard table in a Jupyter notebook only; True shows it anywhere (on stderr); False never.
    Call it from the main thread (its signal handlers stop the shards on Ctrl-C / a kernel interrupt).
    """
    display = display_console(progress)
    if on_progress is not None and not callable(on_progress):
        raise ConfigError(f"on_progress must be a function of a RunProgress, got {on_progress!r}")
    cfg = make_config(config, **settings)
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
    table = _read_combos(root, output_name, _chosen(combos))
    if as_ == "pandas":
        return table.to_pandas()
    try:
        import datasets  # optional: only `as_="datasets"` needs it
    except ImportError:
        raise ConfigError("as_='datasets' needs the datasets package: pip install datasets") from None
    return datasets.Dataset(table)


def _renamed(options: dict[str, Any], old: str, new: str, where: str) -> None:
    """An argument's old name, still taken for one release (a shard is a run's partition), with a warning."""
    if old in options:
        if new in options:
            raise ConfigError(f"{where}: give {new} only ({old} is its old name)")
        warnings.warn(f"{where}({old}=...) is now {new}=...; the old name goes in the next release", FutureWarning, 3)
        options[new] = options.pop(old)


def _path(name: str, value: Any) -> Path:
    """A path argument as a Path; a ConfigError (not a TypeError) for a value that is none."""
    if not isinstance(value, (str, os.PathLike)):
        raise ConfigError(f"{name} must be a path (a str or os.PathLike), got {value!r}")
    return Path(value)


def _chosen(value: Any) -> tuple[str, ...]:
    """Items as the CLI's comma-separated lists take them: "a,b", ["a", "b"], or one value."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value) if isinstance(value, Iterable) else [value]
    return tuple(str(c).strip() for c in items if str(c).strip())


def _numbers(value: Any, kind: type, expected: str) -> tuple[Any, ...]:
    """`_chosen`'s items as numbers; a ConfigError saying what was `expected` (and what was given) otherwise."""
    try:
        return tuple(kind(x) for x in _chosen(value))
    except ValueError:
        shown = value if isinstance(value, str) else ",".join(str(x) for x in value)
        raise ConfigError(f"{expected}, got '{shown}'") from None


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


def export(
    to: str | os.PathLike[str],
    output_root: str | os.PathLike[str] | None = None,
    *,
    best: int | None = None,
    min_gain: float | None = None,
    by_features: str | None = None,
    **options: Any,
) -> ExportResult:
    """One training set of a finished run, as `augshard export --to TO` (which calls this): deduplicated, with a
    dataset card and export.json. `options`: the fields of `augshard.exporting.model.ExportOptions` (dedupe, combos, k,
    include_originals, ...). `best` / `min_gain` choose the combos from the run's evaluation.json instead (the N
    best, or those gaining at least X), by the gains of `by_features` (tfidf | embedding; default the first)."""

    _renamed(options, "shard_size", "rows_per_file", "augshard.export")
    known = [f.name for f in dataclasses.fields(ExportOptions) if f.name not in ("to", "chosen_by")]
    unknown = [k for k in options if k not in known]
    if unknown:
        raise ConfigError(unknown_name(unknown[0], known, "export option"))
    if output_root is not None:
        options["output_root"] = output_root
    for key in ("output_root", "cache_dir", "log_dir"):
        if options.get(key) is not None:
            options[key] = _path(key, options[key])
    to = _path("to", to)
    for name, value, kind in (("best", best, int), ("min_gain", min_gain, (int, float))):
        if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
            raise ConfigError(f"{name} must be a number, got {value!r}")
    if options.get("combos") is not None:
        options["combos"] = _chosen(options["combos"])
    if options.get("k") is not None:
        options["k"] = _numbers(options["k"], int, "--k: expected sizes like 1,2")
    if best is not None or min_gain is not None:
        if options.get("combos") or options.get("k"):
            raise ConfigError("--best/--min-gain choose the combos from evaluation.json: give no --combos or --k")
        if best is not None and best < 1:
            raise ConfigError(f"--best must be at least 1, got {best}")
        root = options.get("output_root", Path(ExportOptions.output_root))
        chosen, options["chosen_by"] = choose_combos(Path(root), best, min_gain, by_features)
        options["combos"] = tuple(chosen)
    elif by_features:
        raise ConfigError("--by-features goes with --best or --min-gain")
    return export_run(ExportOptions(to=Path(to), **{k: v for k, v in options.items() if v is not None}))


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
class EvaluationResult:
    """`augshard evaluate`'s document (evaluation.json, typed: `augshard.evaluation.document`) and where it was
    written; `gains`: every row of its deciding stage, flat."""

    path: Path
    document: EvaluationDocument

    @property
    def gains(self) -> tuple[ComboGain, ...]:
        return tuple(
            ComboGain(
                s.features,
                s.train_size,
                r.combo_id,
                r.combo_dir,
                tuple(r.methods),
                r.k,
                r.macro_f1.mean,
                r.gain.mean,
                r.gain.ci_low,
                r.gain.ci_high,
                r.gain.p_holm,
                r.verdict,
            )  # fmt: skip
            for s in self.document.deciding
            for r in s.combos
        )


def evaluate(
    label_col: str,
    output_root: str | os.PathLike[str] | None = None,
    *,
    on_progress: Callable[[int, int], None] | None = None,
    **options: Any,
) -> EvaluationResult:
    """Each combo's effect on a classifier, measured without leakage, as `augshard evaluate`; writes
    evaluation.json. `options`: the fields of `augshard.evaluation.options.EvaluateOptions` (folds, features,
    combos, ...); `on_progress(done, total)` is called as the tasks finish."""

    _renamed(options, "num_shards", "workers", "augshard.evaluate")
    fields = {f.name for f in dataclasses.fields(EvaluateOptions)}
    unknown = [k for k in options if k not in fields or k == "label_col"]
    if unknown:
        raise ConfigError(unknown_name(unknown[0], fields - {"label_col"}, "evaluate option"))
    if output_root is not None:
        options["output_root"] = output_root
    for key in ("output_root", "cache_dir", "export_dir", "out"):
        if options.get(key) is not None:
            options[key] = Path(options[key])
    if options.get("features") is not None:
        features = _chosen(options["features"])
        options["features"] = ("tfidf", "embedding") if features == ("both",) else features
    elif options.get("model") is not None:  # your model alone, unless features name the built-ins too
        options["features"] = ("model",)
    else:
        options.pop("features", None)  # None: the default
    if options.get("combos") is not None:
        options["combos"] = _chosen(options["combos"])
    if options.get("train_sizes") is not None:
        sizes = "--train-sizes: expected fractions like 0.1,0.25,1.0"
        options["train_sizes"] = _numbers(options["train_sizes"], float, sizes)
    opts = EvaluateOptions(label_col=label_col, **options)
    with main_not_reimported():
        doc = evaluate_run(opts, on_progress)
    return EvaluationResult(opts.destination, doc)
