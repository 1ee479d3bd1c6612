"""What an export is: its options, what it made (counts per combo, labels, files) and the facts export.json holds
(`ExportFacts` and its typed rows, which the API returns as `ExportResult`), shared by the export itself
(`export.py`), its dataset card (`card.py`), `evaluate --export` and the API."""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from augshard.core.config import DEFAULT_CACHE_DIR, DEFAULT_LOG_DIR, DEFAULT_OUTPUT_NAME, DEFAULT_OUTPUT_ROOT
from augshard.core.errors import ConfigError
from augshard.core.settings import REQUIRED, Check, Table, items, numbers, setting
from augshard.events.notebook import Tabular
from augshard.storage.meta import ComboMeta
from augshard.storage.outcome import ComboOutcome, Status

DEDUPE_MODES = ("none", "exact", "near")
FACTS = "export.json"
MADE_BY = "augshard export"  # export.json's `made_by`: the mark of a folder `--force` may replace
IN_UNIT = "{flag} must be in (0, 1], got {value}"
SIZES = "--k: expected sizes like 1,2"


@dataclass(frozen=True)
class ExportOptions:
    """What `augshard export` is asked to do; each field a declared setting (core/settings.py): a flag, an API
    keyword, checked by `check` before anything is read."""

    to: Path = setting(REQUIRED, "The folder to write (refused when it exists and is not empty).")
    output_root: Path = setting(Path(DEFAULT_OUTPUT_ROOT), "The run's output root.")
    output_name: str = setting(DEFAULT_OUTPUT_NAME, "The run's merged manifest.")
    dedupe: str = setting("exact", "near is MinHash LSH.", choices=DEDUPE_MODES)
    near_threshold: float = setting(
        0.9, "Jaccard similarity of a near duplicate.", checks=(Check(lambda v: 0 < v <= 1, IN_UNIT),)
    )
    drop_label_flips: bool = setting(False, "Leave out variants the label check predicts another label for.")
    include_originals: bool = setting(
        True, "Leave out the input rows (written by default, as k 0).", flags=("--no-originals",)
    )
    # Empty: every ok combo (or those of `k`).
    combos: tuple[str, ...] = setting(
        (), "Only these combos: ids, folder names or methods as shown (nlp_keyboard+nlp_ocr), comma-separated.",
        parse=items,
    )  # fmt: skip
    k: tuple[int, ...] = setting((), "Only combos of these sizes, e.g. 1,2.", parse=numbers(int, SIZES))
    rows_per_file: int = setting(500_000, "Rows per Parquet file.", low=1, old_flags=("--shard-size",))
    allow_incomplete: bool = setting(False, "Export the complete combos of a run with failed or stopped ones.")
    force: bool = setting(False, "Replace --to if it exists and an earlier `augshard export` made it.")
    plan: str = setting("", "Export only the combos of this plan (its fingerprint), when a stopped run left two.")
    cache_dir: Path = setting(Path(DEFAULT_CACHE_DIR), "The run's cache folder (--to may not touch it).")
    log_dir: Path = setting(Path(DEFAULT_LOG_DIR), "The run's log folder (--to may not touch it).")
    chosen_by: str = ""  # how the combos were chosen, when not by the user (`--best`, `--min-gain`): for the card

    def check(self) -> None:
        """Every option against its declaration (the API takes keywords as they come: one ConfigError, not a
        TypeError), and the one rule across them."""
        EXPORT.check(self)
        if self.combos and self.k:
            raise ConfigError("--combos and --k both select combos: give one of them")


EXPORT = Table.of(ExportOptions, "export option", internal=("chosen_by",))


# --- export.json's rows: each a typed record, built here and read back here ---------------------------------


def _record(cls: Any, value: Any, key: str) -> Any:
    """One of export.json's objects as its record: its known keys, a key an earlier export.json lacks as None;
    ValueError when it is not an object."""
    if not isinstance(value, dict):
        raise ValueError(f"{key} is not an object")
    return cls(**{f.name: value.get(f.name) for f in dataclasses.fields(cls)})


def _records(cls: Any, value: Any, key: str) -> tuple[Any, ...]:
    if not isinstance(value, list):
        raise ValueError(f"{key} is not a list")
    return tuple(_record(cls, v, key) for v in value)


