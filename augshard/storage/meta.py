"""`meta.json` as one typed record (`ComboMeta` and its parts), written through the one atomic writer and read
back with its types checked: a value of the wrong JSON type, text that is not UTF-8 or JSON nested too deep is a
`MetaError`, one line naming the file."""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from augshard.core.errors import OutputError
from augshard.core.json_types import wrong_type
from augshard.shard.labels import LabelCheck
from augshard.storage.data import Split
from augshard.storage.temporaries import write_atomic
from augshard.storage.vectors import VectorsMeta


@dataclass(frozen=True)
class QualityMeta:
    metric: str
    min_sim: float
    max_sim: float
    model: str | None = None  # the sentence model, with the embedding metric
    backend: str | None = None
    scope: str = "final"  # or each-step: every step's output judged against its input too
    device: str | None = None  # where the sentence model ran


@dataclass(frozen=True)
class LabelMeta(LabelCheck):
    """The label-preservation check of a combo: the run's check (how far its classifier can be trusted: the same
    fields, one type) and how many of the combo's variants it predicts a different label for than for their
    original."""

    labelled: int
    flips: int

    @classmethod
    def of(cls, check: LabelCheck, labelled: int, flips: int) -> LabelMeta:
        return cls(**dataclasses.asdict(check), labelled=labelled, flips=flips)

    @property
    def flip_share(self) -> float | None:
        return round(self.flips / self.labelled, 4) if self.labelled else None


@dataclass(frozen=True)
class SourceMeta:
    """The run's input: where it is, its identity, its columns. An in-memory input (`origin` dataframe, arrow or
    dataset; storage/inputs.py) is its Parquet copy under the cache folder, `sha256` is its content hash and its row
    keys hash values as text (`row_keys`); a file's meta.json leaves both out, as it always did."""

    path: str
    sha256: str
    text_col: str
    evidence_col: str | None = None
    id_col: str | None = None
    origin: str = "file"
    row_keys: str = "values"  # or "text": values hashed as a CSV of them holds them (storage/data.py `as_text`)

    def to_dict(self) -> dict[str, Any]:
        """As JSON: `origin` and `row_keys` only where they are not a file's."""
        out = dataclasses.asdict(self)
        return {k: v for k, v in out.items() if k not in ("origin", "row_keys") or v != _FILE_SOURCE[k]}


_FILE_SOURCE = {"origin": "file", "row_keys": "values"}


@dataclass(frozen=True)
class SplitMeta:
    """The user's split (--split-col): only the rows of `augmented` values have variants; `held_out` usable rows of
    the other values are carried as originals only (export writes them, never a variant of them)."""

    column: str
    augmented: list[str]
    held_out: int

    @property
    def rule(self) -> Split:
        """The split as the input's reader applies it (export reads the input again as the run did)."""
        return Split(self.column, tuple(self.augmented))


@dataclass(frozen=True)
class ClassYield:
    """One class of a balanced combo (--balance, --variants-per-class): its originals, the variants one of its rows
    asks for ("2", or "2-3" when the remainder is spread), and the variants it asked for and kept in this combo."""

    label: str
    originals: int
    per_row: str
    asked: int
    kept: int


@dataclass(frozen=True)
class BalanceMeta:
    """Variants per class (storage/balance.py): the target each class approaches (None with --variants-per-class
    alone), the cap per row, and each class, rarest first."""

    target: int | None
    max_variants_per_sample: int | None
    classes: list[ClassYield]

    @classmethod
    def read(cls, data: dict[str, Any]) -> BalanceMeta:
        rows = data.get("classes")
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ValueError("'balance.classes' is not a list of objects")
        head = {k: v for k, v in data.items() if k in ("target", "max_variants_per_sample")}
        _check_types(cls, head, "balance.")
        return cls(**head, classes=[_known(ClassYield, r, "balance.classes.") for r in rows])


@dataclass(frozen=True)
class TimingMeta:
    duration_seconds: float
    rows_per_second: float | None = None
    input_rows_per_second: float | None = None


@dataclass(frozen=True)
class YieldMeta:
    """The variants a combo asked for (rows x variants per sample) and kept, and where its other candidates went."""

    asked: int
    kept: int
    candidates: int = 0
    unchanged: int = 0  # empty, or the original ignoring case and surrounding space
    duplicates: int = 0  # another variant of the row, ignoring case and surrounding space
    below_min_sim: int = 0
    above_max_sim: int = 0
    call_errors: int = 0
    step_rejected: int = 0  # --quality-scope each-step: stopped at an intermediate step
    rows_short: int = 0  # rows that ran out of attempts before getting every variant
    explanation: str = ""  # set when fewer than half were kept: the numbers above and the bound to move

    @property
    def candidates_rejected(self) -> int:
        """Candidates turned down: unchanged, duplicate, out of the similarity range, or at a step."""
        return self.unchanged + self.duplicates + self.below_min_sim + self.above_max_sim + self.step_rejected

    @classmethod
    def from_legacy(cls, data: dict[str, Any], asked: int, kept: int) -> YieldMeta:
        """A meta.json written before `variants` existed: its top-level totals (the split between unchanged and
        duplicate, and between below and above the range, was not recorded: each total counts as the first)."""
        return cls(
            asked=asked,
            kept=kept,
            candidates=int(data.get("candidates", 0)),
            unchanged=int(data.get("rejected_unchanged", 0)),
            below_min_sim=int(data.get("rejected_similarity", 0)),
            call_errors=int(data.get("candidate_errors", 0)),
            rows_short=int(data.get("rows_short", 0)),
        )


