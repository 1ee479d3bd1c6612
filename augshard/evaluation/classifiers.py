"""The classifiers of `augshard evaluate`: word and character n-gram TF-IDF or frozen sentence vectors, each with a
class-balanced logistic regression, fitted on one split's training texts and scored on its test originals.

Both are fixed, documented models (no search): the point is the same model with and without a combo's variants."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

FEATURES = ("tfidf", "embedding")
HASH_BITS = 20  # 2^20 hashed columns per analyzer: collisions are rare at this size and cost no memory
MAX_ITER = 1000  # liblinear's iterations, whichever path fits
# The two paths of `fit_ovr_logistic`, as evaluation.json's run_info counts them.
BINDING, FALLBACK = "liblinear_binding", "public_estimator"
_FITS: Counter = Counter()  # fits per path in this process since `take_fits()`


@dataclass(frozen=True)
class TfidfSettings:
    """Word 1-2 grams and character 3-5 grams (within word boundaries), hashed so a text is vectorised once and no
    vocabulary is learnt from anything but the fold's training originals' document frequencies."""

    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] = (3, 5)
    hash_features: int = 2**HASH_BITS
    sublinear_tf: bool = True
    idf: str = "smooth idf from the split's training originals only (the same for the baseline and every combo)"
    norm: str = "l2"
    # Logistic regression, one-vs-rest, L2, liblinear's dual coordinate descent: the same kind of optimum as lbfgs at
    # a fraction of its time on sparse n-grams (docs/evaluate.md has the measurements that chose these settings).
    C: float = 2.0
    tol: float = 1e-3
    class_weight: str = "balanced"
    solver: str = "liblinear (dual), one-vs-rest"


@dataclass(frozen=True)
class EmbeddingSettings:
    """Frozen sentence vectors (the run's encoder: MiniLM by default) and a multinomial logistic regression."""

    C: float = 1.0
    max_iter: int = 2000
    class_weight: str = "balanced"
    solver: str = "lbfgs, multinomial"


def settings_document() -> dict[str, Any]:
    return {"tfidf": asdict(TfidfSettings()), "embedding": asdict(EmbeddingSettings())}


class TfidfSpace:
    """Hashed raw n-gram counts of texts (stateless), and the per-split TF-IDF weighting of them."""

    def __init__(self, settings: TfidfSettings | None = None) -> None:
        from sklearn.feature_extraction.text import HashingVectorizer

        self.settings = settings or TfidfSettings()
        common = {"n_features": self.settings.hash_features, "alternate_sign": False, "norm": None, "lowercase": True}
        self._word = HashingVectorizer(analyzer="word", ngram_range=self.settings.word_ngrams, **common)
        self._char = HashingVectorizer(analyzer="char_wb", ngram_range=self.settings.char_ngrams, **common)

    def counts(self, texts: list[str]) -> Any:
        """A CSR matrix of n-gram counts, one row per text, float64."""
        import scipy.sparse as sp

        if not texts:
            return sp.csr_matrix((0, 2 * self.settings.hash_features))
        return sp.hstack([self._word.transform(texts), self._char.transform(texts)], format="csr")

    @staticmethod
    def idf(counts: Any) -> Any:
        """Smooth inverse document frequencies of the rows of `counts` (the split's training originals)."""
        import numpy as np

        df = np.bincount(counts.indices, minlength=counts.shape[1])
        n = counts.shape[0]
        return np.log((1.0 + n) / (1.0 + df)) + 1.0

    def weigh(self, counts: Any, idf: Any) -> Any:
        """Sublinear TF x IDF, each row L2-normalised (in place on a copy of the counts' values)."""
        import numpy as np

        x = counts.astype(np.float64, copy=True)
        if self.settings.sublinear_tf:
            np.log(x.data, out=x.data)
            x.data += 1.0
        x.data *= idf[x.indices]
        per_row = np.diff(x.indptr)
        rows = np.repeat(np.arange(x.shape[0]), per_row)
        norms = np.sqrt(np.bincount(rows, weights=x.data * x.data, minlength=x.shape[0]))
        norms[norms == 0] = 1.0
        x.data /= np.repeat(norms, per_row)
        return x


def fit_predict_tfidf(x_train: Any, y_train: list[str], x_test: Any, settings: TfidfSettings) -> list[str]:
    """Fit on the training rows, predict the test rows. Columns no training row uses get weight 0 at the optimum
    (their gradient is the L2 term alone), so they are dropped before fitting: the same model, much smaller."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    classes = sorted(set(y_train))
    if len(classes) == 1:
        return [classes[0]] * x_test.shape[0]
    used = np.zeros(x_train.shape[1], dtype=bool)
    used[x_train.indices] = True
    remap = np.full(x_train.shape[1], -1, dtype=np.int64)
    remap[used] = np.arange(int(used.sum()))
    with threadpool_limits(1):
        coef, intercept = fit_ovr_logistic(_columns(x_train, remap), np.asarray(y_train), classes, settings.C,
                                           settings.tol)  # fmt: skip
        scores = _columns(x_test, remap) @ coef.T + intercept
    return [classes[i] for i in np.asarray(scores).argmax(axis=1)]


def _columns(x: Any, remap: Any) -> Any:
    """`x` with its columns renumbered by `remap`; entries of columns mapped to -1 dropped."""
    import numpy as np
    import scipy.sparse as sp

    new = remap[x.indices]
    keep = new >= 0
    indptr = np.concatenate([[0], np.cumsum(keep)])[x.indptr]
    width = int(remap.max()) + 1
    return sp.csr_matrix((x.data[keep], new[keep], indptr), shape=(x.shape[0], width))


def fit_predict_embedding(x_train: Any, y_train: list[str], x_test: Any, settings: EmbeddingSettings) -> list[str]:
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    classes = sorted(set(y_train))
    if len(classes) == 1:
        return [classes[0]] * len(x_test)
    with threadpool_limits(1):
        model = LogisticRegression(
            C=settings.C, max_iter=settings.max_iter, class_weight=settings.class_weight, random_state=0
        ).fit(np.asarray(x_train, dtype=np.float64), y_train)
        return [str(p) for p in model.predict(np.asarray(x_test, dtype=np.float64))]


def fit_ovr_logistic(x: Any, y: Any, classes: list[str], c: float, tol: float) -> tuple[Any, Any]:
    """(coef, intercept) of one-vs-rest L2 logistic regressions, one row per class, balanced class weights.

    liblinear trains every class in one call on one copy of the data; scikit-learn's public estimator no longer
    offers that for more than two classes (one-vs-rest around it converts the data once per class: 1.5x the time),
    so its liblinear binding is called directly. Should that private binding move or change its signature, the
    public estimator fits the same model (`_fit_public`); `take_fits()` says which of the two ran."""
    import numpy as np

    try:
        from sklearn.svm._base import _fit_liblinear

        coef, intercept, _ = _fit_liblinear(
            x, y, c, True, 1.0, "balanced", "l2", True, 0, MAX_ITER, tol, random_state=0, multi_class="ovr",
            loss="logistic_regression",
        )  # fmt: skip
        _FITS[BINDING] += 1
    except (ImportError, AttributeError, TypeError):  # moved, renamed, or called with arguments it no longer takes
        coef, intercept = _fit_public(x, y, classes, c, tol)
        _FITS[FALLBACK] += 1
    coef, intercept = np.asarray(coef), np.atleast_1d(np.asarray(intercept, dtype=np.float64))
    if len(classes) == 2 and coef.shape[0] == 1:  # one model for two classes: its score is the second class's
        coef, intercept = np.vstack([-coef, coef]), np.concatenate([-intercept, intercept])
    return coef, intercept


def _fit_public(x: Any, y: Any, classes: list[str], c: float, tol: float) -> tuple[Any, Any]:
    """The binding's model through scikit-learn's public estimator: liblinear's dual solver, the same iterations and
    random state, and its class weights. liblinear weighs class i's rows by n / (n_classes * n_i) and, in class i's
    one-vs-rest problem, the other rows by 1: so one binary fit per class with weights {1: w_i, 0: 1} (two classes:
    one fit, weighted "balanced"). The optimum is the same; the coefficients agree to the solver's tolerance."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.utils.class_weight import compute_class_weight

    y = np.asarray(y)
    common = {"C": c, "solver": "liblinear", "dual": True, "tol": tol, "max_iter": MAX_ITER, "random_state": 0,
              "intercept_scaling": 1.0}  # fmt: skip
    if len(classes) == 2:
        model = LogisticRegression(class_weight="balanced", **common).fit(x, y)
        return model.coef_, model.intercept_
    weights = compute_class_weight("balanced", classes=np.asarray(classes), y=y)
    coef, intercept = [], []
    for label, weight in zip(classes, weights, strict=True):
        model = LogisticRegression(class_weight={1: weight, 0: 1.0}, **common).fit(x, (y == label).astype(int))
        coef.append(model.coef_[0])
        intercept.append(model.intercept_[0])
    return np.vstack(coef), np.asarray(intercept)


def take_fits() -> dict[str, int]:
    """How many TF-IDF models each path fitted since the last call, zeros included (then counted from zero)."""
    out = {BINDING: _FITS[BINDING], FALLBACK: _FITS[FALLBACK]}
    _FITS.clear()
    return out
