"""`augshard evaluate` with the user's own model (`--model`, WorkerSetup.model) and each class's F1 per split: the
built-in TF-IDF is the scikit-learn pipeline it says it is, a model named by a file runs in spawned workers, a
wrong model is one line, and per-class scores say which class a candidate's variants helped."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from augshard.core.errors import ConfigError
from augshard.evaluation import classifiers
from augshard.evaluation.classifiers import HASH_BITS, MAX_ITER, TfidfSettings, load_model
from augshard.evaluation.evaluate import EvaluateOptions, Originals, make_splits
from augshard.evaluation.pool import run_tasks
from augshard.evaluation.scoring import Candidate, Split, WorkerSetup

FILLER = [f"w{n:03d}" for n in range(300)]
_LETTERS = random.Random(11)
CUES = {c: ["".join(_LETTERS.choices("bcdfghjklmnpqrstvwxz", k=7)) for _ in range(40)] for c in ("a", "b", "c")}


def _task(classes: str, n: int) -> Originals:
    """Filler words and one rare cue word of the row's class: hard to learn from the originals alone."""
    rng = random.Random(3)
    keys, texts, labels = [], [], []
    for i in range(n):
        label = classes[i % len(classes)]
        words = rng.sample(FILLER, 10) + [rng.choice(CUES[label])]
        rng.shuffle(words)
        keys.append(f"r{i:03d}")
        texts.append(" ".join(words))
        labels.append(label)
    return Originals(keys, texts, labels, list(range(n)))


def _candidate(folder: Path, originals: Originals, of: str, seed: int = 5) -> Candidate:
    """Two variants of every original of the classes in `of`: its text and eight more cues of its class."""
    rng = random.Random(seed)
    keys, texts, variants = [], [], []
    for key, text, label in zip(originals.keys, originals.texts, originals.labels, strict=True):
        if label in of:
            for v in range(2):
                keys.append(key)
                texts.append(text + " " + " ".join(rng.sample(CUES[label], 8)))
                variants.append(v)
    path = folder / f"variants_{of}.parquet"
    pq.write_table(pa.table({"row_key": keys, "text": texts, "variant": variants, "k": [1] * len(keys)}), path)
    return Candidate(of, of, f"combo_{of}", 1, ("m",), "f", (str(path),), ("row_key", "text"))


def _setup(originals: Originals, features: tuple[str, ...], model: Any = None, folds: int = 3) -> WorkerSetup:
    splits = make_splits(originals, EvaluateOptions(label_col="label", folds=folds))
    return WorkerSetup(originals.texts, originals.labels, originals.keys, splits, features, None, None, None,
                       tuple(originals.classes), model)  # fmt: skip


def public_pipeline() -> Any:
    """The built-in TF-IDF from scikit-learn's public parts: the same hashed n-grams, sublinear TF-IDF over the
    training texts, and liblinear's dual logistic regression (one model: two classes)."""
    from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, make_pipeline

    s = TfidfSettings()
    common = {"n_features": 2**HASH_BITS, "alternate_sign": False, "norm": None, "lowercase": True}
    ngrams = FeatureUnion([
        ("word", HashingVectorizer(analyzer="word", ngram_range=s.word_ngrams, **common)),
        ("char", HashingVectorizer(analyzer="char_wb", ngram_range=s.char_ngrams, **common)),
    ])  # fmt: skip
    regression = LogisticRegression(C=s.C, tol=s.tol, solver="liblinear", dual=True, class_weight="balanced",
                                    max_iter=MAX_ITER, random_state=0)  # fmt: skip
    return make_pipeline(ngrams, TfidfTransformer(sublinear_tf=True), regression)


def builtin_as_user_model() -> Any:
    return classifiers.TfidfClassifier()


def _assert_same_scores(results: list[dict], a: str, b: str) -> None:
    for result in results:
        for one, other in zip(result["scores"][a], result["scores"][b], strict=True):
            assert one[0] == pytest.approx(other[0], abs=1e-9) and one[1] == pytest.approx(other[1], abs=1e-9)
            assert one[2] == other[2]
            assert one[3] == pytest.approx(other[3], abs=1e-9)


# --- the built-in TF-IDF is a scikit-learn pipeline ----------------------------------------------------------------