# Written for the original tool's readers, derived from augshard's own fields (timing.rows_skipped too).
ORIGINAL_KEYS = ("combo_methods", "source_input")
# Counts an earlier meta.json also held at its top level, each a copy (or a sum) of one in `variants`: read, never
# written (`rows_rejected` counted candidates; `candidate_errors` was `variants.call_errors`).
LEGACY_COUNTS = ("rows_rejected", "rejected_similarity", "rejected_unchanged", "rows_short", "candidates",
                 "candidate_errors")  # fmt: skip


@dataclass(frozen=True)
class ComboMeta:
    """What `meta.json` says of a complete combo: what made it (methods, settings, input, libraries) and what it
    holds (rows, rejections, timing), with the fingerprints that decide whether it is still complete."""

    combo_id: str
    combo_dir: str
    methods: list[str]
    k: int
    method_args: dict[str, Any]
    method_specs: dict[str, str]
    seed: int
    variants_per_sample: int
    max_candidates_per_variant: int
    quality: QualityMeta
    rows: int
    rows_input: int
    rows_skipped: int
    rows_skipped_by_reason: dict[str, int]
    variants: YieldMeta  # the run's counts of candidates and variants, each once (see LEGACY_COUNTS)
    first_candidate_error: str
    source: SourceMeta
    library_versions: dict[str, str]
    timing: TimingMeta
    plan_fingerprint: str
    config_fingerprint: str
    combo_fingerprint: str
    shard: int = 0
    columns: list[str] = field(default_factory=list)  # dataset.parquet's columns (the original tool's `columns`)
    label_check: LabelMeta | None = None  # with --label-col
    vectors: VectorsMeta | None = None  # with --keep-vectors
    split: SplitMeta | None = None  # with --split-col
    balance: BalanceMeta | None = None  # with --balance or --variants-per-class
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # keys this version does not know

    @property
    def candidates(self) -> int:
        return self.variants.candidates

    @property
    def candidates_rejected(self) -> int:
        return self.variants.candidates_rejected

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.update(out.pop("extra"))
        # The original tool's keys, for the scripts that read its meta.json (derived here, never read back).
        out["combo_methods"] = list(self.methods)
        out["source_input"] = self.source.path
        out["source"] = self.source.to_dict()
        out["timing"]["rows_skipped"] = self.rows_skipped
        for optional in ("vectors", "split", "balance"):  # a meta.json without them reads as it always did
            if getattr(self, optional) is None:
                del out[optional]
        if self.label_check is None:
            del out["label_check"]
        else:
            out["label_check"]["flip_share"] = self.label_check.flip_share
        return out

    @classmethod
    def from_dict(cls, data: Any) -> ComboMeta:
        """The record of a parsed `meta.json`; ValueError naming what is missing or of the wrong kind."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        nested = {
            "quality": QualityMeta,
            "source": SourceMeta,
            "timing": TimingMeta,
            "variants": YieldMeta,
            "label_check": LabelMeta,
            "vectors": VectorsMeta,
            "split": SplitMeta,
            "balance": BalanceMeta,
        }
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        values: dict[str, Any] = {k: v for k, v in data.items() if k in names}
        try:
            if values.get("variants") is None and "candidates" in data:  # written before `variants` existed
                asked = int(data.get("rows_input", 0)) * int(data.get("variants_per_sample", 0))
                values["variants"] = dataclasses.asdict(YieldMeta.from_legacy(data, asked, int(data.get("rows", 0))))
            for key, kind in nested.items():
                if key in ("label_check", "vectors", "split", "balance") and values.get(key) is None:
                    continue  # optional
                if not isinstance(values.get(key), dict):
                    raise ValueError(f"'{key}' is missing or not an object")
                read = BalanceMeta.read if kind is BalanceMeta else functools.partial(_known, kind, prefix=f"{key}.")
                values[key] = read(values[key])
            extra = {k: v for k, v in data.items() if k not in names and k not in (*LEGACY_COUNTS, *ORIGINAL_KEYS)}
            _check_types(cls, {k: v for k, v in values.items() if k not in nested})
            return cls(**values, extra=extra)
        except TypeError as exc:  # a required key absent
            raise ValueError(" ".join(str(exc).split()[1:]) or str(exc)) from None


def _check_types(kind: type, values: dict[str, Any], prefix: str = "") -> None:
    why = wrong_type(kind, values, prefix)
    if why:
        raise ValueError(why)


def _known(kind: type, data: dict[str, Any], prefix: str = "") -> Any:
    names = {f.name for f in dataclasses.fields(kind)}
    values = {k: v for k, v in data.items() if k in names}
    _check_types(kind, values, prefix)
    return kind(**values)


def write_meta(path: Path, meta: ComboMeta) -> None:
    write_atomic(path, json.dumps(meta.to_dict(), indent=2, sort_keys=True) + "\n")


class MetaError(OutputError, ValueError):
    """A `meta.json` that is not one: an OutputError (one line from the CLI) and a ValueError (a reader that skips
    an unreadable combo catches it as it always did). `reason` says what is wrong without the path."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: not a usable meta.json ({reason})")
        self.path, self.reason = Path(path), reason


def read_meta(path: str | Path) -> ComboMeta:
    """A combo's `meta.json`; OSError when it cannot be read, MetaError (a ValueError) when it is not a meta.json."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MetaError(path, f"not JSON ({exc.msg} at line {exc.lineno})") from None
    except UnicodeDecodeError as exc:
        raise MetaError(path, f"not UTF-8 (byte {exc.start})") from None
    except RecursionError:
        raise MetaError(path, "JSON nested too deep") from None
    try:
        return ComboMeta.from_dict(data)
    except ValueError as exc:
        raise MetaError(path, str(exc)) from None
