"""RunConfig: built-in defaults <- conf/augshard.yaml <- CLI flags, validated, with a fingerprint."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from augshard.core import settings
from augshard.core.errors import ConfigError
from augshard.core.fingerprint import sha
from augshard.core.settings import OMIT, Check, Origin, Setting, Table, always, if_set, setting, unless_default

PACKAGE_CONF = Path(__file__).resolve().parents[1] / "conf"  # augshard/conf, beside this room
DEFAULT_CONFIG = "conf/augshard.yaml"
DEFAULT_METHODS_CONFIG = "conf/augment_methods.yaml"
# Where a run writes, and where every command that reads a run looks, unless conf/augshard.yaml or a flag says
# otherwise (`run_paths`).
DEFAULT_OUTPUT_ROOT = "data/processed/augsets"
DEFAULT_OUTPUT_NAME = "manifest_final.csv"
DEFAULT_CACHE_DIR = "data/cache"
DEFAULT_LOG_DIR = "logs/augment"
# Written by `augshard methods --bench`, read by `run --calibrate`.
DEFAULT_COSTS_PATH = f"{DEFAULT_CACHE_DIR}/method_costs.json"

QUALITY_METRICS = ("embedding", "char_ratio", "none")
# The accepted range of each metric when none is given: MiniLM cosines of a light edit sit around 0.6-0.95, while a
# difflib ratio of one-character edits sits at 0.95-0.99, so char_ratio keeps the original tool's 0.40-0.98.
# (`none` keeps every variant; its range is only recorded.)
DEFAULT_RANGES = {"embedding": (0.55, 0.95), "char_ratio": (0.40, 0.98), "none": (0.55, 0.95)}
# final: the combo's result against the original; each-step (the original tool's filter): also every step's output
# against that step's input, so every method of a combo must itself make an in-range change.
QUALITY_SCOPES = ("final", "each-step")
EMBEDDING_BACKENDS = ("auto", "torch", "onnx")
COMBO_MODES = ("single", "bounded_k", "all")
# The original tool's names for combo modes, accepted as they are.
COMBO_MODE_ALIASES = {"singletons": "single"}
EXECUTORS = ("local", "dask", "dask-local")
SAVE_FORMATS = ("parquet", "csv")
# A row's candidates of one chunk are held together (chunk_size x variants x max candidates): 1,000 variants of 256
# rows and 3 candidates is 768,000 texts in memory per shard, past which a run is a memory error, not a dataset.
MAX_VARIANTS_PER_SAMPLE = 1000
# A plan of more combos than this (and any `--combo-mode all`) needs --confirm-powerset, as in the original tool.
POWERSET_CONFIRM_ABOVE = 10_000

# Bumped whenever the way a variant is produced changes, so old outputs are recomputed, never reused.
# 2: a variant equal to the original or to another variant of its row, ignoring case and surrounding space, is a
#    duplicate (the original tool's casefold().strip() rule).
ALGORITHM_VERSION = 2
# run.yaml's one key that is not a setting (its provenance): a config file may hold it; the loader skips it.
RUN_RECORD_KEY = "augshard"


def _encodes(cfg: RunConfig) -> bool:
    """Whether the run encodes texts (the embedding filter or the label check): only then do backend and device
    change its scores."""
    return cfg.quality_metric == "embedding" or bool(cfg.label_col)


def resolved_backend(s: Setting, cfg: RunConfig) -> Any:
    """The backend as resolved (`auto` is decided when a run is prepared); torch runs keep their fingerprints."""
    return cfg.embedding_backend if _encodes(cfg) and cfg.embedding_backend != "torch" else OMIT


def device_kind(s: Setting, cfg: RunConfig) -> Any:
    """A GPU's scores differ from the CPU's in the last digits: its data is its own (any cuda:N is "cuda")."""
    return "cuda" if _encodes(cfg) and cfg.device.startswith("cuda") else OMIT


def _method_ids(flag: str) -> Callable[[Any], tuple[str, ...]]:
    def parse(value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            return tuple(m.strip() for m in value.split(",") if m.strip())
        if isinstance(value, (list, tuple)):
            return tuple(str(m).strip() for m in value)
        raise ConfigError(f"{flag}: expected method ids (a string or a list), got {value!r}")

    return parse


def _costs_path(value: Any) -> str | None:
    """`calibrate: true` in a config file means the default costs file; false or empty means the catalogue's costs."""
    if value is True:
        return DEFAULT_COSTS_PATH
    if value is None or value is False or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise ConfigError(f"--calibrate: expected a path to a method costs file, got {value!r}")
    return os.fspath(value)


