"""evaluation.json as one typed value: what `augshard evaluate` builds, writes, prints (`--format json`), returns
to Python and what `augshard report` and `export --best` read. Every reader reads these classes, never the JSON's
keys (tests/test_design.py holds that).

The JSON keeps `"schema": 1`: every change since its first version only added keys, so a reader of the first
version still reads a new file, and a first-version file reads here with the added keys at their defaults (no
confirm stage, no per-class gains, no power). A screen row's verdict is `screened` when a confirm stage decides:
the screen only ranks.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from augshard.core.errors import ConfigError, OutputError
from augshard.storage.temporaries import write_atomic

EVALUATION = "evaluation.json"
SCHEMA_VERSION = 1
SINGLE, SCREEN, CONFIRM = "single", "screen", "confirm"  # a section's stage
SCREENED = "screened"  # a screen row's verdict when a confirm stage gives the verdicts
TEST_SPLIT = "test-split"  # the design of `--test-split`: the user's one test set, bootstrap intervals


@dataclass(frozen=True)
class Spread:
    """A score over the splits: its mean and standard deviation."""

    mean: float
    std: float


@dataclass(frozen=True)
class GainStats:
    """A paired difference over the splits (gains.Gain as written): mean, 95% corrected interval, p-value, and on a
    combo's macro-F1 gain the p-value after Holm's adjustment over the section's combos."""

    mean: float
    ci_low: float
    ci_high: float
    p_value: float
    splits: int
    p_holm: float | None = field(default=None, metadata={"omit_none": True})


@dataclass(frozen=True)
class Row:
    """One combo (or a whole export) in one section."""

    combo_id: str
    combo_dir: str
    name: str
    methods: list[str]
    k: int
    combo_fingerprint: str
    variants_used: float  # mean per split
    macro_f1: Spread
    accuracy: Spread
    gain: GainStats
    accuracy_gain: GainStats
    macro_f1_splits: list[float]
    verdict: str  # helps | hurts | no evidence | screened
    screen_rank: int | None = field(default=None, metadata={"omit_none": True})  # 1: the screen's best
    per_class: dict[str, GainStats] = field(default_factory=dict)  # each class's F1 gain (unadjusted intervals)
    per_class_recall: dict[str, GainStats] = field(default_factory=dict)  # each class's recall gain (the same)


@dataclass(frozen=True)
class Baseline:
    macro_f1: Spread
    accuracy: Spread
    train_originals: float
    macro_f1_splits: list[float]
    per_class: dict[str, Spread] = field(default_factory=dict)  # each class's F1
    per_class_recall: dict[str, Spread] = field(default_factory=dict)


@dataclass(frozen=True)
class MethodEffect:
    """A method's marginal effect: the gain of the combos with it minus that of the combos without it."""

    method: str
    combos_with: int
    combos_without: int
    mean_gain_with: float
    mean_gain_without: float
    marginal: GainStats


@dataclass(frozen=True)
class Power:
    """What a section's design can see: the smallest true gain it calls `helps` with 80% power (gains.py)."""

    min_detectable_gain: float | None
    power: float
    alpha: float
    comparisons: int
    splits: int
    spread: float | None  # median sd of the per-split macro-F1 differences over the section's combos
    test_over_train: float
    target: float
    reaches_target: bool
    to_reach_target: str | None


@dataclass(frozen=True)
class Section:
    """One stage's results for one features set at one train size."""

    features: str
    train_size: float
    splits: int
    baseline: Baseline
    combos: list[Row]  # best mean gain first
    methods: list[MethodEffect]
    stage: str = SINGLE
    min_detectable_gain: float | None = None
    power: Power | None = None

    def row(self, combo_id: str) -> Row | None:
        return next((r for r in self.combos if r.combo_id == combo_id), None)

    @property
    def decides(self) -> bool:
        """Whether its rows carry verdicts (a screen followed by a confirm stage only ranks)."""
        return self.stage != SCREEN


@dataclass(frozen=True)
class InputRef:
    path: str
    sha256: str


@dataclass(frozen=True)
class Source:
    kind: str  # run | export
    path: str
    input: InputRef
    plan_fingerprints: list[str]


@dataclass(frozen=True)
class Scope:
    """Which combos were evaluated: all the complete combos of the plan, or a subset (`--combos`)."""

    subset: bool
    combos: list[str]
    of: int


@dataclass(frozen=True)
class ConfirmDesign:
    top: int
    repeats: int
    folds: int
    seeds: list[int]
    ranked_by: dict[str, Any]  # {"features", "train_size"} of the screen section that ranked the combos


@dataclass(frozen=True)
class UserSplit:
    """`--test-split`: trained on the originals whose `column` is one of `train_values` (every other split's when
    empty: the run had no split column), scored on those whose value is `value`, intervals over `resamples`
    bootstrap resamples of them."""

    column: str
    value: str
    train_values: list[str]
    train_originals: int
    test_originals: int
    resamples: int

    @property
    def described(self) -> str:
        """The design in words (the terminal's header and the report's protocol)."""
        values = " or ".join(self.train_values)
        train = f"{self.column} is {values}" if values else f"{self.column} is not {self.value}"
        return (f"your split: trained on the {self.train_originals:,} originals where {train}, scored on the "
                f"{self.test_originals:,} where {self.column} is {self.value} (one test set, no folds; 95% intervals "
                f"from {self.resamples:,} paired bootstrap resamples of it)")  # fmt: skip


