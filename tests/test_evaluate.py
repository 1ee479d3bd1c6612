"""`augshard evaluate` as a user runs it: the protocol leaks nothing, real effects are found with honest intervals,
the numbers do not depend on shards or row order, refusals are one line, and `export --best` chooses by it."""

from __future__ import annotations

import json
import random
import shutil
import signal
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import leave_a_stopped_run_over, run_cli, sample_rows, wait_for, write_csv

import augshard
from augshard.core.errors import ConfigError
from augshard.evaluation.classifiers import TfidfSettings, TfidfSpace, fit_predict_tfidf
from augshard.evaluation.evaluate import EvaluateOptions, Originals, make_splits
from augshard.evaluation.gains import holm, paired_gain

ROOT = Path("data/processed/augsets")
RUN = ("--text-col", "text", "--id-col", "id", "--quality-metric", "char_ratio", "--quality-min-sim", "0",
       "--quality-max-sim", "1")  # fmt: skip


def _run(cwd: Path, csv_path: Path, *args: str) -> None:
    proc = run_cli("run", "--input", str(csv_path), *RUN, *args, cwd=cwd)
    assert proc.returncode == 0, proc.stderr + proc.stdout


def _evaluate(cwd: Path, *args: str) -> dict:
    proc = run_cli("evaluate", "--format", "json", *args, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    if "--export" not in args and "--combos" not in args:  # the document printed is the one written
        assert doc == json.loads((cwd / ROOT / "evaluation.json").read_text())
    return doc


def _combo_files(cwd: Path) -> dict[str, Path]:
    return {p.parent.name: p for p in sorted((cwd / ROOT).glob("combo_*/dataset.parquet"))}


def _rewrite(path: Path, text_for: dict[str, list[str]]) -> None:
    """Replace the combo's variants by crafted texts: row key -> its variants' texts (same count of rows)."""
    table = pq.read_table(path)
    keys = table.column("row_key").to_pylist()
    variants = table.column("variant").to_pylist()
    texts = [text_for[k][v % len(text_for[k])] for k, v in zip(keys, variants, strict=True)]
    table = table.set_column(table.schema.get_field_index("text"), "text", pa.array(texts, pa.string()))
    pq.write_table(table, path)


# --- leakage ----------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_verbatim_copies_of_originals_do_not_leak_into_the_test_folds(tmp_path: Path) -> None:
    """Random labels cannot be learnt: with augshard's protocol a combo of verbatim copies stays at chance. A
    protocol that let test originals' copies into training scores far above chance on the same splits."""
    rng = random.Random(7)
    rows = [{"id": r["id"], "label": rng.choice("abc"), "text": r["text"]} for r in sample_rows(200)]
    csv_path = write_csv(tmp_path / "random.csv", rows)
    _run(tmp_path, csv_path, "--methods", "nlp_keyboard", "--num-shards", "1")
    (dataset,) = _combo_files(tmp_path).values()
    originals = {r["id"]: r["text"] for r in rows}
    _rewrite(dataset, {k: [t] for k, t in originals.items()})

    doc = _evaluate(tmp_path, "--label-col", "label", "--folds", "5", "--repeats", "2")
    (section,) = doc["results"]
    (combo,) = section["combos"]
    assert combo["variants_used"] > 100  # the copies were used: those of the training originals
    assert combo["macro_f1"]["mean"] < 0.45, combo  # three balanced random classes: chance is ~0.33
    assert section["baseline"]["macro_f1"]["mean"] < 0.45
    assert combo["verdict"] == "no evidence"

    # The same splits, classifier and features, but training on every original's copy (test ones included).
    ordered = sorted(rows, key=lambda r: r["id"])
    labels = [r["label"] for r in ordered]
    orig = Originals([r["id"] for r in ordered], [r["text"] for r in ordered], labels, list(range(len(ordered))))
    splits = make_splits(orig, EvaluateOptions(label_col="label", folds=5, repeats=2))
    space, settings = TfidfSpace(), TfidfSettings()
    counts = space.counts(orig.texts)
    leaky = []
    for split in splits:
        from sklearn.metrics import f1_score

        x = space.weigh(counts, space.idf(counts[split.train]))
        import scipy.sparse as sp

        x_train = sp.vstack([x[split.train], x], format="csr")  # every copy, the test originals' too
        y_train = [labels[i] for i in split.train] + labels
        predicted = fit_predict_tfidf(x_train, y_train, x[split.test], settings)
        leaky.append(f1_score([labels[i] for i in split.test], predicted, average="macro"))
    assert sum(leaky) / len(leaky) > 0.9, leaky
    assert sum(leaky) / len(leaky) - combo["macro_f1"]["mean"] > 0.45


# --- effects found, with intervals -------------------------------------------------------------------------------

FILLER = [f"w{n:03d}" for n in range(300)]
_LETTERS = random.Random(11)
# Random letter strings: no character n-gram says which class a cue belongs to.
CUES = {
    c: ["".join(_LETTERS.choices("bcdfghjklmnpqrstvwxz", k=7)) for _ in range(40)] for c in ("alpha", "beta", "gamma")
}


def _cue_run(tmp_path: Path) -> tuple[list[dict[str, str]], Path]:
    """The cue task as a user's CSV, and a run of two single-method combos on it (their variants get replaced)."""
    rows = _cue_task()
    csv_path = write_csv(tmp_path / "cues.csv", rows)
    _run(tmp_path, csv_path, "--methods", "nlp_keyboard,nlp_randchar_swap", "--max-combo-size", "1",
         "--num-shards", "1")  # fmt: skip
    return rows, csv_path


def _cue_task() -> list[dict[str, str]]:
    """A small, hard task: each text is filler plus one of its class's 40 rare cue words."""
    rng = random.Random(3)
    rows = []
    for n in range(180):
        label = ("alpha", "beta", "gamma")[n % 3]
        words = rng.sample(FILLER, 10) + [rng.choice(CUES[label])]
        rng.shuffle(words)
        rows.append({"id": f"r{n:03d}", "label": label, "text": " ".join(words)})
    return rows


@pytest.mark.slow
def test_a_helpful_combo_gains_and_a_harmful_one_loses_with_intervals_excluding_zero(tmp_path: Path) -> None:
    rows, _ = _cue_run(tmp_path)
    files = _combo_files(tmp_path)
    rng = random.Random(5)
    by_id = {r["id"]: r for r in rows}
    others = {c: [o for o in CUES if o != c] for c in CUES}
    helpful = {k: [r["text"] + " " + " ".join(rng.sample(CUES[r["label"]], 8)) for _ in range(2)]
               for k, r in by_id.items()}  # fmt: skip
    harmful = {k: [r["text"] + " " + " ".join(rng.sample(CUES[rng.choice(others[r["label"]])], 8)) for _ in range(2)]
               for k, r in by_id.items()}  # fmt: skip
    _rewrite(files["combo_1_nlp_keyboard"], helpful)
    _rewrite(files["combo_1_nlp_randchar_swap"], harmful)

    doc = _evaluate(tmp_path, "--label-col", "label", "--folds", "5", "--repeats", "2")
    (section,) = doc["results"]
    by_name = {c["name"]: c for c in section["combos"]}
    good, bad = by_name["nlp_keyboard"], by_name["nlp_randchar_swap"]
    assert good["gain"]["ci_low"] > 0, good
    assert good["verdict"] == "helps"
    assert bad["gain"]["ci_high"] < 0, bad
    assert bad["verdict"] == "hurts"
    assert section["combos"][0]["name"] == "nlp_keyboard"  # sorted by gain
    # The marginal effect of each method is the difference between the two.
    marginal = {m["method"]: m["marginal"]["mean"] for m in section["methods"]}
    assert marginal["nlp_keyboard"] == pytest.approx(good["gain"]["mean"] - bad["gain"]["mean"], abs=1e-5)


# --- the same numbers whatever the shards, workers or row order ---------------------------------------------------


def _deterministic(doc: dict, fingerprints: bool = True) -> dict:
    """Everything but when and where it ran (and the combos' fingerprints, which name the input file's bytes)."""
    out = {k: v for k, v in doc.items() if k not in ("run_info", "source")}
    if not fingerprints:
        out = json.loads(json.dumps(out))
        for section in out["results"]:
            for combo in section["combos"]:
                combo.pop("combo_fingerprint")
    return out


@pytest.mark.slow
def test_same_evaluation_for_one_and_three_shards_and_shuffled_rows(tmp_path: Path) -> None:
    rows = sample_rows(60)
    shuffled = rows[::-1]
    args = ("--methods", "nlp_keyboard,nlp_randchar_swap", "--variants-per-sample", "1")
    docs = []
    for name, data, shards in (("one", rows, "1"), ("three", rows, "3"), ("reversed", shuffled, "2")):
        cwd = tmp_path / name
        cwd.mkdir()
        _run(cwd, write_csv(cwd / "in.csv", [{k: r[k] for k in ("id", "label", "text")} for r in data]), *args,
             "--num-shards", shards)  # fmt: skip
        docs.append(_evaluate(cwd, "--label-col", "label", "--folds", "3", "--train-sizes", "0.5,1.0",
                              "--workers", shards))  # fmt: skip
    assert docs[0]["results"][0]["combos"], docs[0]
    assert _deterministic(docs[0]) == _deterministic(docs[1])
    assert _deterministic(docs[0], False) == _deterministic(docs[2], False)
    assert [s["train_size"] for s in docs[0]["results"]] == [0.5, 1.0]
    assert docs[0]["results"][0]["baseline"]["train_originals"] < docs[0]["results"][1]["baseline"]["train_originals"]


# --- refusals -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("small")
    rows = [{k: r[k] for k in ("id", "label", "text")} for r in sample_rows(40)]
    rows += [{"id": "x1", "label": "rare", "text": "A rare one."}, {"id": "x2", "label": "", "text": "No label."}]
    _run(cwd, write_csv(cwd / "in.csv", rows), "--methods", "nlp_keyboard", "--num-shards", "1")
    return cwd


def _refused(cwd: Path, *args: str) -> str:
    proc = run_cli("evaluate", *args, cwd=cwd)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    return lines[0]


@pytest.mark.slow
def test_refusals_are_one_line_and_exit_2(small_run: Path, tmp_path: Path) -> None:
    assert "column 'nope' (--label-col) not found" in _refused(small_run, "--label-col", "nope")
    line = _refused(small_run, "--label-col", "label")
    assert "rare (1)" in line and "--drop-rare-classes" in line
    assert "no finished run" in _refused(tmp_path, "--label-col", "label")
    assert "--folds must be at least 2" in _refused(small_run, "--label-col", "label", "--folds", "1")
    assert "--features" in _refused(small_run, "--label-col", "label", "--features", "bert")
    assert not (small_run / ROOT / "evaluation.json").exists()
    from augshard.runner.lock import RunLock

    with RunLock(small_run / ROOT):  # a run (this live process) is writing the output root
        line = _refused(small_run, "--label-col", "label", "--drop-rare-classes", "--folds", "3")
    assert "is being written by an augshard run" in line and "evaluate once it is finished" in line
    assert not (small_run / ROOT / "evaluation.json").exists()


@pytest.mark.slow
def test_bad_seeds_too_few_groups_and_repeated_train_sizes_are_one_line(small_run: Path) -> None:
    base = ("--label-col", "label", "--drop-rare-classes", "--folds", "3")
    assert "--seed must be between 0 and 2**32 - 1" in _refused(small_run, *base, "--seed", "-1")
    assert "--seed must be between 0 and 2**32 - 1" in _refused(small_run, *base, "--seed", str(2**32))
    line = _refused(small_run, *base, "--seed", str(2**32 - 2), "--repeats", "3")  # repeat 2 would draw with 2**32
    assert "--seed must be between 0 and 2**32 - 3" in line
    line = _refused(small_run, *base, "--train-sizes", "0.5,1.0,0.5")
    assert "--train-sizes: 0.5 given twice" in line
    # Grouped by label: 3 groups (negative, neutral, positive), and 5 folds asked for.
    line = _refused(small_run, "--label-col", "label", "--drop-rare-classes", "--group-col", "label")
    assert "form 3 group(s)" in line and "fewer than --folds 5" in line
    assert not (small_run / ROOT / "evaluation.json").exists()


@pytest.mark.slow
def test_a_label_with_one_class_is_refused(tmp_path: Path) -> None:
    rows = [{"id": r["id"], "label": "same", "text": r["text"]} for r in sample_rows(20)]
    _run(tmp_path, write_csv(tmp_path / "one.csv", rows), "--methods", "nlp_keyboard", "--num-shards", "1")
    assert "has one class (same)" in _refused(tmp_path, "--label-col", "label")


@pytest.mark.slow
def test_rare_classes_dropped_on_request_and_an_incomplete_run_refused(small_run: Path, tmp_path: Path) -> None:
    doc = _evaluate(small_run, "--label-col", "label", "--drop-rare-classes", "--folds", "3")
    p = doc["protocol"]
    assert p["dropped_classes"] == {"rare": 1}
    assert p["dropped_rows"] == {"no_label": 1, "rare_class": 1}
    assert p["originals"] == 40 and p["classes"] == ["negative", "neutral", "positive"]
    # Schema: every documented key of a section and a combo row.
    (section,) = doc["results"]
    assert set(section) == {"features", "train_size", "splits", "baseline", "combos", "methods", "stage",
                            "min_detectable_gain", "power"}  # fmt: skip
    assert section["stage"] == "single" and doc["confirm"] is None  # one combo: no confirm stage by default
    assert set(section["combos"][0]) >= {"combo_id", "combo_dir", "name", "methods", "k", "combo_fingerprint",
                                         "variants_used", "macro_f1", "accuracy", "gain", "accuracy_gain",
                                         "macro_f1_splits", "verdict", "screen_rank", "per_class"}  # fmt: skip
    assert set(section["combos"][0]["gain"]) == {"mean", "ci_low", "ci_high", "p_value", "p_holm", "splits"}
    assert doc["run_info"]["workers"] >= 1 and doc["run_info"]["seconds"]["total"] > 0
    # Every TF-IDF model (the baseline and one combo, 3 splits each), fitted in the workers by the binding.
    assert doc["run_info"]["tfidf_fits"] == {"liblinear_binding": 6, "public_estimator": 0}
    assert {"load", "workers_setup_s", "workers_read_s", "workers_vectorise_s", "workers_fit_s"} <= set(
        doc["run_info"]["seconds"]
    )

    copy = tmp_path / "copy"
    shutil.copytree(small_run, copy)
    (dataset,) = _combo_files(copy).values()
    dataset.unlink()  # half-written: its manifest says ok
    line = _refused(copy, "--label-col", "label", "--drop-rare-classes", "--folds", "3")
    assert "incomplete" in line and "--allow-incomplete" in line


# --- export --best and --min-gain ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_export_best_chooses_by_the_evaluation_and_the_card_says_how(tmp_path: Path) -> None:
    rows, csv_path = _cue_run(tmp_path)
    rng = random.Random(5)
    helpful = {r["id"]: [r["text"] + " " + " ".join(rng.sample(CUES[r["label"]], 8))] for r in rows}
    _rewrite(_combo_files(tmp_path)["combo_1_nlp_keyboard"], helpful)
    doc = _evaluate(tmp_path, "--label-col", "label", "--folds", "5")
    best = doc["results"][0]["combos"][0]
    assert best["name"] == "nlp_keyboard"

    proc = run_cli("export", "--to", "best", "--best", "1", "--format", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    facts = json.loads(proc.stdout)
    assert [c["combo_dir"] for c in facts["combos"]] == ["combo_1_nlp_keyboard"]
    assert "the 1 best by mean macro-F1 gain" in facts["export"]["chosen_by"]
    card = (tmp_path / "best" / "README.md").read_text()
    assert "chosen by `augshard evaluate`" in card and f"{best['gain']['mean']:+.4f}" in card

    proc = run_cli("export", "--to", "none", "--min-gain", "0.99", cwd=tmp_path)
    assert proc.returncode == 2 and "no combo" in proc.stderr and not (tmp_path / "none").exists()
    proc = run_cli("export", "--to", "both", "--best", "1", "--k", "1", cwd=tmp_path)
    assert proc.returncode == 2 and "--best/--min-gain" in proc.stderr

    # A rerun with another seed remakes the combos: the evaluation no longer describes them.
    _run(tmp_path, csv_path, "--methods", "nlp_keyboard,nlp_randchar_swap", "--max-combo-size", "1",
         "--num-shards", "1", "--seed", "7")  # fmt: skip
    proc = run_cli("export", "--to", "stale", "--best", "1", cwd=tmp_path)
    assert proc.returncode == 2 and "older than combo" in proc.stderr, proc.stderr


@pytest.mark.slow
def test_evaluate_an_export_as_a_whole(tmp_path: Path) -> None:
    rows = [{k: r[k] for k in ("id", "label", "text")} for r in sample_rows(60)]
    _run(tmp_path, write_csv(tmp_path / "in.csv", rows), "--methods", "nlp_keyboard,nlp_randchar_swap",
         "--num-shards", "1")  # fmt: skip
    assert run_cli("export", "--to", "ex", "--include-originals", cwd=tmp_path).returncode == 0
    doc = _evaluate(tmp_path, "--label-col", "label", "--folds", "3", "--export", "ex")
    (section,) = doc["results"]
    (combo,) = section["combos"]
    facts = json.loads((tmp_path / "ex" / "export.json").read_text())
    variants = facts["rows"] - facts["originals"]
    # Every exported variant of a training original is used once per split: 2/3 of them on average.
    assert combo["name"] == "export" and 0.5 * variants < combo["variants_used"] < 0.8 * variants
    assert doc["source"]["kind"] == "export"
    assert json.loads((tmp_path / "ex" / "evaluation.json").read_text())["results"] == doc["results"]


# --- the statistics --------------------------------------------------------------------------------------------


def test_holm_and_the_corrected_interval() -> None:
    """Against scipy: with no correction the interval and p-value are the one-sample t test's (t quantile and
    n - 1 degrees of freedom); the corrected ones scale its standard error by sqrt(1/n + n_test/n_train)."""
    import statistics

    from scipy import stats

    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    for diffs in ([0.02, 0.03, 0.01, 0.04, 0.02], [0.01, -0.02, 0.03, 0.0, 0.02, 0.01, -0.01, 0.02, 0.03, 0.01]):
        n, mean, sd = len(diffs), statistics.fmean(diffs), statistics.stdev(diffs)
        naive, reference = paired_gain(diffs, 0.0), stats.ttest_1samp(diffs, 0.0)
        assert naive.mean == pytest.approx(mean) and naive.splits == n
        assert naive.p_value == pytest.approx(reference.pvalue, rel=1e-9)
        assert reference.df == n - 1
        assert (naive.low, naive.high) == pytest.approx(tuple(reference.confidence_interval(0.95)), rel=1e-9)
        corrected = paired_gain(diffs, 0.25)
        se = sd * (1 / n + 0.25) ** 0.5
        quantile = stats.t.ppf(0.975, n - 1)  # 2.776 for 5 splits: neither 5 degrees of freedom nor the normal's
        assert quantile > stats.t.ppf(0.975, n) > stats.norm.ppf(0.975)
        assert (corrected.low, corrected.high) == pytest.approx((mean - quantile * se, mean + quantile * se))
        assert corrected.p_value == pytest.approx(2 * stats.t.sf(abs(mean) / se, n - 1), rel=1e-9)
    assert paired_gain([0.0] * 5, 0.25).p_value == 1.0


# --- sentence vectors: the run's own, or encoded once ---------------------------------------------------------------


@pytest.mark.slow
def test_embedding_features_use_the_vectors_the_run_kept_and_encode_only_what_is_missing(tmp_path: Path) -> None:
    rows = sample_rows(45)
    args = ("--methods", "nlp_keyboard", "--quality-metric", "embedding", "--num-shards", "1",
            "--variants-per-sample", "1")  # fmt: skip
    docs = {}
    for name, extra in (("kept", ("--keep-vectors",)), ("plain", ())):
        cwd = tmp_path / name
        cwd.mkdir()
        csv_path = write_csv(cwd / "in.csv", rows)
        proc = run_cli("run", "--input", str(csv_path), "--text-col", "text", "--evidence-col", "evidence",
                       "--id-col", "id", *args, *extra, cwd=cwd)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        docs[name] = _evaluate(cwd, "--label-col", "label", "--folds", "3", "--features", "both", "--field",
                               "evidence")  # fmt: skip
    kept, plain = docs["kept"]["run_info"]["vectors"], docs["plain"]["run_info"]["vectors"]
    variants = pq.ParquetFile(next((tmp_path / "kept" / ROOT).glob("combo_*/dataset.parquet"))).metadata.num_rows
    assert kept == {"originals_encoded": 45, "originals_from_cache": 0, "stored": variants, "from_cache": 0,
                    "encoded": 0}, kept  # fmt: skip
    assert plain["stored"] == 0 and plain["encoded"] == variants
    # The same vectors either way (the encoder's output for a text does not depend on its batch).
    assert _deterministic(docs["kept"], False) == _deterministic(docs["plain"], False)
    assert [s["features"] for s in docs["kept"]["results"]] == ["tfidf", "embedding"]
    # A second evaluation encodes nothing: the originals and variants come from the cache.
    again = _evaluate(tmp_path / "plain", "--label-col", "label", "--folds", "3", "--features", "embedding",
                      "--field", "evidence")  # fmt: skip
    assert again["run_info"]["vectors"] == {"originals_encoded": 0, "originals_from_cache": 45, "stored": 0,
                                             "from_cache": variants, "encoded": 0}  # fmt: skip


def test_rows_of_one_text_or_one_group_never_straddle_training_and_test() -> None:
    """As in ReDSM5: one sentence on several rows (one per symptom), and sentences of one post (--group-col)."""
    from augshard.evaluation.groups import group_ids

    rng = random.Random(1)
    rows = []
    for n in range(120):
        text = f"sentence {n // 3}" if n % 4 else f"Sentence  {n // 3}"  # the same text, case and spaces aside
        rows.append((f"k{n:03d}", text, rng.choice("abc"), f"post{n // 10}" if n < 40 else None))
    groups, _ = group_ids([r[1] for r in rows], [r[3] for r in rows])
    assert len(set(groups)) < len({normal for _, normal, _, _ in rows})  # texts merged, posts merged
    orig = Originals([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], groups)
    for split in make_splits(orig, EvaluateOptions(label_col="label", folds=4, repeats=2)):
        train_groups = {groups[i] for i in split.train}
        assert not train_groups & {groups[i] for i in split.test}
        assert not {" ".join(rows[i][1].lower().split()) for i in split.train} & {
            " ".join(rows[i][1].lower().split()) for i in split.test
        }
        assert not {rows[i][3] for i in split.train if rows[i][3]} & {rows[i][3] for i in split.test if rows[i][3]}


def test_blank_group_values_are_groups_of_their_own_never_one_group(tmp_path: Path) -> None:
    """Rows with an empty or blank `--group-col` cell name no group: each stays alone (with its identical texts),
    and the document counts them, where one "" group would have put every such row in one fold."""
    from augshard.evaluation.originals import Origin, load_originals
    from augshard.storage.data import file_sha256

    rows = [{"id": f"r{n:02d}", "label": "ab"[n % 2], "text": f"text number {n}",
             "post": "" if n < 10 else "   " if n < 20 else f"p{n // 5}"} for n in range(30)]  # fmt: skip
    path = write_csv(tmp_path / "in.csv", rows)
    source = Origin("run", str(tmp_path), str(path), file_sha256(path), "text", None, "id", [])
    originals = load_originals(source, EvaluateOptions(label_col="label", group_col="post", folds=5))
    assert len(set(originals.groups)) == 20 + 2  # 20 blank rows alone, and posts p4 and p5
    assert originals.blank_groups == 20
    by_key = dict(zip(originals.keys, originals.groups, strict=True))
    assert len({by_key[k] for k in by_key if k >= "r20"}) == 2


def test_the_liblinear_fallback_fits_the_same_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forced (the binding moved: ImportError; its signature changed: TypeError), the public estimator fits the
    binding's model: the same coefficients to the solver's tolerance, the same predictions; counted by path."""
    import numpy as np
    import scipy.sparse as sp
    import sklearn.svm._base as binding

    from augshard.evaluation.classifiers import fit_ovr_logistic, take_fits

    rng = np.random.default_rng(0)
    x = sp.random(400, 600, density=0.05, format="csr", random_state=1)
    take_fits()
    for labels in ("abc", "ab"):
        y = rng.choice(list(labels), 400, p=[0.5, 0.3, 0.2] if len(labels) == 3 else [0.7, 0.3])
        classes = sorted(set(y))
        direct = fit_ovr_logistic(x, y, classes, 2.0, 1e-3)
        assert take_fits() == {"liblinear_binding": 1, "public_estimator": 0}

        def moved(*_: object, **__: object) -> None:
            raise TypeError("_fit_liblinear() got an unexpected keyword argument 'multi_class'")

        for how in ("signature", "gone"):
            with monkeypatch.context() as m:
                if how == "signature":
                    m.setattr(binding, "_fit_liblinear", moved)
                else:
                    m.delattr(binding, "_fit_liblinear")
                fallback = fit_ovr_logistic(x, y, classes, 2.0, 1e-3)
            assert take_fits() == {"liblinear_binding": 0, "public_estimator": 1}
            assert fallback[0].shape == direct[0].shape == (len(classes), 600)
            np.testing.assert_allclose(fallback[0], direct[0], atol=1e-3)
            np.testing.assert_allclose(fallback[1], direct[1], atol=1e-3)
            scores = [x @ coef.T + intercept for coef, intercept in (direct, fallback)]
            assert (scores[0].argmax(axis=1) == scores[1].argmax(axis=1)).all()


# --- what reaches training: seen from inside the fits ------------------------------------------------------------


@pytest.fixture(scope="module")
def copies_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run with an evidence column whose one combo's variants are verbatim copies of their originals (text and
    evidence): a copy's feature row is its original's, so a fit can be read for whose variants it trained on."""
    cwd = tmp_path_factory.mktemp("copies")
    rows = sample_rows(45)
    _run(cwd, write_csv(cwd / "in.csv", rows), "--evidence-col", "evidence", "--methods", "nlp_keyboard",
         "--num-shards", "1")  # fmt: skip
    (dataset,) = _combo_files(cwd).values()
    by_id = {r["id"]: r for r in rows}
    table = pq.read_table(dataset)
    keys = table.column("row_key").to_pylist()
    for column in ("text", "evidence"):
        copies = pa.array([by_id[k][column] for k in keys], pa.string())
        table = table.set_column(table.schema.get_field_index(column), column, copies)
    pq.write_table(table, dataset)
    return cwd


def _recording_fits(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Every TF-IDF fit of an evaluation run in this process (one worker): (training rows, test rows)."""
    import augshard.evaluation.scoring as scoring

    seen: list[tuple] = []
    real = scoring.fit_predict_tfidf

    def recording(x_train, y_train, x_test, settings):  # noqa: ANN001, ANN202 - the patched function's own
        seen.append((x_train, x_test))
        return real(x_train, y_train, x_test, settings)

    monkeypatch.setattr(scoring, "fit_predict_tfidf", recording)
    return seen


def _rows(x) -> list[bytes]:  # noqa: ANN001
    x = x.tocsr(copy=True)
    x.sort_indices()
    return [x.indices[a:b].tobytes() + x.data[a:b].tobytes() for a, b in zip(x.indptr[:-1], x.indptr[1:], strict=True)]


def _assert_trained_on_training_originals_only(seen: list[tuple], variant_files: list[Path]) -> None:
    """For the candidate's every fit: no row equal to a test original's, and exactly the copies of the split's
    training originals (of its train size's subset): all of them, none of the others."""
    import augshard.evaluation.scoring as scoring

    setup = scoring._STATE["setup"]
    position = {k: i for i, k in enumerate(setup.keys)}
    per_original: Counter = Counter()
    for path in variant_files:
        table = pq.read_table(path)
        sizes = table.column("k").to_pylist() if "k" in table.column_names else [1] * table.num_rows
        pairs = zip(table.column("row_key").to_pylist(), sizes, strict=True)
        per_original.update(position[key] for key, size in pairs if size)  # k 0: an export's copy of an original
    splits = setup.splits
    assert len(seen) == 2 * len(splits)  # the baseline's fits, then the candidate's
    assert {s.size for s in splits} == {0.5, 1.0}
    for n, split in enumerate(splits):
        x_train, x_test = seen[len(splits) + n]
        rows = _rows(x_train)
        originals, variants = rows[: len(split.train)], rows[len(split.train) :]
        assert not set(rows) & set(_rows(x_test))  # no copy of a test original reached training
        assert set(variants) <= set(originals)  # copies of this split's training originals only
        assert len(variants) == sum(per_original[i] for i in split.train) > 0  # and every one of them
        if split.size < 1.0:
            whole = next(s for s in splits if (s.repeat, s.fold, s.size) == (split.repeat, split.fold, 1.0))
            assert set(split.train) < set(whole.train) and split.test == whole.test
            left_out = set(whole.train) - set(split.train)
            assert sum(per_original[i] for i in left_out) > 0  # there were variants to leave out


def test_variants_in_training_are_the_training_subsets_own_under_field_evidence(
    copies_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from augshard.evaluation.evaluate import evaluate

    seen = _recording_fits(monkeypatch)
    options = EvaluateOptions(label_col="label", output_root=copies_run / ROOT, field="evidence", folds=3,
                              train_sizes=(0.5, 1.0), workers=1, cache_dir=tmp_path / "cache",
                              out=tmp_path / "e.json")  # fmt: skip
    doc = evaluate(options).to_json()
    assert doc["protocol"]["field"] == "evidence"
    _assert_trained_on_training_originals_only(seen, list(_combo_files(copies_run).values()))


def test_variants_in_training_are_the_training_subsets_own_under_export(
    copies_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from augshard.evaluation.evaluate import evaluate

    export = tmp_path / "ex"
    proc = run_cli("export", "--to", str(export), "--dedupe", "none", "--include-originals", cwd=copies_run)
    assert proc.returncode == 0, proc.stderr
    seen = _recording_fits(monkeypatch)
    for field in ("text", "evidence"):
        seen.clear()
        options = EvaluateOptions(label_col="label", export_dir=export, field=field, folds=3, train_sizes=(0.5, 1.0),
                                  workers=1, cache_dir=tmp_path / "cache",
                                  out=tmp_path / f"{field}.json")  # fmt: skip
        doc = evaluate(options).to_json()
        assert doc["source"]["kind"] == "export"
        _assert_trained_on_training_originals_only(seen, sorted((export / "data").glob("*.parquet")))


def test_evaluation_json_records_which_liblinear_path_fitted(
    copies_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The private binding fits every TF-IDF model; forced off, the public estimator fits them all, to the same
    results; run_info.tfidf_fits says which path ran, model by model."""
    import sklearn.svm._base as binding

    from augshard.evaluation.evaluate import evaluate

    def options(name: str) -> EvaluateOptions:
        return EvaluateOptions(label_col="label", output_root=copies_run / ROOT, folds=3, workers=1,
                               cache_dir=tmp_path / "cache", out=tmp_path / name)  # fmt: skip

    direct = evaluate(options("direct.json")).to_json()
    fits = 2 * 3  # the baseline and one combo, over 3 splits
    assert direct["run_info"]["tfidf_fits"] == {"liblinear_binding": fits, "public_estimator": 0}

    def moved(*_: object, **__: object) -> None:
        raise TypeError("_fit_liblinear() missing 1 required positional argument")

    monkeypatch.setattr(binding, "_fit_liblinear", moved)
    evaluate(options("fallback.json"))
    fallback = json.loads((tmp_path / "fallback.json").read_text())
    assert fallback["run_info"]["tfidf_fits"] == {"liblinear_binding": 0, "public_estimator": fits}
    assert fallback["results"] == direct["results"]


# --- one plan's combos only ----------------------------------------------------------------------------------------


def _plan_of(manifest: Path) -> str:
    import pandas as pd

    (plan,) = set(pd.read_csv(manifest, dtype=str)["plan_fingerprint"])
    return plan


@pytest.mark.slow
def test_a_stopped_run_with_other_settings_is_never_blended_into_an_evaluation(tmp_path: Path) -> None:
    """As export: the combos another plan wrote over a finished run (a rerun with other settings, stopped) are
    refused in one line naming both plans, and `--plan` (CLI and API) evaluates one plan's combos only."""

    import augshard

    rows = [{k: r[k] for k in ("id", "label", "text")} for r in sample_rows(30)]
    write_csv(tmp_path / "in.csv", rows)
    (tmp_path / "b").mkdir()
    for cwd, seed in ((tmp_path, "42"), (tmp_path / "b", "7")):
        _run(cwd, tmp_path / "in.csv", "--methods", "nlp_keyboard,nlp_randchar_swap", "--num-shards", "1",
             "--seed", seed)  # fmt: skip
    root, other = tmp_path / ROOT, tmp_path / "b" / ROOT
    plan_a, plan_b = _plan_of(root / "manifest_final.csv"), _plan_of(other / "manifest_final.csv")
    assert plan_a != plan_b
    # What the seed-7 run, stopped after its first combo, leaves over the seed-42 run (as in test_export).
    leave_a_stopped_run_over(root, other)

    line = _refused(tmp_path, "--label-col", "label", "--folds", "3")
    assert "more than one plan" in line and plan_a in line and plan_b in line and f"--plan {plan_a}" in line
    assert "to evaluate this manifest's combos only" in line
    assert not (root / "evaluation.json").exists()

    doc = _evaluate(tmp_path, "--label-col", "label", "--folds", "3", "--plan", plan_a)
    (section,) = doc["results"]
    assert sorted(c["combo_dir"] for c in section["combos"]) == ["combo_1_nlp_randchar_swap",
                                                                 "combo_2_nlp_keyboard+nlp_randchar_swap"]  # fmt: skip
    assert doc["source"]["plan_fingerprints"] == [plan_a]

    assert "failed, stopped or half-written" in _refused(tmp_path, "--label-col", "label", "--plan", plan_b)
    result = augshard.evaluate("label", root, folds=3, workers=1, plan=plan_b, allow_incomplete=True,
                               out=tmp_path / "seven.json", cache_dir=tmp_path / "cache")  # fmt: skip
    assert {g.combo_dir for g in result.gains} == {"combo_1_nlp_keyboard"}
    assert result.document.source.plan_fingerprints == [plan_b]
    assert plan_a in _refused(tmp_path, "--label-col", "label", "--plan", "0000000000000000")


# --- stopping ------------------------------------------------------------------------------------------------------


def _descendants(pid: int) -> list[int]:
    from augshard.runner.procs import parent_of

    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            ancestor = int(entry.name)
            while ancestor not in (0, 1) and ancestor is not None:
                ancestor = parent_of(ancestor)
                if ancestor == pid:
                    found.append(int(entry.name))
                    break
    return found


def _running(pid: int) -> bool:
    """Alive: a zombie (dead, not yet reaped by whoever adopted it) is not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.slow
@pytest.mark.serial
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)])
def test_a_signal_ends_every_worker_and_leaves_the_previous_evaluation(small_run: Path, signum: int, code: int) -> None:
    """SLURM's scancel, `timeout`, a closed terminal or Ctrl-C: the pool's workers and the resource tracker are gone
    within 2 s, the lock and temporaries too, the exit code is 128 + the signal, and evaluation.json is as it was."""
    import subprocess
    import sys
    import time

    if not Path("/proc").is_dir():
        pytest.skip("reads the process tree from /proc")
    root = small_run / ROOT
    _evaluate(small_run, "--label-col", "label", "--drop-rare-classes", "--folds", "3")
    previous = (root / "evaluation.json").read_bytes()
    before = sorted(p.name for p in root.iterdir())
    try:
        proc = subprocess.Popen([sys.executable, "-m", "augshard", "evaluate", "--label-col", "label",
                                 "--drop-rare-classes", "--folds", "3", "--repeats", "200", "--workers", "2"],
                                cwd=small_run, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        # Two workers and the resource tracker (or the command ended: said below).
        wait_for(lambda: proc.poll() is not None or len(_descendants(proc.pid)) >= 3, timeout=120)
        time.sleep(1.0)  # the workers at their setup or their first task
        children = _descendants(proc.pid)
        assert proc.poll() is None, proc.communicate()
        sent = time.monotonic()
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == code, err
        assert "interrupted" in err and "Traceback" not in err, err
        left = max(0.05, sent + 2.0 - time.monotonic())
        wait_for(lambda: not [p for p in children if _running(p)], timeout=left)
        assert (root / "evaluation.json").read_bytes() == previous
        assert sorted(p.name for p in root.iterdir()) == before  # no lock, no temporary file
    finally:
        (root / "evaluation.json").unlink(missing_ok=True)  # the module's other tests expect none


@pytest.mark.slow
def test_an_evaluation_of_some_combos_never_replaces_the_full_one_and_export_best_says_what_it_found(
    tmp_path: Path,
) -> None:
    rows = [{k: r[k] for k in ("id", "label", "text")} for r in sample_rows(30)]
    _run(tmp_path, write_csv(tmp_path / "in.csv", rows), "--methods", "nlp_keyboard,nlp_randchar_swap",
         "--max-combo-size", "1", "--num-shards", "1")  # fmt: skip
    full = _evaluate(tmp_path, "--label-col", "label", "--folds", "3")
    assert full["scope"]["subset"] is False and full["scope"]["of"] == 2 and len(full["scope"]["combos"]) == 2
    written = (tmp_path / ROOT / "evaluation.json").read_bytes()

    subset = _evaluate(tmp_path, "--label-col", "label", "--folds", "3", "--combos", "nlp_keyboard")
    assert subset["scope"]["subset"] is True and subset["scope"]["of"] == 2 and len(subset["scope"]["combos"]) == 1
    assert (tmp_path / ROOT / "evaluation.json").read_bytes() == written  # the full evaluation stays
    (own,) = (tmp_path / ROOT).glob("evaluation-*.json")
    assert json.loads(own.read_text()) == subset
    again = run_cli("evaluate", "--label-col", "label", "--folds", "3", "--combos", "nlp_keyboard", cwd=tmp_path)
    assert again.returncode == 0 and str(own.name) in again.stderr and "of the plan's 2 combos" in again.stdout

    proc = run_cli("export", "--to", "best", "--best", "5", "--format", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "--best 5: evaluation.json ranks only 2 combo(s)" in proc.stderr and "not 5" in proc.stderr
    assert "0 of them with evidence of a gain" in proc.stderr, proc.stderr
    facts = json.loads(proc.stdout)
    assert sorted(c["combo_dir"] for c in facts["combos"]) == ["combo_1_nlp_keyboard", "combo_1_nlp_randchar_swap"]
    chosen_by = facts["export"]["chosen_by"]
    assert "the 5 best" not in chosen_by and "the evaluation ranks only 2 combo(s) (of 2 it evaluated)" in chosen_by
    card = (tmp_path / "best" / "README.md").read_text()
    assert "the 5 best" not in card and "ranks only 2 combo(s)" in card

    proc = run_cli("export", "--to", "one", "--best", "1", cwd=tmp_path)
    assert proc.returncode == 0 and "--best 1: chose the 1 combo(s) with the best gain" in proc.stderr, proc.stderr
    assert "0 of them with evidence of a gain" in proc.stderr
    assert "the 1 best by mean macro-F1 gain" in (tmp_path / "one" / "README.md").read_text()


def test_the_old_spellings_of_workers_and_rows_per_file_still_work_with_one_note(small_run: Path) -> None:
    """`evaluate --num-shards` is now `--workers` and `export --shard-size` `--rows-per-file` (a shard is a run's
    partition only): the old spellings are taken for one release, each with one note, and the API's old keyword
    names with a FutureWarning."""
    proc = run_cli("evaluate", "--label-col", "label", "--folds", "2", "--drop-rare-classes", "--num-shards", "1",
                   "--out", "old.json", cwd=small_run)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("--num-shards is now --workers") == 1, proc.stderr
    assert json.loads((small_run / "old.json").read_text(encoding="utf-8"))["results"]
    proc = run_cli("export", "--to", "old-export", "--shard-size", "7", cwd=small_run)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("--shard-size is now --rows-per-file") == 1, proc.stderr
    files = sorted((small_run / "old-export" / "data").glob("*.parquet"))
    assert len(files) > 1 and all(pq.ParquetFile(f).metadata.num_rows <= 7 for f in files)
    with pytest.warns(FutureWarning, match="num_shards=...\\) is now workers"):
        augshard.evaluate(
            "label", small_run / ROOT, folds=2, num_shards=1, drop_rare_classes=True, out=small_run / "api.json"
        )
    with pytest.raises(ConfigError, match="give workers only"):
        augshard.evaluate("label", small_run / ROOT, folds=2, num_shards=1, workers=1)
