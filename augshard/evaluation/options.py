"""What `augshard evaluate` is asked to do: its options, each checked for its type and its range before anything is
read, so a wrong value from the CLI or the API is one ConfigError naming the option."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from augshard.core.config import DEFAULT_CACHE_DIR, DEFAULT_OUTPUT_NAME, DEFAULT_OUTPUT_ROOT
from augshard.core.errors import ConfigError
from augshard.core.json_types import check_fields
from augshard.evaluation.classifiers import FEATURES, MODEL
from augshard.evaluation.document import EVALUATION

FIELDS = ("text", "evidence")
SEEDS = 2**32  # numpy's and scikit-learn's random states: 0 .. 2**32 - 1


@dataclass(frozen=True)
class EvaluateOptions:
    label_col: str
    output_root: Path = Path(DEFAULT_OUTPUT_ROOT)
    output_name: str = DEFAULT_OUTPUT_NAME
    group_col: str | None = None
    folds: int = 5
    repeats: int = 1
    features: tuple[str, ...] = ("tfidf",)
    train_sizes: tuple[float, ...] = (1.0,)
    combos: tuple[str, ...] = ()
    export_dir: Path | None = None  # evaluate an `augshard export` as a whole instead of the run's combos
    field: str = "text"  # what the classifier reads: the text column, or the evidence span
    seed: int = 0
    workers: int | None = None  # worker processes; None: one per CPU core
    allow_incomplete: bool = False
    drop_rare_classes: bool = False
    cache_dir: Path = Path(DEFAULT_CACHE_DIR)
    embedding_model: str | None = None  # a sentence-transformers directory; None: the bundled MiniLM
    out: Path | None = None  # None: evaluation.json in the output root (or the export folder)
    force: bool = False  # replace an --out that is not an evaluation.json augshard made
    plan: str = ""  # evaluate this plan's combos only (its fingerprint); empty: the merged manifest's, if it is one
    # The confirm stage: the screen's top K re-evaluated on fresh splits (None: 10 when there are more than 10
    # combos, else no confirm stage; 0: none), with R repeats of the folds.
    confirm_top: int | None = None
    confirm_repeats: int = 5
    group_near: bool = False  # also one group: originals whose character 5-grams are MinHash-similar above 0.9
    model: Any = None  # --model: "module:factory", "file.py:factory", a factory or an estimator (features "model")

    def check(self) -> None:
        check_fields(self, "evaluate option")
        if self.folds < 2:
            raise ConfigError(f"--folds must be at least 2, got {self.folds}")
        if self.repeats < 1:
            raise ConfigError(f"--repeats must be at least 1, got {self.repeats}")
        # Repeat r draws its folds with seed + r: every one of them must be a random state numpy accepts.
        if not 0 <= self.seed <= SEEDS - self.repeats:
            raise ConfigError(
                f"--seed must be between 0 and 2**32 - {self.repeats} (--repeats {self.repeats}), got {self.seed}"
            )
        unknown = [f for f in self.features if f not in (*FEATURES, MODEL)]
        if unknown or not self.features:
            raise ConfigError(f"--features must be tfidf, embedding, both or model, got '{','.join(self.features)}'")
        if not self.train_sizes or any(not 0.0 < s <= 1.0 for s in self.train_sizes):
            raise ConfigError(f"--train-sizes are fractions in (0, 1], got {list(self.train_sizes)}")
        twice = sorted({s for s in self.train_sizes if self.train_sizes.count(s) > 1})
        if twice:
            raise ConfigError(f"--train-sizes: {', '.join(f'{s:g}' for s in twice)} given twice; give each size once")
        if self.field not in FIELDS:
            raise ConfigError(f"--field must be text or evidence, got '{self.field}'")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"--workers must be at least 1 (or 'auto'), got {self.workers}")
        if self.confirm_top is not None and self.confirm_top < 0:
            raise ConfigError(f"--confirm-top must be 0 (no confirm stage) or more, got {self.confirm_top}")
        if self.confirm_repeats < 1:
            raise ConfigError(f"--confirm-repeats must be at least 1, got {self.confirm_repeats}")
        if ("model" in self.features) != (self.model is not None):
            raise ConfigError("--model and --features model go together: give --model module:factory")
        if not self.label_col.strip():
            raise ConfigError("--label-col must name a column, got ''")

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