def test_a_public_scikit_learn_pipeline_scores_as_the_builtin_tfidf(tmp_path: Path) -> None:
    """Two classes (scikit-learn's liblinear fits one model for two; see the next test for more): per split, the
    same macro-F1, accuracy and per-class F1 as `--features tfidf`, with and without variants."""
    originals = _task("ab", 90)
    spec = load_model(public_pipeline, workers=1)
    setup = _setup(originals, ("tfidf", "model"), spec)
    results = run_tasks(setup, [None, _candidate(tmp_path, originals, "ab")], 1, None)
    assert [s[2] for s in results[1]["scores"]["model"]] == [2 * len(s.train) for s in setup.splits]
    _assert_same_scores(results, "tfidf", "model")
    # and the variants changed the model: it is not the baseline twice
    assert [s[0] for s in results[1]["scores"]["tfidf"]] != [s[0] for s in results[0]["scores"]["tfidf"]]
    assert spec.describe()["class"] == "sklearn.pipeline.Pipeline"
    assert spec.describe()["factory"] == f"{__name__}.public_pipeline"
    assert "TfidfTransformer(sublinear_tf=True)" in spec.describe()["repr"]


def test_tfidf_classifier_as_a_user_model_scores_as_the_builtin_tfidf(tmp_path: Path) -> None:
    """Three classes: the built-in is TfidfClassifier run on cached counts. (scikit-learn's LogisticRegression
    refuses liblinear for three classes; OneVsRestClassifier around it weighs each class's problem as a balanced
    binary one, not as liblinear's one call does, so it is a close model, not the same one.)"""
    originals = _task("abc", 90)
    setup = _setup(originals, ("tfidf", "model"), load_model(builtin_as_user_model, workers=1))
    results = run_tasks(setup, [None, _candidate(tmp_path, originals, "abc")], 1, None)
    _assert_same_scores(results, "tfidf", "model")
    assert results[1]["fits"]["liblinear_binding"] == 2 * len(setup.splits)  # the built-in's and the user's


def test_tfidf_classifier_is_a_clonable_estimator_whose_idf_comes_from_its_training_texts() -> None:
    from sklearn.base import clone, is_classifier

    model = classifiers.TfidfClassifier(C=1.0)
    assert is_classifier(model) and clone(model).get_params() == {"C": 1.0, "tol": 1e-3}
    texts = ["red apple", "green apple", "red car", "blue car"]
    model.fit(texts, ["fruit", "fruit", "car", "car"])
    assert list(model.classes_) == ["car", "fruit"]
    assert list(model.predict(["an apple", "a car"])) == ["fruit", "car"]
    counts = classifiers.TfidfSpace().counts(texts)
    assert (model.idf_ == classifiers.TfidfSpace.idf(counts)).all()
    assert "from the model's training texts" in classifiers.settings_document()["tfidf"]["idf"]


# --- a model named by a file, in spawned workers ------------------------------------------------------------------

USER_FILE = """
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline


def build():
    return make_pipeline(TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4)), LogisticRegression(max_iter=300))
"""


def test_a_model_named_by_a_file_runs_in_spawned_workers_as_in_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "mine.py").write_text(USER_FILE)
    monkeypatch.chdir(tmp_path)  # "path/to/file.py:factory" is relative to the current directory
    originals = _task("abc", 60)
    candidates = [None, _candidate(tmp_path, originals, "a"), _candidate(tmp_path, originals, "bc")]
    spec = load_model("models/mine.py:build", workers=2)
    assert spec.describe()["factory"] == "models/mine.py:build"
    setup = _setup(originals, ("model",), spec)
    alone = run_tasks(setup, candidates, 1, None)
    pooled = run_tasks(setup, candidates, 2, None)
    assert [r["scores"] for r in pooled] == [r["scores"] for r in alone]
    assert all(0.0 <= s[0] <= 1.0 and len(s[3]) == 3 for r in alone for s in r["scores"]["model"])
    assert [s[2] for s in alone[2]["scores"]["model"]] == [
        2 * sum(originals.labels[i] in "bc" for i in split.train) for split in setup.splits
    ]


# --- refusals: one line naming --model and what was given ---------------------------------------------------------


def _refused(value: Any, workers: int = 1) -> str:
    with pytest.raises(ConfigError) as caught:
        load_model(value, workers)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("--model "), message
    return message


