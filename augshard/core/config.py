"""RunConfig: built-in defaults <- conf/augshard.yaml <- CLI flags, validated, with a fingerprint."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from augshard.core.errors import ConfigError
from augshard.core.fingerprint import sha

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


@dataclass(frozen=True)
class RunConfig:
    """Everything one `augshard run` needs; frozen so a plan can be fingerprinted and shipped to workers."""

    input: str | None = None
    text_col: str = "text"
    evidence_col: str | None = None
    id_col: str | None = None
    methods_config: str = DEFAULT_METHODS_CONFIG
    output_root: str = DEFAULT_OUTPUT_ROOT
    cache_dir: str = DEFAULT_CACHE_DIR
    log_dir: str = DEFAULT_LOG_DIR
    # None is `auto`: min(CPU cores, combos to run), decided when the run is prepared.
    num_shards: int | None = None
    variants_per_sample: int = 2
    # None: the metric's own default range (DEFAULT_RANGES), filled in when the config is made.
    quality_min_sim: float | None = None  # type: ignore[assignment]
    quality_max_sim: float | None = None  # type: ignore[assignment]
    quality_metric: str = "embedding"
    quality_scope: str = "final"
    seed: int = 42
    combo_mode: str = "bounded_k"
    max_combo_size: int = 2
    # Method ids, shell-style patterns or `all`; None = the whole catalogue. exclude_methods: ids or patterns.
    methods: tuple[str, ...] | None = None
    exclude_methods: tuple[str, ...] = ()
    confirm_powerset: bool = False
    # Candidates tried per wanted variant before a row settles for fewer variants.
    max_candidates_per_variant: int = 3
    # Rows per chunk: candidates of one chunk are generated, scored and written together.
    chunk_size: int = 256
    embedding_model: str | None = None
    embedding_batch_size: int = 64
    # How the embedding model runs: auto = ONNX Runtime on the CPU when augshard[onnx] is installed, torch on a
    # GPU; torch; or onnx (an export of the same model, made once; same decisions, several times torch's speed).
    embedding_backend: str = "auto"
    # Where the similarity model and the model methods run: auto (CUDA when torch sees a GPU), cpu, cuda, cuda:N.
    device: str = "auto"
    # Shards that may hold GPU models at once (methods with requires_gpu, when CUDA is present).
    gpu_slots: int = 1
    # Restarts of a shard whose worker process died (killed, out of memory, a crash in a native library).
    max_retries: int = 2
    # Where shards run: local processes, a Dask cluster (`scheduler` address) or a LocalCluster (dask-local).
    executor: str = "local"
    scheduler: str | None = None
    force: bool = False
    # Work stealing: a shard that runs out of combos takes the last ones of the others (a run of every shard).
    steal: bool = True
    shard_index: int | None = None
    keep_shards: bool = False
    output_name: str = DEFAULT_OUTPUT_NAME
    # `csv` also writes dataset.csv beside each dataset.parquet (the original tool's --save-format csv).
    save_format: str = "parquet"
    # Each combo folder also holds vectors.parquet: the embedding filter's vector of every variant it wrote, so a
    # later step (`augshard evaluate --features embedding`) need not encode them again. Needs the embedding metric.
    keep_vectors: bool = False
    # One SQLite cache file for every shard instead of data/cache/augment_shard{i}.db (the original's --disk-cache).
    disk_cache: str | None = None
    # Columns the original tool passed through by name; augshard keeps every input column anyway. label_col also
    # names the labels of the label-preservation check.
    label_col: str | None = None
    criterion_col: str | None = None
    # Measured method costs (a `methods --bench` file) for balancing shards; never changes outputs, so it is
    # not in fingerprint() (the plan fingerprint records the costs it used).
    calibrate: str | None = None
    config_path: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
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
        """A hash of every setting that changes a combo's output (not where outputs go, nor shard counts)."""
        keys = (
            "text_col",
            "evidence_col",
            "id_col",
            "variants_per_sample",
            "quality_min_sim",
            "quality_max_sim",
            "quality_metric",
            "seed",
            "max_candidates_per_variant",
            "chunk_size",
            "embedding_model",
        )
        payload = {k: getattr(self, k) for k in keys}
        if self.quality_scope != "final":  # final runs keep the fingerprints they always had
            payload["quality_scope"] = self.quality_scope
        if self.label_col:  # the label check adds label_pred and label_agrees to every dataset
            payload["label_col"] = self.label_col
        if self.quality_metric == "embedding" or self.label_col:
            # The backend as resolved (`auto` is decided when a run is prepared); torch runs keep the fingerprints
            # they always had. A GPU's scores differ from the CPU's in the last digits: its data is its own.
            if self.embedding_backend != "torch":
                payload["embedding_backend"] = self.embedding_backend
            if self.device.startswith("cuda"):
                payload["device"] = "cuda"
        if self.save_format != "parquet":  # a combo folder then holds dataset.csv too
            payload["save_format"] = self.save_format
        if self.keep_vectors:  # a combo folder then holds vectors.parquet too: one made without it is not complete
            payload["keep_vectors"] = True
        payload["algorithm"] = ALGORITHM_VERSION
        return sha(payload, compact=True)


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


