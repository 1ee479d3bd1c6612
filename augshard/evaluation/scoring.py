"""One candidate (a combo of the run, or a whole export) scored over every split, in a worker process: its variants
read and joined to their originals, vectorised or looked up once, and for each split one model trained on the
training originals plus their variants and scored on the test originals, overall and class by class."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from augshard.core.errors import ConfigError
from augshard.evaluation.classifiers import (
    MODEL,
    EmbeddingSettings,
    ModelSpec,
    TfidfSettings,
    TfidfSpace,
    fit_predict_embedding,
    fit_predict_tfidf,
)
from augshard.runner.procs import cap_threads
from augshard.shard.cache import Cache
from augshard.shard.encoders import Encoder
from augshard.shard.quality import score_key
from augshard.storage import parquet_files
from augshard.storage.vectors import read_vectors


@dataclass(frozen=True)
class Candidate:
    """What is compared with the baseline: one combo of the run, or a whole export."""

    name: str  # methods joined by '+', or `export`
    combo_id: str
    combo_dir: str
    k: int
    methods: tuple[str, ...]
    fingerprint: str
    files: tuple[str, ...]  # its Parquet files
    columns: tuple[str, str]  # (row key column, the classified text's column)
    vectors: str | None = None  # a vectors.parquet folder usable for --features embedding


@dataclass(frozen=True)
class Split:
    repeat: int
    fold: int
    size: float
    train: list[int]
    test: list[int]
    # A bootstrap resample of the previous split's test set (`--test-split`): positions in `test`, drawn with
    # replacement; the model is that split's, only the scoring differs.
    sample: list[int] | None = None


@dataclass(frozen=True)
class WorkerSetup:
    texts: list[str]
    labels: list[str]
    keys: list[str]
    splits: list[Split]
    features: tuple[str, ...]
    vectors: Any  # the originals' sentence vectors (--features embedding), else None
    encoder: dict[str, Any] | None  # how to encode what is missing: model path, backend, device
    cache_path: str | None
    classes: tuple[str, ...] = ()  # the originals' distinct labels, sorted (empty: read from `labels`)
    model: ModelSpec | None = None  # the user's estimator, for the "model" features

    @property
    def class_order(self) -> tuple[str, ...]:
        """The classes each split's per-class scores are aligned with."""
        return self.classes or tuple(sorted(set(self.labels)))


_STATE: dict[str, Any] = {}


def init_worker(setup: WorkerSetup) -> None:
    cap_threads(1)
    _STATE.clear()
    _STATE["setup"] = setup
    _STATE["position"] = {k: i for i, k in enumerate(setup.keys)}
    if "tfidf" in setup.features:
        t0 = time.perf_counter()
        space = TfidfSpace()
        # The originals' n-gram counts, once per worker; each split's IDF depends on the variants it trains on.
        _STATE.update(space=space, counts=space.counts(setup.texts), setup_s=time.perf_counter() - t0)


def _read_variants(candidate: Candidate, position: dict[str, int]) -> tuple[list[int], list[str], list[tuple]]:
    """(original position, text, (row key, variant)) of the candidate's variants of known originals, in a fixed
    order (original, then the file's order), whatever order the files hold them in."""

    key_col, text_col = candidate.columns
    rows = []
    for path in candidate.files:
        names = parquet_files.read_schema(path).names
        extra = [c for c in ("variant", "combo_id", "k") if c in names]
        table = parquet_files.read_table(path, columns=[key_col, text_col, *extra])
        keys, texts = table.column(key_col).to_pylist(), table.column(text_col).to_pylist()
        n = len(keys)
        variants = table.column("variant").to_pylist() if "variant" in names else [0] * n
        combos = table.column("combo_id").to_pylist() if "combo_id" in names else [""] * n
        sizes = table.column("k").to_pylist() if "k" in names else [1] * n
        for key, text, variant, combo, k in zip(keys, texts, variants, combos, sizes, strict=True):
            at = position.get(key)
            if k == 0 or at is None or text is None:
                continue  # an export's copy of an original (--include-originals), or an original left out
            rows.append((at, (key, variant, combo or ""), text))
    rows.sort(key=lambda r: (r[0], r[1]))
    return [r[0] for r in rows], [r[2] for r in rows], [r[1] for r in rows]