@dataclass(frozen=True)
class Protocol:
    label_col: str
    group_col: str | None
    field: str
    folds: int
    repeats: int
    seed: int
    train_sizes: list[float]
    features: list[str]
    classes: list[str]
    originals: int
    groups: int
    blank_group_rows: int = 0
    dropped_rows: dict[str, int] = field(default_factory=dict)
    dropped_classes: dict[str, int] = field(default_factory=dict)
    class_counts: dict[str, int] = field(default_factory=dict)
    group_near: bool = False
    joined: dict[str, int] = field(default_factory=dict)  # rows joined to a group by punctuation / near duplicates
    model: dict[str, Any] | None = None  # --model: {"factory", "class", "repr"}
    design: str = SINGLE  # single | screen-then-confirm | test-split
    confirm: ConfirmDesign | None = None
    interval: str = ""
    adjustment: str = ""
    test_split: UserSplit | None = field(default=None, metadata={"omit_none": True})

    def rarest(self, n: int) -> list[str]:
        """The `n` classes with the fewest originals (ties by name)."""
        return sorted(self.classes, key=lambda c: (self.class_counts.get(c, 0), c))[:n]


@dataclass(frozen=True)
class ConfirmStage:
    combos: list[str]  # the screen's top K, in screen rank order
    results: list[Section]


@dataclass(frozen=True)
class EvaluationDocument:
    schema: int
    source: Source
    protocol: Protocol
    classifiers: dict[str, Any]
    libraries: dict[str, str]
    results: list[Section]
    scope: Scope | None = None
    confirm: ConfirmStage | None = None
    run_info: dict[str, Any] = field(default_factory=dict)

    # --- reading -------------------------------------------------------------------------------------------------

    @property
    def deciding(self) -> list[Section]:
        """The sections whose verdicts count: the confirm stage's when there is one, else the single stage's."""
        return self.confirm.results if self.confirm is not None else self.results

    def features(self) -> list[str]:
        return list(dict.fromkeys(s.features for s in self.results))

    def main_section(self, features: str | None = None) -> Section:
        """The section a choice is made from: the given (or first) features, at the largest train size, of the
        deciding stage."""
        sections = [s for s in self.deciding if features is None or s.features == features]
        if not sections:
            raise ConfigError(f"the evaluation has no '{features}' results (it has: {', '.join(self.features())})")
        first = sections[0].features
        return max((s for s in sections if s.features == first), key=lambda s: s.train_size)

    def screen_section(self, features: str) -> Section:
        """The screen's (or single stage's) section of `features` at its largest train size: every combo ranked."""
        return max((s for s in self.results if s.features == features), key=lambda s: s.train_size)

    def section(self, features: str, train_size: float) -> Section | None:
        return next((s for s in self.deciding if s.features == features and s.train_size == train_size), None)

    def curve(self, features: str) -> list[Section]:
        """The deciding stage's sections of `features`, smallest train size first."""
        return sorted((s for s in self.deciding if s.features == features), key=lambda s: s.train_size)

    def followed(self, features: str, most: int = 10) -> list[str]:
        """The combos a learning curve follows: the confirmed ones, else the best `most` at the largest size."""
        if self.confirm is not None:
            return list(self.confirm.combos)
        return [r.combo_id for r in self.screen_section(features).combos[:most]]

    # --- JSON ----------------------------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return _dump(self)

    @classmethod
    def from_json(cls, data: Any, where: str = "evaluation.json") -> EvaluationDocument:
        if not isinstance(data, dict) or data.get("schema") != SCHEMA_VERSION or not data.get("results"):
            raise OutputError(f"{where}: not an evaluation.json this augshard reads (schema {SCHEMA_VERSION})")
        try:
            return _load(cls, data)
        except (KeyError, TypeError, ValueError) as exc:
            raise OutputError(f"{where}: not a readable evaluation ({type(exc).__name__}: {exc})") from None


def write_document(path: Path, doc: EvaluationDocument) -> None:
    """Through the store's one atomic writer: never half a document under its name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(doc.to_json(), indent=2, allow_nan=False) + "\n")


def read_document(path: Path) -> EvaluationDocument:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OutputError(f"{path} not found: run `augshard evaluate --label-col COL` first") from None
    except (OSError, ValueError) as exc:
        raise OutputError(f"{path}: not a readable evaluation ({exc})") from None
    return EvaluationDocument.from_json(data, str(path))


# --- the one mapping between these classes and JSON ------------------------------------------------------------


def _dump(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if item is None and f.metadata.get("omit_none"):
                continue
            out[f.name] = _dump(item)
        return out
    if isinstance(value, (list, tuple)):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    return value


@cache
def _hints(kind: type) -> dict[str, Any]:
    return typing.get_type_hints(kind)


def _load(hint: Any, value: Any) -> Any:
    """`value` (parsed JSON) as the annotation `hint`: dataclasses field by field (a missing key takes its default),
    lists, string-keyed dicts, optional values; anything else as it is, once its type fits."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return _load(next(a for a in args if a is not type(None)), value)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise TypeError(f"expected an object for {hint.__name__}, got {type(value).__name__}")
        hints = _hints(hint)
        kwargs = {f.name: _load(hints[f.name], value[f.name]) for f in dataclasses.fields(hint) if f.name in value}
        return hint(**kwargs)
    if origin is list:
        if not isinstance(value, list):
            raise TypeError(f"expected a list, got {type(value).__name__}")
        return [_load(args[0], v) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise TypeError(f"expected an object, got {type(value).__name__}")
        return {str(k): _load(args[1], v) for k, v in value.items()}
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, hint) or (isinstance(value, bool) and hint is not bool):
        raise TypeError(f"expected {hint.__name__}, got {json.dumps(value)[:40]}")
    return value