NAMES_A_COLUMN = Check(bool, "{flag} must name a column")


@dataclass(frozen=True)
class RunConfig:
    """Everything one `augshard run` needs; frozen so a plan can be fingerprinted and shipped to workers. Each field
    is a declared setting (core/settings.py): a flag of `augshard run`, a key of conf/augshard.yaml, a keyword of
    the API; `fingerprint` says how it changes a combo's outputs, or it is in NOT_IN_FINGERPRINT."""

    input: str | None = setting(None, "Input dataset (CSV or Parquet).")
    text_col: str = setting("text", "Column holding the text.", checks=(NAMES_A_COLUMN,), fingerprint=always)
    evidence_col: str | None = setting(None, "Column holding the evidence span (optional).", fingerprint=always)
    id_col: str | None = setting(None, "Column holding a unique row id (optional).", fingerprint=always)
    methods_config: str = setting(
        DEFAULT_METHODS_CONFIG, "Method catalogue.", flags=("--methods-config", "--methods-yaml")
    )
    output_root: str = setting(DEFAULT_OUTPUT_ROOT, "Where combo folders and manifests go.")
    cache_dir: str = setting(DEFAULT_CACHE_DIR, "Per-shard SQLite caches.")
    log_dir: str = setting(DEFAULT_LOG_DIR, "Per-shard logs and event streams.")
    # None is `auto`: min(CPU cores, combos to run), decided when the run is prepared.
    num_shards: int | None = setting(
        None, "Shards, or 'auto' = min(CPU cores, combos to run).", flags=("--num-shards", "--num-proc"), low=1,
        auto=True, shown="auto",
    )  # fmt: skip
    variants_per_sample: int = setting(
        2, "Variants per row and combo.", low=1, high=MAX_VARIANTS_PER_SAMPLE, fingerprint=always
    )
    # None: the metric's own default range (DEFAULT_RANGES), filled in when the config is made.
    quality_min_sim: float | None = setting(
        None, "Lowest accepted similarity.", low=0.0, high=1.0, shown="embedding 0.55, char_ratio 0.40",
        fingerprint=always,
    )  # fmt: skip
    quality_max_sim: float | None = setting(
        None, "Highest accepted similarity.", low=0.0, high=1.0, shown="embedding 0.95, char_ratio 0.98",
        fingerprint=always,
    )  # fmt: skip
    quality_metric: str = setting(
        "embedding", "how a variant's similarity to its original is measured.", choices=QUALITY_METRICS,
        fingerprint=always,
    )  # fmt: skip
    quality_scope: str = setting(
        "final", "each-step also judges every step against its input, as the original tool.",
        choices=QUALITY_SCOPES, fingerprint=unless_default,
    )  # fmt: skip
    seed: int = setting(42, "Seed of every random call.", fingerprint=always)
    combo_mode: str = setting(
        "bounded_k", "which combos of methods run.", choices=COMBO_MODES, aliases=tuple(COMBO_MODE_ALIASES.items())
    )
    max_combo_size: int = setting(2, "Largest combo with bounded_k.", low=1)
    # Method ids, shell-style patterns or `all`; None = the whole catalogue. exclude_methods: ids or patterns.
    methods: tuple[str, ...] | None = setting(
        None, "Method ids, shell patterns or 'all', comma-separated.", parse=_method_ids("--methods")
    )
    exclude_methods: tuple[str, ...] = setting(
        (), "Ids or patterns to leave out, comma-separated.", parse=_method_ids("--exclude-methods")
    )
    confirm_powerset: bool = setting(False, "Allow --combo-mode all, or any plan of over 10,000 combos.")
    max_candidates_per_variant: int = setting(
        3, "Candidates tried per wanted variant before a row settles for fewer variants.", flags=(), low=1,
        fingerprint=always,
    )  # fmt: skip
    chunk_size: int = setting(
        256, "Rows per chunk: candidates of one chunk are generated, scored and written together.", flags=(),
        low=1, fingerprint=always,
    )  # fmt: skip
    embedding_model: str | None = setting(
        None, "Sentence model directory of the embedding metric.", flags=(), shown="the bundled MiniLM",
        fingerprint=always,
    )  # fmt: skip
    embedding_batch_size: int = setting(64, "Texts encoded per batch.", flags=(), low=1)
    # auto = ONNX Runtime on the CPU when augshard[onnx] is installed, torch on a GPU; onnx is an export of the same
    # model, made once: same decisions, several times torch's speed.
    embedding_backend: str = setting(
        "auto", "how the embedding model runs; auto = onnx on the CPU, torch on a GPU.",
        choices=EMBEDDING_BACKENDS, fingerprint=resolved_backend,
    )  # fmt: skip
    device: str = setting(
        "auto", "auto | cpu | cuda | cuda:N, for the similarity model and model methods (auto: CUDA when torch sees "
        "a GPU).", fingerprint=device_kind,
    )  # fmt: skip
    gpu_slots: int = setting(1, "Shards that may hold GPU models at once (methods with requires_gpu).", low=1)
    max_retries: int = setting(2, "Restarts of a shard whose process died (killed, out of memory, a crash).", low=0)
    executor: str = setting("local", "where shards run: local processes or a Dask cluster.", choices=EXECUTORS)
    scheduler: str | None = setting(None, "Dask scheduler address for --executor dask.")
    force: bool = setting(False, "Recompute combos that are already complete.")
    # Work stealing: a shard that runs out of combos takes the last ones of the others (a run of every shard).
    steal: bool = setting(
        True, "Keep every combo on the shard the plan gave it (no work stealing).", flags=("--no-steal",)
    )
    shard_index: int | None = setting(None, "Run only shard I of N (job arrays); no merge.")
    keep_shards: bool = setting(False, "Keep the shard manifests after merging.")
    output_name: str = setting(DEFAULT_OUTPUT_NAME, "The merged manifest's file name, in the output root.", flags=())
    save_format: str = setting(
        "parquet", "csv also writes dataset.csv beside the Parquet.", choices=SAVE_FORMATS,
        fingerprint=unless_default,
    )  # fmt: skip
    keep_vectors: bool = setting(
        False, "Also write vectors.parquet in each combo folder: the embedding filter's vector of every variant.",
        fingerprint=unless_default,
    )  # fmt: skip
    disk_cache: str | None = setting(None, "One SQLite cache file for every shard instead.")
    # label_col and criterion_col: columns the original tool passed through by name (augshard keeps every input
    # column anyway); label_col also names the labels of the label-preservation check.
    label_col: str | None = setting(
        None, "Column holding the label: every variant gets label_pred and label_agrees.", fingerprint=if_set
    )
    criterion_col: str | None = setting(None, "The original tool's passthrough column.")
    split_col: str | None = setting(
        None, "Column holding each row's split (train, test, ...): only the --augment-split rows get variants.",
        checks=(NAMES_A_COLUMN,), fingerprint=if_set,
    )  # fmt: skip
    augment_split: tuple[str, ...] = setting(
        ("train",), "With --split-col: the split value(s) to augment, repeatable or comma-separated.",
        parse=settings.items, repeatable=True, checks=(Check(bool, "{flag} is empty: name the values to augment"),),
        fingerprint=settings.only_with("split_col"),
    )  # fmt: skip
    balance: bool = setting(
        False, "Give the rows of short classes more variants, so each class's originals plus variants reach "
        "--balance-target (needs --label-col).", fingerprint=unless_default,
    )  # fmt: skip
    balance_target: int | None = setting(
        None, "With --balance: the originals plus variants each class reaches.", low=1, shown="the largest class",
        fingerprint=settings.only_with("balance"),
    )  # fmt: skip
    max_variants_per_sample: int = setting(
        10, "With --balance: the most variants one row asks for.", low=1, high=MAX_VARIANTS_PER_SAMPLE,
        fingerprint=settings.only_with("balance"),
    )  # fmt: skip
    variants_per_class: tuple[str, ...] = setting(
        (), "Variants per row of class LABEL, as LABEL=N, repeatable or comma-separated (needs --label-col); other "
        "classes get --variants-per-sample, or --balance's count.", parse=settings.label_counts, repeatable=True,
        fingerprint=if_set,
    )  # fmt: skip
    # Measured method costs only balance the shards (the plan fingerprint records the costs it used).
    calibrate: str | None = setting(
        None, "Balance shards with measured costs from this `methods --bench` file.", parse=_costs_path
    )
    config_path: str | None = field(default=None, compare=False)
    origin: Origin = field(default=Origin(), compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "origin", Origin.of(self.origin))  # a shard job's config comes back as JSON
        low, high = DEFAULT_RANGES.get(self.quality_metric, DEFAULT_RANGES["embedding"])
        if self.quality_min_sim is None:
            object.__setattr__(self, "quality_min_sim", low)
        if self.quality_max_sim is None:
            object.__setattr__(self, "quality_max_sim", high)

    @property
    def default_range(self) -> bool:
        """Whether the accepted range is the metric's default (what the run header says)."""
        return DEFAULT_RANGES.get(self.quality_metric) == (self.quality_min_sim, self.quality_max_sim)

    def fingerprint(self) -> str:
        """A hash of every setting that changes a combo's output, each as its declaration's rule says (not where
        outputs go, nor shard counts: NOT_IN_FINGERPRINT)."""
        payload = {s.name: value for s in RUN if s.fingerprint and (value := s.fingerprint(s, self)) is not OMIT}
        payload["algorithm"] = ALGORITHM_VERSION
        return sha(payload, compact=True)