def evaluate_candidate(index: int, candidate: Candidate | None) -> dict[str, Any]:
    """Every split's scores for the baseline (candidate None) or one candidate, per feature set."""
    import numpy as np

    setup: WorkerSetup = _STATE["setup"]
    timing = Counter()
    t0 = time.perf_counter()
    owners: list[int] = []
    texts: list[str] = []
    tags: list[tuple] = []
    if candidate is not None:
        owners, texts, tags = _read_variants(candidate, _STATE["position"])
    timing["read_s"] += time.perf_counter() - t0
    owner_array = np.asarray(owners, dtype=np.int64)
    labels = np.asarray(setup.labels)
    out: dict[str, Any] = {"index": index, "variants": len(texts), "scores": {}, "vectors": Counter()}
    for feature in setup.features:
        t0 = time.perf_counter()
        if feature == "tfidf":
            counts = _STATE["space"].counts(texts)
        elif feature == MODEL:
            counts = texts  # the user's estimator reads the texts themselves
        else:
            counts = _variant_vectors(candidate, texts, tags, out["vectors"])
        if feature != MODEL:
            timing["vectorise_s" if feature == "tfidf" else "encode_s"] += time.perf_counter() - t0
        scores, predicted = [], []
        for n, split in enumerate(setup.splits):
            t0 = time.perf_counter()
            in_train = np.zeros(len(setup.texts), dtype=bool)
            in_train[split.train] = True
            chosen = np.flatnonzero(in_train[owner_array]) if len(owners) else np.zeros(0, dtype=np.int64)
            y_train = list(labels[split.train]) + list(labels[owner_array[chosen]])
            if split.sample is None:
                truth = list(labels[split.test])
                predicted = _fit_predict(feature, split, counts, chosen, y_train, n)
                coded = _coded(truth, predicted)
                f1, acc, per_class, recall = _scores(truth, predicted, setup.class_order)
            else:
                f1, acc, per_class, recall = _resample_scores(coded, split.sample, setup.class_order)
            scores.append((f1, acc, int(len(chosen)), per_class, recall))  # findings.py reads them by position
            timing["fit_s"] += time.perf_counter() - t0
        out["scores"][feature] = scores
    # A worker's one-off setup (its originals' n-grams counted) is reported with its first task.
    timing["setup_s"] += _STATE.pop("setup_s", 0.0)
    out["timing"] = dict(timing)
    return out


def _coded(truth: list[str], predicted: list[str]) -> tuple[list[str], Any, Any]:
    """The test set's labels and predictions as class codes, once, for its bootstrap resamples."""
    import numpy as np

    names = sorted(set(truth) | set(predicted))
    code = {c: i for i, c in enumerate(names)}
    return names, np.asarray([code[c] for c in truth]), np.asarray([code[c] for c in predicted])


def _resample_scores(coded: tuple[list[str], Any, Any], sample: list[int], classes: tuple[str, ...]) -> tuple:
    """`_scores` of a bootstrap resample (`Split.sample`), from its confusion matrix: the same definitions
    (macro-F1 over the classes present in the resample, zero where undefined), a thousand times faster."""
    import numpy as np

    names, truth, predicted = coded
    t, p, k = truth[sample], predicted[sample], len(names)
    matrix = np.bincount(t * k + p, minlength=k * k).reshape(k, k)
    hits, support = np.diag(matrix), matrix.sum(axis=1)
    f1 = 2 * hits / np.maximum(support + matrix.sum(axis=0), 1)
    recall = hits / np.maximum(support, 1)
    present = np.flatnonzero(support)
    f1s = {names[i]: float(f1[i]) for i in present}
    recalls = {names[i]: float(recall[i]) for i in present}
    each, found = tuple(f1s.get(c) for c in classes), tuple(recalls.get(c) for c in classes)
    return float(f1[present].mean()), float(hits.sum() / len(t)), each, found


def _variant_vectors(candidate: Candidate | None, texts: list[str], tags: list[tuple], tally: Counter) -> Any:
    """The variants' sentence vectors: the run's own (vectors.parquet) where it kept them, the cache's, or encoded."""
    import numpy as np

    setup: WorkerSetup = _STATE["setup"]
    dim = setup.vectors.shape[1]
    out = np.zeros((len(texts), dim), dtype=np.float32)
    missing = list(range(len(texts)))
    if candidate is not None and candidate.vectors and texts:
        stored = read_vectors(Path(candidate.vectors))
        # evaluate checked them (vectors.usable_vectors); vectors that still do not fit are encoded, never used
        if stored is not None and stored[1].shape[1] == dim and np.isfinite(stored[1]).all():
            where = {key: n for n, key in enumerate(stored[0])}
            still = []
            for i in missing:
                n = where.get(tags[i][:2])
                if n is None:
                    still.append(i)
                else:
                    out[i] = stored[1][n]
            tally["stored"] += len(missing) - len(still)
            missing = still
    if missing:
        vectors, from_cache = encode_with_cache([texts[i] for i in missing], setup.encoder, setup.cache_path)
        out[missing] = vectors
        tally["from_cache"] += from_cache
        tally["encoded"] += len(missing) - from_cache
    return out