def _plain(value: Any) -> Any:
    """A record as JSON values: objects in field order, tuples as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class ExportedCombo:
    """One combo's rows through an export (a row of export.json's `combos`, and of `export --format tsv`)."""

    combo_dir: str
    methods: str
    k: int
    rows: int
    exact_duplicates: int
    near_duplicates: int
    label_flips: int
    kept: int


@dataclass(frozen=True)
class Dropped:
    """The variants an export left out, by why (export.json's `dropped`)."""

    exact_duplicates: int = 0
    near_duplicates: int = 0
    label_flips: int = 0

    def __getitem__(self, key: str) -> int:
        """`dropped["exact_duplicates"]`, as when `dropped` was a dict: kept for one release."""
        warnings.warn(f'dropped["{key}"] is now dropped.{key}; the old form goes in the next release', FutureWarning, 2)
        return getattr(self, key)


@dataclass(frozen=True)
class ExportSettings:
    """How the export deduplicated and filtered (export.json's `export`)."""

    dedupe: str
    near_threshold: float | None
    normalisation: str
    near_compares: str
    drop_label_flips: bool
    include_originals: bool
    kept_twin: str
    chosen_by: str | None


@dataclass(frozen=True)
class MethodClass:
    lib: str | None
    kind: str | None


@dataclass(frozen=True)
class ExportLabelCheck:
    """The run's label check as the export states it (export.json's `label_check`)."""

    label_col: str
    classes: list[str]
    cv_accuracy: float
    majority_rate: float
    weak: bool


@dataclass(frozen=True)
class LeftOut:
    """A combo of the run not in the export: failed, stopped or another plan's (export.json's `left_out`)."""

    combo_dir: str
    status: str
    error: str

    @property
    def why(self) -> str:
        return self.error if self.status == Status.OK.value else self.status  # an ok one: another plan's


@dataclass(frozen=True)
class NotRun:
    """A combo of the plan that never ran: a method could not be built (export.json's `not_run`)."""

    combo_dir: str
    methods: str
    status: str
    error: str


@dataclass(frozen=True)
class SkippedRow:
    row: int  # 1-based, as a person counts the input's rows
    row_key: str
    reason: str


@dataclass(frozen=True)
class InputFacts:
    """The run's input as the export read it (export.json's `input`): rows, and those no combo could augment."""

    rows: int
    usable: int
    skipped: dict[str, int]  # reason -> rows
    skipped_rows: tuple[SkippedRow, ...]

    @classmethod
    def from_json(cls, value: Any) -> InputFacts:
        facts = _record(cls, value, "input")
        return dataclasses.replace(facts, skipped_rows=_records(SkippedRow, facts.skipped_rows or [], "skipped_rows"))


@dataclass(frozen=True)
class ExportBalance:
    """The run's variants per class (`run --balance`, `--variants-per-class`; export.json's `balance`)."""

    target: int | None  # None: --variants-per-class alone
    max_variants_per_sample: int | None
    per_row: dict[str, str]  # class -> the variants one of its rows asks for ("2", or "2-3")


@dataclass(frozen=True)
class ExportSplit:
    """The user's split of the run (`run --split-col`), as the export states it (export.json's `split`): variants
    exist only of rows whose `column` is one of `augmented`; the `held_out` other rows are originals only."""

    column: str
    augmented: list[str]
    held_out: int


# Said on the terminal and in the card when the run had no split column.
NO_SPLIT_WARNING = (
    "variants exist for every row of the input: a test split made from this set leaks test rows into training; to "
    'keep a test split clean, give the run `--split-col COL --augment-split train` (docs/cli.md, "Augment the '
    'training split only")'
)


@dataclass(frozen=True)
class ClassLabel:
    """The label column as a `datasets` ClassLabel (export.json's `class_label`)."""

    columns: list[str]
    names: list[str]


@dataclass
class ComboCount:
    """One combo's rows as the export goes through them."""

    combo_dir: str
    methods: str
    k: int
    rows: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    label_flips: int = 0

    def done(self) -> ExportedCombo:
        """The combo's row of export.json, once every one of its rows went through."""
        kept = self.rows - self.exact_duplicates - self.near_duplicates - self.label_flips
        return ExportedCombo(**dataclasses.asdict(self), kept=kept)


@dataclass
class Export:
    """What an export made: its counts, for the card, export.json and the command's summary."""

    options: ExportOptions
    metas: list[ComboMeta] = field(default_factory=list)
    counts: list[ExportedCombo] = field(default_factory=list)
    originals: int = 0  # rows of the input written (unless --no-originals)
    files: list[str] = field(default_factory=list)
    features: list[tuple[str, str]] = field(default_factory=list)
    labels_before: Counter = field(default_factory=Counter)  # of every row of the input file, usable or not
    labels_after: Counter = field(default_factory=Counter)
    skipped: list[ComboOutcome] = field(default_factory=list)  # not ok, left out with --allow-incomplete
    unavailable: list[ComboOutcome] = field(default_factory=list)  # never run: a method cannot be built there
    plan_fingerprint: str = ""  # of the plan whose manifest listed the combos
    input_rows: int = 0  # rows of the input file
    skipped_rows: list[tuple[int, str, str]] = field(default_factory=list)  # input rows no combo could augment

    @property
    def rows(self) -> int:
        return self.originals + sum(c.kept for c in self.counts)


# Fields whose JSON key is another word: the key stays as export.json has always written it.
_JSON_KEYS = {"plan_fingerprint": "plan", "combo_plan_fingerprints": "combo_plans", "left_out_combos": "left_out"}
# Keys added later, written only when known: an earlier export.json reads and writes back as it was.
_LATER = ("library_versions", "input_sha256", "split", "balance")
# Fields that are records (or lists of records) in export.json, each with its reader.
_READERS: dict[str, Any] = {
    "method_classes": lambda v: {m: _record(MethodClass, c, "method_classes") for m, c in _dict(v).items()},
    "export": lambda v: _record(ExportSettings, v, "export"),
    "combos": lambda v: _records(ExportedCombo, v, "combos"),
    "dropped": lambda v: _record(Dropped, v, "dropped"),
    "label_check": lambda v: _record(ExportLabelCheck, v, "label_check"),
    "left_out_combos": lambda v: _records(LeftOut, v, "left_out"),
    "not_run": lambda v: _records(NotRun, v, "not_run"),
    "input": InputFacts.from_json,
    "class_label": lambda v: _record(ClassLabel, v, "class_label"),
    "split": lambda v: _record(ExportSplit, v, "split"),
    "balance": lambda v: _record(ExportBalance, v, "balance"),
}


def _dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("method_classes is not an object")
    return value


@dataclass(frozen=True)
class ExportFacts(Tabular):
    """export.json (and `export --format json`), and what `augshard.export` returns: what went in, what was dropped
    and why, what came out. Field order is the printed document's key order (the file sorts its keys); `path`,
    where it was written, is not in the document. `to_pandas()`: its combos, one row each."""

    made_by: str
    plan_fingerprint: str  # the plan fingerprint of the manifest the combos came from (`plan` in the document)
    combo_plan_fingerprints: list[str]  # of the plans that wrote the combos (`combo_plans`)
    rows: int
    files: tuple[str, ...]  # relative to the export folder
    features: dict[str, str]  # column -> Arrow type
    source: dict[str, Any]  # meta.json's `source` of the combos (read by `evaluate --export` as it is)
    seed: int
    variants_per_sample: int
    quality: dict[str, Any]  # meta.json's `quality`, without the device (read by `evaluate --export` as it is)
    config_fingerprint: str
    methods: dict[str, Any]  # method -> its arguments
    method_classes: dict[str, MethodClass]
    export: ExportSettings
    originals: int
    combos: tuple[ExportedCombo, ...]
    dropped: Dropped
    label_check: ExportLabelCheck | None
    labels_before: dict[Any, int]  # label -> rows (JSON makes the keys strings)
    labels_after: dict[Any, int]
    left_out_combos: tuple[LeftOut, ...]  # `left_out`
    not_run: tuple[NotRun, ...]
    input: InputFacts
    class_label: ClassLabel | None
    library_versions: dict[str, str] | None = None  # library -> version(s) the combos were made with (meta.json's)
    input_sha256: str | None = None  # of the run's input file (also `source.sha256`)
    split: ExportSplit | None = None  # the run's --split-col; None: every row has variants
    balance: ExportBalance | None = None  # the run's variants per class; None: --variants-per-sample for every row
    path: Path | None = field(default=None, compare=False)  # the export's folder (not in export.json)

    @property
    def split_line(self) -> str:
        """Which rows have variants, in one line (the terminal's and the card's): those of the augmented split, or
        every row, with the warning that a split made afterwards leaks."""
        if self.split is None:
            return f"warning: {NO_SPLIT_WARNING}"
        values = " or ".join(self.split.augmented)
        return (
            f"split: variants only of rows where {self.split.column} is {values}; the {self.split.held_out:,} rows "
            "of other splits are never varied (originals only)"
        )

    @property
    def input_path(self) -> str | None:
        """The run's input file, as the combos' meta.json named it."""
        path = self.source.get("path")
        return path if isinstance(path, str) else None

    @property
    def left_out(self) -> dict[str, str]:
        """Each combo folder of the run not in the export, with why (failed, stopped, another plan's)."""
        return {c.combo_dir: c.why for c in self.left_out_combos}

    @property
    def plan(self) -> str:
        """The plan fingerprint's old name, kept for one release."""
        warnings.warn("ExportResult.plan is now .plan_fingerprint; the old name goes in the next release",
                      FutureWarning, 2)  # fmt: skip
        return self.plan_fingerprint

    @property
    def facts(self) -> dict[str, Any]:
        """export.json as a dict, the old name of `to_json()`, kept for one release."""
        warnings.warn("ExportResult.facts is now .to_json(); the old name goes in the next release", FutureWarning, 2)
        return self.to_json()

    def table_rows(self) -> list[dict[str, Any]]:
        return [dataclasses.asdict(c) for c in self.combos]

    def table_caption(self) -> str:
        where = f" to {self.path}" if self.path is not None else ""
        return f"augshard export{where}: {len(self.combos)} combos, {self.rows:,} rows"

    def to_json(self) -> dict[str, Any]:
        return {_JSON_KEYS.get(f.name, f.name): _plain(getattr(self, f.name)) for f in dataclasses.fields(self)
                if f.name != "path" and not (f.name in _LATER and getattr(self, f.name) is None)}  # fmt: skip

    @classmethod
    def from_json(cls, doc: Any) -> ExportFacts:
        """The facts of a parsed export.json; ValueError when it is not one. A key an earlier export.json lacks
        reads as None, but for the three every one of them has."""
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        missing = [n for n in ("made_by", "files", "source") if n not in doc]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        values = {f.name: doc.get(_JSON_KEYS.get(f.name, f.name)) for f in dataclasses.fields(cls) if f.name != "path"}
        files, source = values["files"], values["source"]
        if not isinstance(values["made_by"], str):
            raise ValueError("made_by is not a string")
        if not isinstance(files, list) or not all(isinstance(f, str) and f for f in files):
            raise ValueError("files is not a list of file names")
        outside = [f for f in files if PurePosixPath(f).is_absolute() or PureWindowsPath(f).is_absolute() or ".." in
                   PureWindowsPath(f).parts]  # fmt: skip
        if outside:
            raise ValueError(f"files names {outside[0]!r}, outside the export folder")
        if not isinstance(source, dict):
            raise ValueError("source is not an object")
        typed = {name: read(values[name]) for name, read in _READERS.items() if values[name] is not None}
        return cls(**values | typed | {"files": tuple(files)})

    @classmethod
    def read(cls, folder: Path) -> ExportFacts:
        """The export.json of `folder`; OSError or ValueError when there is none or it is not one."""
        return dataclasses.replace(cls.from_json(load_json(Path(folder) / FACTS)), path=Path(folder))

    def data_files(self, folder: Path) -> tuple[Path, ...]:
        """The paths of `files` in `folder`, for a reader of the export's rows (`evaluate --export`); ValueError naming
        one that is not a file there, or what the reader needs that export.json lacks (its input, its quality)."""
        if not all(isinstance(self.source.get(k), str) for k in ("path", "sha256", "text_col")):
            raise ValueError("source does not name the input's path, sha256 and text_col")
        for name in ("quality", "methods"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), dict):
                raise ValueError(f"{name} is not an object")
        paths = tuple(Path(folder) / f for f in self.files)
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise ValueError(f"{missing[0]} is missing (export.json lists it)")
        return paths


def load_json(path: Path) -> Any:
    """A JSON file; OSError when it cannot be read, ValueError (one line) when it is not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise ValueError(f"{path}: JSON nested too deep") from None


def is_export(folder: Path) -> bool:
    """A folder an earlier export made: a real folder whose export.json says so."""
    if folder.is_symlink() or not folder.is_dir():
        return False
    try:
        return ExportFacts.read(folder).made_by == MADE_BY
    except (OSError, ValueError):
        return False