RUN = Table.of(RunConfig, "setting", internal=("config_path", "origin"))
# The settings that never change a combo's output, left out of fingerprint() (as datasets' `ignore_kwargs`): where
# things go, which combos run and how they are spread, what is forced or kept. Every other one declares its rule.
NOT_IN_FINGERPRINT = (
    "input", "methods_config", "output_root", "cache_dir", "log_dir", "num_shards", "combo_mode", "max_combo_size",
    "methods", "exclude_methods", "confirm_powerset", "embedding_batch_size", "gpu_slots", "max_retries", "executor",
    "scheduler", "force", "steal", "shard_index", "keep_shards", "output_name", "disk_cache", "criterion_col",
    "calibrate",
)  # fmt: skip


def resolve_conf_path(path: str | None, default: str) -> Path:
    """A path given by the user must exist; the default falls back to the copy shipped in the package."""
    if path is not None and path != default:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        return p
    p = Path(default)
    if p.is_file():
        return p
    return PACKAGE_CONF / Path(default).name


def _load_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}:{where}: malformed YAML ({problem})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    return data


def file_settings(config: str | None, cli_input: bool) -> tuple[Path, dict[str, Any]]:
    """The config file in use (`--config`, else conf/augshard.yaml here, else the shipped one) and its settings."""
    path = resolve_conf_path(config, DEFAULT_CONFIG)
    file_values = _load_yaml(path) if path.is_file() else {}
    values: dict[str, Any] = {}
    file_values = _flatten_input(file_values, path, cli_input=cli_input)
    for key, value in file_values.items():
        key = key.replace("-", "_")
        if key == RUN_RECORD_KEY:  # run.yaml's provenance: what made the run, not a setting of it
            continue
        if key not in RUN.names:
            raise ConfigError(f"{path}: unknown setting '{key}' (known: {', '.join(sorted(RUN.names))})")
        values[key] = value
    # Input files named in the config file are relative to that file, so a shipped config finds its sample.
    base = path.resolve().parent
    for key in ("input", "methods_config"):
        if isinstance(values.get(key), str) and not Path(values[key]).is_absolute():
            values[key] = os.path.normpath(base / values[key])
    return path, values