_FIELDS = {f.name: f for f in dataclasses.fields(RunConfig) if f.name != "config_path"}


def _file_settings(config: str | None, cli_input: bool) -> tuple[Path, dict[str, Any]]:
    """The config file in use (`--config`, else conf/augshard.yaml here, else the shipped one) and its settings."""
    path = resolve_conf_path(config, DEFAULT_CONFIG)
    file_values = _load_yaml(path) if path.is_file() else {}
    values: dict[str, Any] = {}
    file_values = _flatten_input(file_values, path, cli_input=cli_input)
    for key, value in file_values.items():
        key = key.replace("-", "_")
        if key not in _FIELDS:
            raise ConfigError(f"{path}: unknown setting '{key}' (known: {', '.join(sorted(_FIELDS))})")
        values[key] = value
    # Input files named in the config file are relative to that file, so a shipped config finds its sample.
    base = path.resolve().parent
    for key in ("input", "methods_config"):
        if isinstance(values.get(key), str) and not Path(values[key]).is_absolute():
            values[key] = os.path.normpath(base / values[key])
    return path, values


def load_config(config: str | None = None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Defaults, then the YAML config file, then the non-None overrides (CLI flags); then validate."""
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    path, values = _file_settings(config, cli_input="input" in overrides)
    if "methods_config" in overrides and "methods" not in overrides:
        # The file's `methods` name entries of its own catalogue: a catalogue given with --methods-yaml (the original
        # tool's flag) runs every one of its entries, as the original tool did, unless --methods says otherwise.
        values.pop("methods", None)
    values.update(overrides)
    unknown = sorted(set(values) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(unknown)}")
    values = coerce_settings(values)
    cfg = RunConfig(**values, config_path=str(path))
    validate(cfg)
    return cfg


@dataclass(frozen=True)
class RunPaths:
    """Where a run's files are: what `run` writes to and every command that reads a run looks in."""

    output_root: str = DEFAULT_OUTPUT_ROOT
    output_name: str = DEFAULT_OUTPUT_NAME
    cache_dir: str = DEFAULT_CACHE_DIR
    log_dir: str = DEFAULT_LOG_DIR


def run_paths(
    config: str | None = None,
    *,
    output_root: str | None = None,
    output_name: str | None = None,
    cache_dir: str | None = None,
    log_dir: str | None = None,
) -> RunPaths:
    """The run's paths as `run` resolves them: built-in defaults <- the config file (`--config`, else
    conf/augshard.yaml here) <- the flags given (None: not given). The file's other settings are checked as `run`
    checks them (an unknown one is an error) but not used."""
    path, values = _file_settings(config, cli_input=False)
    flags = {"output_root": output_root, "output_name": output_name, "cache_dir": cache_dir, "log_dir": log_dir}
    chosen: dict[str, str] = {}
    for key, flag in flags.items():
        value = flag if flag is not None else values.get(key)
        if value is None:
            continue
        if not isinstance(value, (str, os.PathLike)):
            raise ConfigError(f"{path}: '{key}' must be a path, got {value!r}")
        chosen[key] = os.fspath(value)
    return RunPaths(**chosen)


INPUT_KEYS = ("path", "text_col", "evidence_col", "id_col", "label_col")


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
    """Settings as a file or flags give them (strings, lists) turned into RunConfig's types."""
    out = dict(values)
    if "num_shards" in out:
        out["num_shards"] = parse_num_shards(out["num_shards"])
    for key in ("methods", "exclude_methods"):
        if isinstance(out.get(key), str):
            out[key] = tuple(m.strip() for m in out[key].split(",") if m.strip())
        elif isinstance(out.get(key), (list, tuple)):
            out[key] = tuple(str(m).strip() for m in out[key])
        elif out.get(key) is not None:
            raise ConfigError(f"{_flag(key)}: expected method ids (a string or a list), got {out[key]!r}")
    if isinstance(out.get("combo_mode"), str):
        out["combo_mode"] = COMBO_MODE_ALIASES.get(out["combo_mode"], out["combo_mode"])
    for key in ("quality_min_sim", "quality_max_sim"):
        if key in out:
            out[key] = _number(key, out[key], float)
    for key in (
        "variants_per_sample",
        "seed",
        "max_combo_size",
        "max_candidates_per_variant",
        "chunk_size",
        "embedding_batch_size",
        "gpu_slots",
        "max_retries",
    ):
        if key in out:
            out[key] = _number(key, out[key], int)
    if out.get("shard_index") is not None:
        out["shard_index"] = _number("shard_index", out["shard_index"], int)
    if "calibrate" in out:
        out["calibrate"] = _costs_path(out["calibrate"])
    return out


def _costs_path(value: Any) -> str | None:
    """`calibrate: true` in a config file means the default costs file; false or empty means the catalogue's costs."""
    if value is True:
        return DEFAULT_COSTS_PATH
    if value is None or value is False or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise ConfigError(f"--calibrate: expected a path to a method costs file, got {value!r}")
    return os.fspath(value)


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _number(key: str, value: Any, kind: type) -> Any:
    if isinstance(value, bool):
        raise ConfigError(f"{_flag(key)}: expected a number, got {value!r}")
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{_flag(key)}: expected {'an integer' if kind is int else 'a number'}, got {value!r}"
        ) from None
    if kind is int and isinstance(value, float) and value != number:
        raise ConfigError(f"{_flag(key)}: expected an integer, got {value!r}")
    return number