def _fit_predict(feature: str, split: Split, variants: Any, chosen: Any, y_train: list[str], n: int) -> list[str]:
    """One model of one split, trained on the training originals then the chosen variants, in that order; its
    predictions for the test originals."""
    import numpy as np

    setup: WorkerSetup = _STATE["setup"]
    if feature == "tfidf":
        import scipy.sparse as sp

        # TfidfClassifier's computation on cached counts: IDF from every training text, originals and variants.
        space, originals = _STATE["space"], _STATE["counts"]
        train = sp.vstack([originals[split.train], variants[chosen]], format="csr")
        idf = space.idf(train)
        x_train, x_test = space.weigh(train, idf), space.weigh(originals[split.test], idf)
        return fit_predict_tfidf(x_train, y_train, x_test, TfidfSettings())
    if feature == MODEL:
        train_texts = [setup.texts[i] for i in split.train] + [variants[i] for i in chosen]
        return fit_predict_model(setup.model, train_texts, y_train, [setup.texts[i] for i in split.test], n)
    x_train = np.vstack([setup.vectors[split.train], variants[chosen]])
    return fit_predict_embedding(x_train, y_train, setup.vectors[split.test], EmbeddingSettings())


def fit_predict_model(spec: ModelSpec | None, texts: list[str], y: list[str], test: list[str], n: int) -> list[str]:
    """The user's estimator, fresh for this split, fitted with one BLAS thread as the built-in ones; what it
    raises is one line naming --model and the split, not a worker's traceback."""
    from threadpoolctl import threadpool_limits

    assert spec is not None, "the 'model' features need WorkerSetup.model"
    estimator = spec.build()
    try:
        with threadpool_limits(1):
            estimator.fit(texts, y)
            predicted = list(estimator.predict(test))
    except Exception as exc:
        raise ConfigError(f"--model {spec.given}: split {n} raised {type(exc).__name__}: "
                          f"{' '.join(str(exc).split())[:300]}") from None  # fmt: skip
    if len(predicted) != len(test):
        raise ConfigError(f"--model {spec.given}: predicted {len(predicted)} labels for {len(test)} texts")
    return [str(p) for p in predicted]


def _scores(truth: list[str], predicted: list[str], classes: tuple[str, ...]) -> tuple[float, float, tuple, tuple]:
    """Macro-F1 over the classes of the test originals (the same classes for the baseline and every combo of the
    split), accuracy, and each class's F1 and recall in `classes`' order (None for a class no test original has)."""
    from sklearn.metrics import f1_score, recall_score

    present = sorted(set(truth))
    f1 = float(f1_score(truth, predicted, labels=present, average="macro", zero_division=0))
    acc = sum(t == p for t, p in zip(truth, predicted, strict=True)) / len(truth)
    each = f1_score(truth, predicted, labels=present, average=None, zero_division=0)
    found = recall_score(truth, predicted, labels=present, average=None, zero_division=0)
    f1s = {c: float(v) for c, v in zip(present, each, strict=True)}
    recalls = {c: float(v) for c, v in zip(present, found, strict=True)}
    return f1, acc, tuple(f1s.get(c) for c in classes), tuple(recalls.get(c) for c in classes)


# --- encoding (the embedding features) -------------------------------------------------------------------------

_ENCODER: dict[str, Any] = {}


def make_encoder(spec: dict[str, Any]) -> Any:
    key = json.dumps(spec, sort_keys=True)
    if key not in _ENCODER:
        _ENCODER[key] = Encoder(spec["model"], 64, spec["backend"], spec["device"])
    return _ENCODER[key]


def encode_with_cache(texts: list[str], spec: dict[str, Any] | None, cache_path: str | None) -> tuple[Any, int]:
    """Vectors of `texts` (float32, normalised) with the run's encoder, read from or added to the cache; and how
    many came from the cache."""
    import numpy as np

    assert spec is not None
    encoder = make_encoder(spec)
    if not texts:
        return np.zeros((0, 0), dtype=np.float32), 0
    cache = Cache(cache_path) if cache_path else None
    try:
        keys = ["text|" + score_key(encoder.identity, t, "") for t in texts]
        found = cache.get_vectors(keys) if cache is not None else {}
        todo = [i for i, k in enumerate(keys) if k not in found]
        fresh = encoder.encode([texts[i] for i in todo]).astype(np.float32) if todo else None
        dim = fresh.shape[1] if fresh is not None else len(np.frombuffer(next(iter(found.values())), np.float32))
        out = np.zeros((len(texts), dim), dtype=np.float32)
        for i, k in enumerate(keys):
            if k in found:
                out[i] = np.frombuffer(found[k], dtype=np.float32)
        if fresh is not None:
            out[todo] = fresh
            if cache is not None:
                cache.put_vectors((keys[i], fresh[n].tobytes()) for n, i in enumerate(todo))
        return out, len(texts) - len(todo)
    finally:
        if cache is not None:
            cache.close()
