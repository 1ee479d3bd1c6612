"""What `augshard evaluate` is asked to do: its options, each a declared setting (core/settings.py) checked for its
type and its range before anything is read, so a wrong value from the CLI or the API is one ConfigError naming the
option."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from augshard.core.config import DEFAULT_CACHE_DIR, DEFAULT_OUTPUT_NAME, DEFAULT_OUTPUT_ROOT
from augshard.core.errors import ConfigError
from augshard.core.settings import REQUIRED, Check, Table, items, numbers, setting
from augshard.evaluation.classifiers import FEATURES, MODEL
from augshard.evaluation.document import EVALUATION

FIELDS = ("text", "evidence")
SEEDS = 2**32  # numpy's and scikit-learn's random states: 0 .. 2**32 - 1
FRACTIONS = "--train-sizes: expected fractions like 0.1,0.25,1.0"
NAMES_A_COLUMN = Check(str.strip, "{flag} must name a column, got ''")
KNOWN_FEATURES = Check(
    lambda v: v and set(v) <= {*FEATURES, MODEL}, "{flag} must be tfidf, embedding, both or model, got '{value}'"
)
IN_UNIT = Check(lambda v: v and all(0.0 < s <= 1.0 for s in v), "{flag} are fractions in (0, 1], got {value}")


def _features(value: Any) -> tuple[str, ...]:
    """Feature sets as the CLI names them: tfidf, embedding, or both."""
    chosen = items(value)
    return tuple(FEATURES) if chosen == ("both",) else chosen


@dataclass(frozen=True)
class EvaluateOptions:
    """What `augshard evaluate` is asked to do; each field a declared setting: a flag, an API keyword."""

    label_col: str = setting(REQUIRED, "The label column of the run's input.", checks=(NAMES_A_COLUMN,))
    output_root: Path = setting(Path(DEFAULT_OUTPUT_ROOT), "The run's output root.")
    output_name: str = setting(DEFAULT_OUTPUT_NAME, "The run's merged manifest.")
    group_col: str | None = setting(None, "Rows sharing a value stay in one fold (e.g. a post id).")
    folds: int = setting(5, "Folds over the originals.", low=2)
    repeats: int = setting(1, "Repeats of the folds with other seeds.", low=1)
    features: tuple[str, ...] = setting(
        ("tfidf",), "tfidf | embedding | both | model, comma-separated.", parse=_features, checks=(KNOWN_FEATURES,),
        shown="tfidf; model with --model",
    )  # fmt: skip
    train_sizes: tuple[float, ...] = setting(
        (1.0,), "Fractions of the training originals, e.g. 0.1,0.25,1.0 (a learning curve).",
        parse=numbers(float, FRACTIONS), checks=(IN_UNIT,),
    )  # fmt: skip
    combos: tuple[str, ...] = setting((), "Only these combos: ids, folders or method names.", parse=items)
    export_dir: Path | None = setting(None, "Evaluate an `augshard export` folder as a whole.", flags=("--export",))
    field: str = setting("text", "what the classifier reads (the text column or the evidence span).", choices=FIELDS)
    seed: int = setting(0, "Seed of the folds and subsets.")
    workers: int | None = setting(
        None, "Worker processes: auto (one per core) or N.", low=1, auto=True, shown="auto", old_flags=("--num-shards",)
    )
    allow_incomplete: bool = setting(False, "Evaluate the complete combos of a run with failed or stopped ones.")
    drop_rare_classes: bool = setting(False, "Leave out classes with fewer rows than folds (else refused).")
    cache_dir: Path = setting(Path(DEFAULT_CACHE_DIR), "Where encoded vectors are cached.")
    embedding_model: str | None = setting(
        None, "Sentence model directory for --features embedding.", shown="the bundled MiniLM"
    )
    out: Path | None = setting(None, "Where to write evaluation.json.", shown="the output root or --export")
    force: bool = setting(False, "Replace an --out that is not an evaluation.json augshard made.")
    plan: str = setting("", "Evaluate only the combos of this plan (its fingerprint), when a stopped run left two.")
    confirm_top: int | None = setting(
        None, "Re-evaluate the screen's K best and the baseline on fresh splits; 0: no confirm stage.", low=0,
        shown="10 when there are more than 10 combos, else 0",
    )  # fmt: skip
    confirm_repeats: int = setting(5, "Repeats of the folds in the confirm stage.", low=1)
    group_near: bool = setting(False, "Originals MinHash-similar above 0.9 are also one group.")
    test_split: str | None = setting(
        None, "Score on the originals of this split (the run's --split-col, or --split-col here) instead of folds.",
        checks=(Check(str.strip, "{flag} must name a split value, got ''"),),
    )  # fmt: skip
    split_col: str | None = setting(
        None, "The column of --test-split, for a run made without --split-col.", checks=(NAMES_A_COLUMN,)
    )
    model: Any = setting(
        None, "Your classifier: module:factory or file.py:factory returning a scikit-learn estimator of raw texts "
        "(the features set 'model'); from Python also a factory or an estimator.", shown="none",
    )  # fmt: skip

    def check(self) -> None:
        """Every option against its declaration, then the rules across options."""
        EVALUATE.check(self)
        # Repeat r draws its folds with seed + r: every one of them must be a random state numpy accepts.
        if not 0 <= self.seed <= SEEDS - self.repeats:
            raise ConfigError(
                f"--seed must be between 0 and 2**32 - {self.repeats} (--repeats {self.repeats}), got {self.seed}"
            )
        twice = sorted({s for s in self.train_sizes if self.train_sizes.count(s) > 1})
        if twice:
            raise ConfigError(f"--train-sizes: {', '.join(f'{s:g}' for s in twice)} given twice; give each size once")
        if self.split_col and not self.test_split:
            raise ConfigError("--split-col goes with --test-split VALUE: the split whose originals are the test set")
        if self.test_split and self.confirm_top:
            raise ConfigError("--test-split scores one test set: no screen and no --confirm-top")
        if (MODEL in self.features) != (self.model is not None):
            raise ConfigError("--model and --features model go together: give --model module:factory")

    @property
    def destination(self) -> Path:
        """--out; else evaluation.json in the export folder or the output root, except for an evaluation of some
        combos (--combos), which never replaces the full one: it is written beside it under its own name."""
        return self.out or (self.export_dir or self.output_root) / (subset_name(self.combos) if self.subset else
                                                                    EVALUATION)  # fmt: skip

    @property
    def subset(self) -> bool:
        return bool(self.combos) and self.export_dir is None


def subset_name(combos: tuple[str, ...]) -> str:
    """evaluation-<8 hex>.json: one name per set of combos named, whatever their order."""
    digest = hashlib.sha256("\n".join(sorted(set(combos))).encode()).hexdigest()[:8]
    return f"{Path(EVALUATION).stem}-{digest}.json"


EVALUATE = Table.of(EvaluateOptions, "evaluate option")