def load_config(
    config: str | None = None, overrides: dict[str, Any] | None = None, command: tuple[str, ...] = ()
) -> RunConfig:
    """Defaults, then the YAML config file, then the non-None overrides (CLI flags, or the API's keywords); then
    validate. `command`: the command line of `augshard run` (its overrides are flags), empty for the API."""
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    path, values = file_settings(config, cli_input="input" in overrides)
    if "methods_config" in overrides and "methods" not in overrides:
        # The file's `methods` name entries of its own catalogue: a catalogue given with --methods-yaml (the original
        # tool's flag) runs every one of its entries, as the original tool did, unless --methods says otherwise.
        values.pop("methods", None)
    values.update(overrides)
    unknown = sorted(set(values) - set(RUN.names))
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(unknown)}")
    values = coerce_settings(values)
    cfg = RunConfig(**values, config_path=str(path), origin=Origin.made(command, values, overrides))
    validate(cfg)
    return cfg


INPUT_KEYS = ("path", "text_col", "evidence_col", "id_col", "label_col", "split_col")


def _flatten_input(file_values: dict[str, Any], path: Path, cli_input: bool) -> dict[str, Any]:
    """`input:` may be a mapping {path, text_col, evidence_col, id_col}: the columns belong to that file, so
    when --input names another file they are not applied to it (flags still set columns explicitly)."""
    spec = file_values.get("input")
    if not isinstance(spec, dict):
        return file_values
    unknown = set(spec) - set(INPUT_KEYS)
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) under 'input': {', '.join(sorted(unknown))} (allowed: {', '.join(INPUT_KEYS)})"
        )
    out = {k: v for k, v in file_values.items() if k != "input"}
    if cli_input:
        return out
    if "path" in spec:
        out["input"] = spec["path"]
    out.update({k: spec[k] for k in INPUT_KEYS[1:] if k in spec})
    return out


