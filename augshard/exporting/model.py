"""What an export is: its options, what it made (counts per combo, labels, files) and the facts export.json holds,
shared by the export itself (`exporting.py`), its dataset card (`card.py`), `evaluate --export` and the API."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from augshard.core.config import DEFAULT_CACHE_DIR, DEFAULT_LOG_DIR, DEFAULT_OUTPUT_NAME, DEFAULT_OUTPUT_ROOT
from augshard.core.errors import ConfigError
from augshard.core.settings import REQUIRED, Check, Table, items, numbers, setting
from augshard.storage.meta import ComboMeta
from augshard.storage.outcome import ComboOutcome

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
    include_originals: bool = setting(False, "Write the input rows too (k 0).")
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


@dataclass
class ComboCount:
    """One combo's rows through the export."""

    combo_dir: str
    methods: str
    k: int
    rows: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    label_flips: int = 0

    @property
    def kept(self) -> int:
        return self.rows - self.exact_duplicates - self.near_duplicates - self.label_flips


@dataclass
class Export:
    """What an export made: its counts, for the card, export.json and the command's summary."""

    options: ExportOptions
    metas: list[ComboMeta] = field(default_factory=list)
    counts: list[ComboCount] = field(default_factory=list)
    originals: int = 0  # rows of the input written (--include-originals)
    files: list[str] = field(default_factory=list)
    features: list[tuple[str, str]] = field(default_factory=list)
    labels_before: Counter = field(default_factory=Counter)  # of every row of the input file, usable or not
    labels_after: Counter = field(default_factory=Counter)
    skipped: list[ComboOutcome] = field(default_factory=list)  # not ok, left out with --allow-incomplete
    unavailable: list[ComboOutcome] = field(default_factory=list)  # never run: a method cannot be built there
    plan: str = ""  # the fingerprint of the plan whose manifest listed the combos
    input_rows: int = 0  # rows of the input file
    skipped_rows: list[tuple[int, str, str]] = field(default_factory=list)  # input rows no combo could augment

    @property
    def rows(self) -> int:
        return self.originals + sum(c.kept for c in self.counts)


@dataclass(frozen=True)
class ExportFacts:
    """export.json (and `export --format json`): what went in, what was dropped and why, what came out. Field order
    is the printed document's key order; the file sorts its keys."""

    made_by: str
    plan: str
    combo_plans: list[str]
    rows: int
    files: list[str]  # relative to the export folder
    features: dict[str, Any]
    source: dict[str, Any]  # meta.json's `source` of the combos
    seed: int
    variants_per_sample: int
    quality: dict[str, Any]
    config_fingerprint: str
    methods: dict[str, Any]
    method_classes: dict[str, Any]
    export: dict[str, Any]
    originals: int
    combos: list[dict[str, Any]]  # a row per combo: its ExportCounts and `kept`
    dropped: dict[str, int]
    label_check: dict[str, Any] | None
    labels_before: dict[str, int]
    labels_after: dict[str, int]
    left_out: list[dict[str, Any]]
    not_run: list[dict[str, Any]]
    input: dict[str, Any]
    class_label: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, doc: Any) -> ExportFacts:
        """The facts of a parsed export.json; ValueError when it is not one. A key an earlier export.json lacks
        reads as None, but for the three every one of them has."""
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        missing = [n for n in ("made_by", "files", "source") if n not in doc]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        files, source = doc["files"], doc["source"]
        if not isinstance(doc["made_by"], str):
            raise ValueError("made_by is not a string")
        if not isinstance(files, list) or not all(isinstance(f, str) and f for f in files):
            raise ValueError("files is not a list of file names")
        outside = [f for f in files if PurePosixPath(f).is_absolute() or PureWindowsPath(f).is_absolute() or ".." in
                   PureWindowsPath(f).parts]  # fmt: skip
        if outside:
            raise ValueError(f"files names {outside[0]!r}, outside the export folder")
        if not isinstance(source, dict):
            raise ValueError("source is not an object")
        return cls(**{f.name: doc.get(f.name) for f in dataclasses.fields(cls)})

    @classmethod
    def read(cls, folder: Path) -> ExportFacts:
        """The export.json of `folder`; OSError or ValueError when there is none or it is not one."""
        return cls.from_json(load_json(Path(folder) / FACTS))

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
