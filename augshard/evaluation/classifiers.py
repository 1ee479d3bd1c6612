"""The classifiers of `augshard evaluate`: word and character n-gram TF-IDF or frozen sentence vectors, each with a
class-balanced logistic regression, fitted on one split's training texts and scored on its test originals.

Both are fixed, documented models (no search): the point is the same model with and without a combo's variants."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import pickle
import sys
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from augshard.core.errors import ConfigError

FEATURES = ("tfidf", "embedding")
MODEL = "model"  # the user's own estimator (--model), a features set beside the built-in ones
HASH_BITS = 20  # 2^20 hashed columns per analyzer: collisions are rare at this size and cost no memory
MAX_ITER = 1000  # liblinear's iterations, whichever path fits
# The two paths of `fit_ovr_logistic`, as evaluation.json's run_info counts them.
BINDING, FALLBACK = "liblinear_binding", "public_estimator"
_FITS: Counter = Counter()  # fits per path in this process since `take_fits()`


@dataclass(frozen=True)
class TfidfSettings:
    """Word 1-2 grams and character 3-5 grams (within word boundaries), hashed so a text is vectorised once and
    nothing is learnt from anything but the model's training texts' document frequencies."""

    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] = (3, 5)
    hash_features: int = 2**HASH_BITS
    sublinear_tf: bool = True
    idf: str = "smooth idf from the model's training texts: the split's training originals and the variants added"
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
        """Smooth inverse document frequencies of the rows of `counts` (a model's training texts), as scikit-learn's
        TfidfTransformer computes them."""
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
    """Fit on the (weighed) training rows, predict the (weighed) test rows: `TfidfClassifier`'s model."""
    return predict_weighed(fit_weighed(x_train, y_train, settings.C, settings.tol), x_test)


def fit_weighed(x: Any, y: list[str], c: float, tol: float) -> tuple[list[str], Any, Any, Any]:
    """(classes, column remap, coef, intercept) of the logistic regression on weighed rows. Columns no training row
    uses get weight 0 at the optimum (their gradient is the L2 term alone), so they are dropped before fitting: the
    same model, much smaller."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    classes = sorted(set(y))
    if len(classes) == 1:
        return classes, None, None, None
    used = np.zeros(x.shape[1], dtype=bool)
    used[x.indices] = True
    remap = np.full(x.shape[1], -1, dtype=np.int64)
    remap[used] = np.arange(int(used.sum()))
    with threadpool_limits(1):
        coef, intercept = fit_ovr_logistic(_columns(x, remap), np.asarray(y), classes, c, tol)
    return classes, remap, coef, intercept


def predict_weighed(model: tuple[list[str], Any, Any, Any], x: Any) -> list[str]:
    """The class of each weighed row: the highest one-vs-rest score (the first class on a tie)."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    classes, remap, coef, intercept = model
    if remap is None:
        return [classes[0]] * x.shape[0]
    with threadpool_limits(1):
        scores = _columns(x, remap) @ coef.T + intercept
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


# --- the built-in TF-IDF model as a scikit-learn estimator -------------------------------------------------------


def __getattr__(name: str) -> Any:
    """`TfidfClassifier`, made on first use: an estimator's class needs scikit-learn (a second to import), which
    `augshard --help` must not pay for (the CLI imports this module, through findings.py and scoring.py)."""
    if name != "TfidfClassifier":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    made = globals()[name] = _tfidf_classifier_class()
    return made


def _tfidf_classifier_class() -> type:
    import numpy as np
    from sklearn.base import BaseEstimator, ClassifierMixin

    class TfidfClassifier(ClassifierMixin, BaseEstimator):
        """`--features tfidf` as an estimator on raw texts: hashed word and character n-gram counts, sublinear TF
        times the smooth IDF of its own training texts, rows L2-normalised, and the one-vs-rest logistic regression
        liblinear fits in one call. The evaluation runs the same steps (TfidfSpace, fit_weighed, predict_weighed) on
        n-gram counts it caches per worker, so each text is vectorised once, not once per split; `fit_counts` and
        `predict_counts` take such counts too."""

        def __init__(self, C: float = TfidfSettings.C, tol: float = TfidfSettings.tol) -> None:  # noqa: N803
            self.C = C
            self.tol = tol

        def fit(self, texts: Any, y: Any) -> Any:
            return self.fit_counts(TfidfSpace().counts(list(texts)), list(y))

        def predict(self, texts: Any) -> Any:
            return np.asarray(self.predict_counts(TfidfSpace().counts(list(texts))))

        def fit_counts(self, counts: Any, y: list[Any]) -> Any:
            space = TfidfSpace()
            self.idf_ = space.idf(counts)
            self.model_ = fit_weighed(space.weigh(counts, self.idf_), list(y), self.C, self.tol)
            self.classes_ = np.asarray(self.model_[0])
            return self

        def predict_counts(self, counts: Any) -> list[Any]:
            return predict_weighed(self.model_, TfidfSpace().weigh(counts, self.idf_))

    TfidfClassifier.__qualname__ = "TfidfClassifier"  # pickled by reference: found again through __getattr__
    return TfidfClassifier


# --- the user's own model (--model) ------------------------------------------------------------------------------

_FOUND: dict[tuple[str, str], Any] = {}  # "module:factory" (and its directory) -> the object, once per process


@dataclass(frozen=True)
class ModelSpec:
    """The user's model as it travels to the worker processes: named by "module:factory" or "file.py:factory"
    (imported again in each worker, from `cwd`), or a zero-argument callable or an estimator (pickled). Every split
    gets a fresh model: a new call of the factory, or a clone of the estimator."""

    given: str  # what the user gave, as error messages name it
    factory: str | None = None  # "package.module:factory" or "path/to/file.py:factory"
    target: Any = None  # a zero-argument callable, or an estimator (from the API)
    cwd: str = ""  # where the module or file is looked for
    class_name: str = ""  # of the estimator built when it was loaded
    text: str = ""  # its repr, at most 1,000 characters

    def build(self) -> Any:
        """A fresh, unfitted estimator."""
        found = _find(self.factory, self.cwd, self.given) if self.factory is not None else self.target
        return _fresh(found, self.given)

    def describe(self) -> dict[str, Any]:
        """What evaluation.json records of it."""
        named = self.factory or (None if _is_estimator(self.target) else _qualified(self.target))
        return {"factory": named, "class": self.class_name, "repr": self.text}


def load_model(value: Any, workers: int) -> ModelSpec:
    """`--model`, checked now (imported, called once, an estimator) so that a mistake is one line before any work:
    "package.module:factory", "path/to/file.py:factory" (relative to the current directory, which is put on
    sys.path as uvicorn does), a zero-argument callable returning an estimator, or an estimator."""
    cwd = os.getcwd()
    if isinstance(value, str):
        spec = ModelSpec(repr(value), factory=value, cwd=cwd)
    elif _is_estimator(value) or callable(value):
        spec = ModelSpec(_shown(value), target=value, cwd=cwd)
        if workers > 1:
            _check_sendable(value, spec.given)
    else:
        raise ConfigError(f"--model {_shown(value)}: expected 'module:factory', 'file.py:factory', a callable "
                          "returning an estimator, or an estimator")  # fmt: skip
    built = spec.build()
    kind = type(built)
    return replace(spec, class_name=f"{kind.__module__}.{kind.__qualname__}", text=repr(built)[:1000])


def _find(value: str, cwd: str, given: str) -> Any:
    if (value, cwd) in _FOUND:
        return _FOUND[(value, cwd)]
    where, colon, attr = value.rpartition(":")
    if not colon or not where.strip() or not attr.strip():
        raise ConfigError(f"--model {given}: expected 'package.module:factory' or 'path/to/file.py:factory'")
    module = _import_file(where, cwd, given) if where.endswith(".py") else _import_module(where, cwd, given)
    found = module
    for part in attr.split("."):
        if not hasattr(found, part):
            raise ConfigError(f"--model {given}: {where} has no attribute '{attr}'")
        found = getattr(found, part)
    if not callable(found) and not _is_estimator(found):
        raise ConfigError(f"--model {given}: '{attr}' is a {type(found).__name__}, not a callable returning an "
                          "estimator")  # fmt: skip
    _FOUND[(value, cwd)] = found
    return found


def _import_module(name: str, cwd: str, given: str) -> Any:
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    importlib.invalidate_caches()
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise ConfigError(f"--model {given}: no module named '{exc.name}' (looked in {cwd} and the installed "
                              "packages)") from None  # fmt: skip
        raise ConfigError(f"--model {given}: importing {name} raised {_one_line(exc)}") from None
    except Exception as exc:  # the user's module failed as it was imported: say how, in one line
        raise ConfigError(f"--model {given}: importing {name} raised {_one_line(exc)}") from None


def _import_file(where: str, cwd: str, given: str) -> Any:
    """A file imported under a name of its own (its path's digest), so two files called model.py never collide."""
    path = Path(cwd, where).resolve()
    if not path.is_file():
        raise ConfigError(f"--model {given}: file {where} not found (relative to {cwd})")
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    name = "augshard_model_" + hashlib.sha256(str(path).encode()).hexdigest()[:16]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ConfigError(f"--model {given}: importing {where} raised {_one_line(exc)}") from None
    return module


def _fresh(found: Any, given: str) -> Any:
    """A clone of an estimator, or what the factory returns (an estimator, or one line saying what it was)."""
    if _is_estimator(found):
        from sklearn.base import clone

        return clone(found, safe=False)  # an object without get_params is deep-copied
    try:
        built = found()
    except Exception as exc:
        raise ConfigError(f"--model {given}: the factory raised {_one_line(exc)}") from None
    if not _is_estimator(built):
        raise ConfigError(f"--model {given}: the factory returned a {type(built).__name__}, not an estimator (with "
                          "fit and predict)")  # fmt: skip
    return built


def _check_sendable(value: Any, given: str) -> None:
    """Spawned workers receive the callable or estimator pickled: by reference to a module they can import."""
    owner = getattr(value, "__module__", None) if not _is_estimator(value) else type(value).__module__
    interactive = owner == "__main__" and not hasattr(sys.modules.get("__main__"), "__file__")
    try:
        pickle.loads(pickle.dumps(value))
        problem = "it was defined interactively" if interactive else ""
    except Exception as exc:
        problem = _one_line(exc)
    if problem:
        raise ConfigError(f"--model {given}: cannot be sent to the worker processes ({problem}); define it in an "
                          "importable module and pass 'module:factory', or use workers=1")  # fmt: skip


def _is_estimator(value: Any) -> bool:
    return not isinstance(value, type) and all(callable(getattr(value, m, None)) for m in ("fit", "predict"))


def _qualified(value: Any) -> str:
    return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', type(value).__qualname__)}"


def _shown(value: Any) -> str:
    return f"{type(value).__qualname__}(...)" if _is_estimator(value) else _qualified(value)


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:300]