def coerce_settings(values: dict[str, Any]) -> dict[str, Any]:
    """Settings as a file, flags or the API give them (text, lists) turned into RunConfig's types, as each one's
    declaration says (`Setting.coerce`); an unknown one is left for the caller to name."""
    return {k: RUN[k].coerce(v) if k in RUN.names else v for k, v in values.items()}


def auto_shards(todo: int) -> tuple[int, str]:
    """The shard count of `--num-shards auto`, and why: one per CPU core, no more than there are combos to run."""
    cores = os.cpu_count() or 1
    n = max(1, min(cores, todo))
    why = f"auto: {cores} CPU core{'s' if cores != 1 else ''}"
    if n < cores:
        why += f", {todo} combo{'s' if todo != 1 else ''} to run"
    return n, why


def validate(cfg: RunConfig) -> None:
    """Every setting against its declaration (type, choices, bounds, checks), then the rules across settings."""
    RUN.check(cfg)
    for rule in RULES:
        rule(cfg)


def _has_input(cfg: RunConfig) -> None:
    if not cfg.input:
        raise ConfigError("no input dataset: pass --input FILE or set 'input' in the config file")


def _shard_index_in_range(cfg: RunConfig) -> None:
    """A job of an array runs shard I of an explicit N: every job must plan the same shards."""
    if cfg.shard_index is None:
        return
    if cfg.num_shards is None:
        raise ConfigError(
            "--shard-index needs an explicit --num-shards (every job of the array must plan the same shards)"
        )
    if not 0 <= cfg.shard_index < cfg.num_shards:
        raise ConfigError(
            f"--shard-index must be in 0..{cfg.num_shards - 1} for --num-shards {cfg.num_shards}, got {cfg.shard_index}"
        )


def _range_in_order(cfg: RunConfig) -> None:
    if cfg.quality_min_sim > cfg.quality_max_sim:
        raise ConfigError(
            f"--quality-min-sim ({cfg.quality_min_sim}) is greater than --quality-max-sim ({cfg.quality_max_sim})"
        )


def _vectors_need_embedding(cfg: RunConfig) -> None:
    if cfg.keep_vectors and cfg.quality_metric != "embedding":
        raise ConfigError(
            f"--keep-vectors keeps the embedding filter's vectors, and --quality-metric {cfg.quality_metric} makes "
            "none: use --quality-metric embedding"
        )


def _dask_needs_scheduler(cfg: RunConfig) -> None:
    if cfg.executor == "dask" and not cfg.scheduler:
        raise ConfigError("--executor dask needs --scheduler tcp://HOST:8786 (the address of the cluster's scheduler)")


def _methods_named_once(cfg: RunConfig) -> None:
    if cfg.methods is None:
        return
    if not cfg.methods:
        raise ConfigError("--methods is empty: name at least one method id")
    dupes = sorted({m for m in cfg.methods if cfg.methods.count(m) > 1})
    if dupes:
        raise ConfigError(f"--methods names {', '.join(dupes)} more than once")


def _balance_needs_labels(cfg: RunConfig) -> None:
    if (cfg.balance or cfg.variants_per_class) and not cfg.label_col:
        flag = "--balance" if cfg.balance else "--variants-per-class"
        raise ConfigError(f"{flag} needs --label-col: the column holding each row's class")
    shaped = cfg.balance_target is not None or cfg.max_variants_per_sample != RUN["max_variants_per_sample"].default
    if shaped and not cfg.balance:
        raise ConfigError("--balance-target and --max-variants-per-sample only shape --balance: add --balance")


# The rules a single setting's declaration cannot say, each checked after every setting passed its own.
RULES = (_shard_index_in_range, _range_in_order, _vectors_need_embedding, _dask_needs_scheduler, _has_input,
         _methods_named_once, _balance_needs_labels)  # fmt: skip
