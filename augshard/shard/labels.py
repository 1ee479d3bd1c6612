"""The label-preservation check: a linear classifier fitted on the originals' embeddings and labels, and for each
variant the class it predicts and whether that is the class it predicts for the variant's original. It annotates;
it never drops a row (`augshard export --drop-label-flips` decides)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Cross-validated accuracy this close to always answering the most frequent class means the classifier has
# learned next to nothing from the embeddings: its agreements and flips then say little, and the run says so.
WEAK_MARGIN = 0.05
FOLDS = 5


@dataclass(frozen=True)
class LabelCheck:
    """How far the check can be trusted (meta.json `label_check`, the run summary, the report)."""

    label_col: str
    classes: list[str]
    originals: int  # labelled originals the classifier was fitted on
    cv_accuracy: float | None  # stratified k-fold accuracy on the originals; None with one class or too few rows
    majority_rate: float  # the share of the most frequent label: what always guessing it scores
    weak: bool

    @property
    def warning(self) -> str:
        if not self.weak:
            return ""
        if self.cv_accuracy is None:
            return f"the label check on '{self.label_col}' cannot be validated ({len(self.classes)} classes, " \
                   f"{self.originals} labelled originals): treat its flips as noise"  # fmt: skip
        return (
            f"the label check on '{self.label_col}' is weak: cross-validated accuracy {self.cv_accuracy:.2f} against "
            f"{self.majority_rate:.2f} for always guessing the most frequent label; treat its flips as noise"
        )


class LabelModel:
    """Logistic regression on L2-normalised sentence embeddings (float64, one BLAS thread, lbfgs, a fixed seed):
    fitted on the same originals with the same vectors, every shard gets the very same model."""

    def __init__(self, vectors: Any, labels: list[Any], label_col: str, seed: int = 0) -> None:
        import numpy as np

        keep = [i for i, label in enumerate(labels) if label is not None and str(label).strip() != ""]
        self.x = np.asarray(vectors, dtype=np.float64)[keep]
        self.y = [str(labels[i]) for i in keep]
        self.seed = seed
        counts = Counter(self.y)
        self.classes = sorted(counts)
        self._only = self.classes[0] if len(self.classes) == 1 else None
        self._model = None if self._only is not None or not self.y else self._fit(self.x, self.y)
        cv = self._cross_validate(counts)
        majority = max(counts.values()) / len(self.y) if self.y else 1.0
        self.check = LabelCheck(
            label_col, self.classes, len(self.y), cv, round(majority, 4), cv is None or cv - majority < WEAK_MARGIN
        )

    def _fit(self, x: Any, y: list[str]) -> Any:
        from sklearn.linear_model import LogisticRegression
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            return LogisticRegression(max_iter=2000, random_state=self.seed).fit(x, y)

    def _cross_validate(self, counts: Counter) -> float | None:
        folds = min(FOLDS, min(counts.values(), default=0))
        if len(counts) < 2 or folds < 2:
            return None
        from sklearn.model_selection import StratifiedKFold

        right = 0
        for train, test in StratifiedKFold(folds, shuffle=True, random_state=self.seed).split(self.x, self.y):
            model = self._fit(self.x[train], [self.y[i] for i in train])
            right += sum(p == self.y[i] for p, i in zip(self._predict(model, self.x[test]), test, strict=True))
        return round(right / len(self.y), 4)

    @staticmethod
    def _predict(model: Any, x: Any) -> list[str]:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            return [str(p) for p in model.predict(x)]

    def predict(self, vectors: Any) -> list[str]:
        import numpy as np

        x = np.asarray(vectors, dtype=np.float64)
        if self._model is None:
            return [self._only or ""] * len(x)
        return self._predict(self._model, x) if len(x) else []


class Labeler:
    """What the pipeline asks during a run: the class the model predicts for an original (computed once, when it
    was fitted) and for each variant, from the vector the filter already made for it, or encoded here."""

    def __init__(self, model: LabelModel, originals: list[str], vectors: Any, encode: Callable[[list[str]], Any]):
        self.model = model
        self.check = model.check
        self._original = dict(zip(originals, model.predict(vectors), strict=True))
        self._encode = encode

    def original(self, text: str) -> str:
        return self._original[text]

    def predict(self, texts: list[str], vectors: list[Any]) -> list[str]:
        """Predictions for `texts`; a vector that is None (the score came from the cache) is encoded now."""
        import numpy as np

        missing = [i for i, v in enumerate(vectors) if v is None]
        if missing:
            fresh = self._encode([texts[i] for i in missing])
            vectors = list(vectors)
            for i, vec in zip(missing, fresh, strict=True):
                vectors[i] = vec
        return self.model.predict(np.stack(vectors)) if texts else []