def parse_num_shards(value: Any) -> int | None:
    """`auto` (None) is decided when the run is prepared: min(CPU cores, combos to run)."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    return _number("num_shards", value, int)


def auto_shards(todo: int) -> tuple[int, str]:
    """The shard count of `--num-shards auto`, and why: one per CPU core, no more than there are combos to run."""
    cores = os.cpu_count() or 1
    n = max(1, min(cores, todo))
    why = f"auto: {cores} CPU core{'s' if cores != 1 else ''}"
    if n < cores:
        why += f", {todo} combo{'s' if todo != 1 else ''} to run"
    return n, why


# The JSON/YAML types of RunConfig's plain fields: an API call or a config file giving another is a ConfigError.
_KINDS: dict[str, tuple[Any, str]] = {"str": (str, "a string"), "str | None": ((str, type(None)), "a string"),
                                      "bool": (bool, "true or false"), "int": (int, "an integer"),
                                      "int | None": ((int, type(None)), "an integer"),
                                      "float | None": ((int, float), "a number")}  # fmt: skip


def validate(cfg: RunConfig) -> None:
    for f in _FIELDS.values():
        value, (kind, expected) = getattr(cfg, f.name), _KINDS.get(str(f.type), (object, ""))
        if not isinstance(value, kind):
            raise ConfigError(f"{f.name} ({_flag(f.name)}): expected {expected}, got {value!r}")
    if cfg.num_shards is not None and cfg.num_shards < 1:
        raise ConfigError(f"--num-shards must be at least 1 (or 'auto'), got {cfg.num_shards}")
    if cfg.shard_index is not None and cfg.num_shards is None:
        raise ConfigError(
            "--shard-index needs an explicit --num-shards (every job of the array must plan the same shards)"
        )
    if cfg.shard_index is not None and cfg.num_shards is not None and not 0 <= cfg.shard_index < cfg.num_shards:
        raise ConfigError(
            f"--shard-index must be in 0..{cfg.num_shards - 1} for --num-shards {cfg.num_shards}, got {cfg.shard_index}"
        )
    if not 1 <= (n := cfg.variants_per_sample) <= MAX_VARIANTS_PER_SAMPLE:
        raise ConfigError(f"--variants-per-sample must be at least 1 and at most {MAX_VARIANTS_PER_SAMPLE:,}, got {n}")
    for key in ("quality_min_sim", "quality_max_sim"):
        value = getattr(cfg, key)
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{_flag(key)} must be within [0, 1], got {value}")
    if cfg.quality_min_sim > cfg.quality_max_sim:
        raise ConfigError(
            f"--quality-min-sim ({cfg.quality_min_sim}) is greater than --quality-max-sim ({cfg.quality_max_sim})"
        )
    for key, allowed in (("quality_scope", QUALITY_SCOPES), ("quality_metric", QUALITY_METRICS),
                         ("embedding_backend", EMBEDDING_BACKENDS), ("combo_mode", COMBO_MODES),
                         ("save_format", SAVE_FORMATS), ("executor", ("local", "dask", "dask-local"))):  # fmt: skip
        if getattr(cfg, key) not in allowed:
            aka = " (or singletons)" if key == "combo_mode" else ""
            raise ConfigError(f"{_flag(key)} must be one of {', '.join(allowed)}{aka}, got '{getattr(cfg, key)}'")
    if not isinstance(cfg.keep_vectors, bool):
        raise ConfigError(f"keep_vectors: expected true or false, got {cfg.keep_vectors!r}")
    if cfg.keep_vectors and cfg.quality_metric != "embedding":
        raise ConfigError(
            f"--keep-vectors keeps the embedding filter's vectors, and --quality-metric {cfg.quality_metric} makes "
            "none: use --quality-metric embedding"
        )
    if cfg.max_combo_size < 1:
        raise ConfigError(f"--max-combo-size must be at least 1, got {cfg.max_combo_size}")
    if cfg.max_candidates_per_variant < 1:
        raise ConfigError("max_candidates_per_variant must be at least 1")
    if cfg.executor == "dask" and not cfg.scheduler:
        raise ConfigError("--executor dask needs --scheduler tcp://HOST:8786 (the address of the cluster's scheduler)")
    if cfg.max_retries < 0:
        raise ConfigError(f"--max-retries must be 0 or more, got {cfg.max_retries}")
    if cfg.gpu_slots < 1:
        raise ConfigError(f"--gpu-slots must be at least 1, got {cfg.gpu_slots}")
    if cfg.chunk_size < 1 or cfg.embedding_batch_size < 1:
        raise ConfigError("chunk_size and embedding_batch_size must be at least 1")
    if not cfg.input:
        raise ConfigError("no input dataset: pass --input FILE or set 'input' in the config file")
    if not cfg.text_col:
        raise ConfigError("--text-col must name a column")
    if cfg.methods is not None:
        if not cfg.methods:
            raise ConfigError("--methods is empty: name at least one method id")
        dupes = sorted({m for m in cfg.methods if cfg.methods.count(m) > 1})
        if dupes:
            raise ConfigError(f"--methods names {', '.join(dupes)} more than once")
