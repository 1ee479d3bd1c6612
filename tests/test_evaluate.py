"""`augshard evaluate` as a user runs it: the protocol leaks nothing, real effects are found with honest intervals,
the numbers do not depend on shards or row order, refusals are one line, and `export --best` chooses by it."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import run_cli, sample_rows, write_csv

from augshard.classifiers import TfidfSettings, TfidfSpace, fit_predict_tfidf
from augshard.evaluation import EvaluateOptions, Originals, make_splits
from augshard.gains import holm, paired_gain

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
    if "--export" not in args:  # the document printed is the one written
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
                              "--num-shards", shards))  # fmt: skip
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
    from augshard.lock import RunLock

    with RunLock(small_run / ROOT):  # a run (this live process) is writing the output root
        line = _refused(small_run, "--label-col", "label", "--drop-rare-classes", "--folds", "3")
    assert "is being written by an augshard run" in line and "evaluate once it is finished" in line
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
    assert set(section) == {"features", "train_size", "splits", "baseline", "combos", "methods"}
    assert set(section["combos"][0]) >= {"combo_id", "combo_dir", "name", "methods", "k", "combo_fingerprint",
                                         "variants_used", "macro_f1", "accuracy", "gain", "accuracy_gain",
                                         "macro_f1_splits", "verdict"}  # fmt: skip
    assert set(section["combos"][0]["gain"]) == {"mean", "ci_low", "ci_high", "p_value", "p_holm", "splits"}
    assert doc["run_info"]["workers"] >= 1 and doc["run_info"]["seconds"]["total"] > 0
    assert {"load", "workers_setup_s", "workers_read_s", "workers_vectorise_s", "workers_fit_s"} <= set(
        doc["run_info"]["seconds"]
    )

    copy = tmp_path / "copy"
    import shutil

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
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    naive = paired_gain([0.02, 0.03, 0.01, 0.04, 0.02], 0.0)
    corrected = paired_gain([0.02, 0.03, 0.01, 0.04, 0.02], 0.25)
    assert corrected.mean == naive.mean == pytest.approx(0.024)
    assert corrected.high - corrected.low == pytest.approx((naive.high - naive.low) * (0.45 / 0.2) ** 0.5)
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
    from augshard.evaluation import _groups

    rng = random.Random(1)
    rows = []
    for n in range(120):
        text = f"sentence {n // 3}" if n % 4 else f"Sentence  {n // 3}"  # the same text, case and spaces aside
        rows.append((f"k{n:03d}", text, rng.choice("abc"), f"post{n // 10}" if n < 40 else None))
    groups = _groups(rows)
    assert len(set(groups)) < len({normal for _, normal, _, _ in rows})  # texts merged, posts merged
    orig = Originals([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], groups)
    for split in make_splits(orig, EvaluateOptions(label_col="label", folds=4, repeats=2)):
        train_groups = {groups[i] for i in split.train}
        assert not train_groups & {groups[i] for i in split.test}
        assert not {" ".join(rows[i][1].lower().split()) for i in split.train} & {
            " ".join(rows[i][1].lower().split()) for i in split.test
        }
        assert not {rows[i][3] for i in split.train if rows[i][3]} & {rows[i][3] for i in split.test if rows[i][3]}