def test_bad_models_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "raising.py").write_text("def build():\n    raise ValueError('no such\\nthing')\n")
    (tmp_path / "wrong.py").write_text("def build():\n    return 'a pipeline'\nnumber = 3\n")
    (tmp_path / "broken_on_import.py").write_text("import nonexistent_dependency_zz\n")
    line = _refused("no_such_module_zz:build")
    assert "'no_such_module_zz:build'" in line and "no module named 'no_such_module_zz'" in line
    assert "has no attribute 'nothing'" in _refused("json:nothing")
    assert "file missing.py not found" in _refused("missing.py:build")
    assert "expected 'package.module:factory'" in _refused("just_a_name")
    assert "the factory raised ValueError: no such thing" in _refused("raising.py:build")
    assert "the factory raised ValueError" in _refused("raising:build")  # the current directory is on sys.path
    assert "returned a str, not an estimator" in _refused("wrong.py:build")
    assert "'number' is a int, not a callable" in _refused("wrong.py:number")
    line = _refused("broken_on_import:build")
    assert "importing broken_on_import raised ModuleNotFoundError" in line and "nonexistent_dependency_zz" in line
    assert "expected 'module:factory'" in _refused(42)
    line = _refused(lambda: public_pipeline(), workers=2)
    assert "cannot be sent to the worker processes" in line and "'module:factory'" in line and "workers=1" in line
    assert load_model(lambda: public_pipeline(), workers=1).describe()["class"] == "sklearn.pipeline.Pipeline"


def numbers_only() -> Any:
    """A model that cannot read texts: scikit-learn's plain logistic regression."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression()


def test_a_model_that_fails_on_a_split_is_one_line() -> None:
    originals = _task("ab", 30)
    setup = _setup(originals, ("model",), load_model(numbers_only, workers=1))
    with pytest.raises(ConfigError) as caught:
        run_tasks(setup, [None], 1, None)
    message = str(caught.value)
    assert message.startswith(f"--model {__name__}.numbers_only: split 0 raised ValueError: ") and "\n" not in message


def test_an_estimator_is_cloned_for_every_split() -> None:
    given = public_pipeline()
    spec = load_model(given, workers=2)  # an instance pickles: it can go to the workers
    assert spec.describe()["factory"] is None and spec.describe()["class"] == "sklearn.pipeline.Pipeline"
    one, two = spec.build(), spec.build()
    assert one is not given and two is not one and one.get_params()["logisticregression__C"] == 2.0


# --- per-class F1 ---------------------------------------------------------------------------------------------------


def test_variants_of_one_class_raise_that_classes_f1(tmp_path: Path) -> None:
    """Only class c's training originals get variants (with more of c's cues): c's F1 rises on the splits' test
    originals, the per-class tuple follows setup.classes, and its mean is the macro-F1."""
    originals = _task("abc", 150)
    setup = _setup(originals, ("tfidf",), folds=5)
    base, only_c = run_tasks(setup, [None, _candidate(tmp_path, originals, "c")], 1, None)

    def mean_f1(result: dict, cls: int) -> float:
        return sum(s[3][cls] for s in result["scores"]["tfidf"]) / len(setup.splits)

    assert setup.classes == ("a", "b", "c")
    rise = [mean_f1(only_c, k) - mean_f1(base, k) for k in range(3)]
    assert rise[2] > 0.05 and rise[2] == max(rise), rise  # c's the most (fewer a and b taken for c helps them too)
    pairs = zip(base["scores"]["tfidf"], only_c["scores"]["tfidf"], strict=True)
    assert all(with_c[3][2] >= without[3][2] for without, with_c in pairs)  # and on no split less
    for result in (base, only_c):
        for f1, _, _, per_class, _ in result["scores"]["tfidf"]:
            assert f1 == pytest.approx(sum(per_class) / 3, abs=1e-12)


def test_a_class_without_test_originals_has_no_per_class_score() -> None:
    originals = _task("abc", 30)
    train = [i for i in range(20)]
    test = [i for i in range(20, 30) if originals.labels[i] != "b"]
    setup = WorkerSetup(originals.texts, originals.labels, originals.keys, [Split(0, 0, 1.0, train, test)],
                        ("tfidf",), None, None, None)  # fmt: skip
    assert setup.class_order == ("a", "b", "c")  # no classes given: the labels' own, sorted
    ((f1, accuracy, used, per_class, recall),) = run_tasks(setup, [None], 1, None)[0]["scores"]["tfidf"]
    assert per_class[1] is None and per_class[0] is not None and per_class[2] is not None
    assert recall[1] is None and recall[0] is not None
    assert used == 0 and 0.0 <= accuracy <= 1.0
    assert f1 == pytest.approx((per_class[0] + per_class[2]) / 2, abs=1e-12)
