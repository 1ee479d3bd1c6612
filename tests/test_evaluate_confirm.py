"""The evaluation that can see gains: the power each design states, screen then confirm (a small real gain missed by
the screen is found by the confirm stage; null combos are not called), per-class gains, the learning curve of the
same combos at every size, the user's own model, as a user runs them."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from helpers import run_cli, sample_rows, write_csv

from augshard.evaluation.document import CONFIRM, SCREEN, SCREENED
from augshard.evaluation.evaluate import _top
from augshard.evaluation.findings import Stage, section
from augshard.evaluation.gains import holm, min_detectable_gain, paired_gain
from augshard.evaluation.scoring import Candidate, Split

ROOT = Path("data/processed/augsets")
RUN = ("--text-col", "text", "--id-col", "id", "--quality-metric", "char_ratio", "--quality-min-sim", "0",
       "--quality-max-sim", "1")  # fmt: skip

# --- the statistics, on per-split scores of a known truth -------------------------------------------------------
# Per-split differences as the corrected test models them: a component shared by every split of the data (variance
# rho * sigma^2: the splits reuse one sample) plus each split's own noise (sigma^2). Under this model the corrected
# statistic is exactly a noncentral t, which is what the minimum detectable gain assumes.

SIGMA = 0.01  # per-split spread of macro-F1 differences (ReDSM5's screen: about 0.01-0.02)


def _diffs(rng: np.random.Generator, gain: float, n: int, rho: float) -> np.ndarray:
    return gain + rng.normal(0, SIGMA * math.sqrt(rho)) + rng.normal(0, SIGMA, n)


def _stage(name: str, gains: dict[str, float], folds: int, repeats: int, seed: int, ranks=None) -> Stage:
    """A stage whose candidates' per-split macro-F1 differences over the baseline are drawn around `gains`; 100
    originals, a fifth of them tested per split (n_test/n_train = 1 / (folds - 1))."""
    rng = np.random.default_rng(seed)
    n = folds * repeats
    test = list(range(100 // folds))
    splits = [Split(r, f, 1.0, list(range(100 - len(test))), test) for r in range(repeats) for f in range(folds)]
    base = [(0.70 + rng.normal(0, 0.02), 0.7, 0, ()) for _ in range(n)]
    candidates, scores = [], [{"tfidf": base}]
    for name_, gain in gains.items():
        d = _diffs(rng, gain, n, 1 / (folds - 1))
        candidates.append(Candidate(name_, name_, f"combo_{name_}", 1, (name_,), name_, (), ("row_key", "text")))
        scores.append({"tfidf": [(b[0] + x, 0.7, 10, ()) for b, x in zip(base, d, strict=True)]})
    return Stage(name, splits, candidates, scores, ranks or {})


def test_the_minimum_detectable_gain_is_called_with_80_percent_power() -> None:
    """Simulate a true gain equal to the stated minimum detectable gain under the corrected test's own model: the
    first Holm step over m combos calls it in 80% of draws; and at ReDSM5's spread the screen's is about 0.1."""
    n, rho, m = 5, 0.25, 253
    gain = min_detectable_gain(SIGMA, n, rho, m)
    rng = np.random.default_rng(0)
    called = 0
    draws = 4000
    for _ in range(draws):
        g = paired_gain(list(_diffs(rng, gain, n, rho)), rho)
        called += g.p_value * m < 0.05 and g.low > 0
    assert abs(called / draws - 0.8) < 0.03, called / draws
    assert min_detectable_gain(SIGMA, 25, rho, 10) < min_detectable_gain(SIGMA, 5, rho, 10) < gain


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_small_gain_the_screen_cannot_call_is_found_by_the_confirm_stage(seed: int) -> None:
    """A gain of 0.03 among 200 null combos: one 5-fold screen over all 201 cannot call it (Holm over 201, 4 degrees
    of freedom), it ranks among the top 10, and the confirm stage (5 x 5 fresh splits, Holm over 10) calls it."""
    gains = {"helpful": 0.03, **{f"null{i:03d}": 0.0 for i in range(200)}}
    screen = _stage(SCREEN, gains, 5, 1, seed=seed)
    single = section(Stage("single", screen.splits, screen.candidates, screen.scores), "tfidf", 1.0, [], 10)
    assert single.row("helpful").verdict == "no evidence"  # a one-stage design cannot see it
    assert single.min_detectable_gain > 0.08
    assert "confirm stage's 10 combos" in single.power.to_reach_target

    chosen, ranks = _top(screen, 10, "tfidf")
    assert "helpful" in [c.combo_id for c in chosen] and len(chosen) == 10
    assert section(screen, "tfidf", 1.0, [], 10).row("helpful").verdict == SCREENED

    confirm = _stage(CONFIRM, {c.combo_id: gains[c.combo_id] for c in chosen}, 5, 5, seed=100 + seed, ranks=ranks)
    result = section(confirm, "tfidf", 1.0, [], 10)
    assert result.row("helpful").verdict == "helps", result.row("helpful")
    assert result.row("helpful").screen_rank == ranks["helpful"]
    assert result.power.comparisons == 10 and result.min_detectable_gain < 0.03
    assert all(r.verdict == "no evidence" for r in result.combos if r.combo_id != "helpful")


def test_null_combos_are_not_called_by_the_confirm_stage_in_20_seeds() -> None:
    """Ten null combos confirmed on 5 x 5 splits, 20 times: Holm keeps the chance of any false call per evaluation
    at or under 5%, so at most one of the 20 may call one."""
    false_calls = 0
    for seed in range(20):
        confirm = _stage(CONFIRM, {f"null{i}": 0.0 for i in range(10)}, 5, 5, seed=100 + seed)
        result = section(confirm, "tfidf", 1.0, [], 10)
        false_calls += any(r.verdict != "no evidence" for r in result.combos)
        assert holm([r.gain.p_value for r in result.combos]) == pytest.approx([r.gain.p_holm for r in result.combos])
    assert false_calls <= 1, false_calls


# --- as a user runs it ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def three_combos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("three")
    rows = [{k: r[k] for k in ("id", "label", "text")} for r in sample_rows(45)]
    proc = run_cli("run", "--input", str(write_csv(cwd / "in.csv", rows)), *RUN, "--methods",
                   "nlp_keyboard,nlp_randchar_swap,nlp_randword_delete", "--max-combo-size", "1", "--num-shards", "1",
                   cwd=cwd)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return cwd


CONFIRMED = ("--label-col", "label", "--folds", "3", "--train-sizes", "0.5,1.0", "--confirm-top", "2",
             "--confirm-repeats", "2")  # fmt: skip


@pytest.mark.slow
def test_screen_then_confirm_follows_the_same_combos_at_every_train_size(three_combos: Path) -> None:
    proc = run_cli("evaluate", *CONFIRMED, "--format", "json", cwd=three_combos)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc == json.loads((three_combos / ROOT / "evaluation.json").read_text())
    p = doc["protocol"]
    assert p["design"] == "screen-then-confirm" and p["confirm"]["top"] == 2 and p["confirm"]["repeats"] == 2
    assert len(set(p["confirm"]["seeds"])) == 2 and not set(p["confirm"]["seeds"]) & {0, 1}  # fresh, not the screen's
    assert set(p["class_counts"]) == set(p["classes"]) and sum(p["class_counts"].values()) == p["originals"]

    (screen,) = doc["results"]  # the screen: every combo, at the largest train size only
    assert screen["stage"] == "screen" and screen["train_size"] == 1.0 and screen["splits"] == 3
    assert [c["screen_rank"] for c in screen["combos"]] == [1, 2, 3]
    assert {c["verdict"] for c in screen["combos"]} == {"screened"}
    assert doc["confirm"]["combos"] == [c["combo_id"] for c in screen["combos"][:2]]

    sections = doc["confirm"]["results"]
    assert [s["train_size"] for s in sections] == [0.5, 1.0]
    for s in sections:  # the same combos at every size, on 2 x 3 fresh splits, with verdicts and Holm over 2
        assert s["stage"] == "confirm" and s["splits"] == 6
        assert sorted(c["combo_id"] for c in s["combos"]) == sorted(doc["confirm"]["combos"])
        assert {c["verdict"] for c in s["combos"]} <= {"helps", "hurts", "no evidence"}
        assert s["power"]["comparisons"] == 2 and s["min_detectable_gain"] == s["power"]["min_detectable_gain"] > 0
        assert set(s["baseline"]["per_class"]) == set(p["classes"])
        for c in s["combos"]:
            assert set(c["per_class"]) == set(p["classes"])
            ranked = {r["combo_id"]: r["screen_rank"] for r in screen["combos"]}
            assert c["screen_rank"] == ranked[c["combo_id"]]
    # The full-size baseline of the confirm stage differs from the screen's: other splits.
    assert sections[1]["baseline"]["macro_f1_splits"][:3] != screen["baseline"]["macro_f1_splits"]

    table = run_cli("evaluate", *CONFIRMED, cwd=three_combos)
    assert table.returncode == 0, table.stderr
    out = table.stdout
    assert "Screen (a ranking; the confirm stage decides)" in out and "Confirmed: gain in macro-F1" in out
    assert out.index("Screen (a ranking") < out.index("Confirmed: gain")
    assert "the confirm stage sees a gain of" in out and "the screen sees a gain of" in out
    assert "F1 gain per class" in out and "Learning curve (tfidf)" in out and "largest per-class gain" in out

    small = run_cli("evaluate", *CONFIRMED, "--train-size", "0.5", "--class", p["classes"][0], cwd=three_combos)
    assert small.returncode == 0 and "train size 0.5, 6 splits" in small.stdout, small.stderr
    early = run_cli("evaluate", *CONFIRMED, "--train-size", "0.3", cwd=three_combos)  # refused before any work
    assert early.returncode == 2 and early.stderr.strip().splitlines() == [
        "error: --train-size 0.3 is not one of --train-sizes 0.5,1"
    ], early.stderr
    typo = run_cli("evaluate", *CONFIRMED, "--class", "nope", cwd=three_combos)  # the evaluation is kept, shown
    assert typo.returncode == 0 and "--class nope: not a class of 'label'" in typo.stderr, typo.stderr
    assert "F1 gain per class" in typo.stdout

    tsv = run_cli("evaluate", *CONFIRMED, "--format", "tsv", cwd=three_combos)
    lines = [line.split("\t") for line in tsv.stdout.strip().splitlines()]
    head = lines[0]
    assert head[-3:] == ["stage", "screen_rank", "min_detectable_gain"]
    stages = [row[head.index("stage")] for row in lines[1:]]
    assert stages.count("screen") == 4 and stages.count("confirm") == 6  # baseline + 3; 2 sizes x (baseline + 2)


@pytest.mark.slow
def test_your_own_model_gives_the_builtin_numbers_when_it_is_the_builtin(three_combos: Path) -> None:
    (three_combos / "mymodel.py").write_text(
        "from augshard.evaluation.classifiers import TfidfClassifier\n\n\ndef build():\n    return TfidfClassifier()\n"
    )
    common = ("evaluate", "--label-col", "label", "--folds", "3", "--confirm-top", "0", "--format", "json")
    builtin = run_cli(*common, "--out", "builtin.json", cwd=three_combos)
    mine = run_cli(*common, "--model", "mymodel.py:build", "--out", "mine.json", cwd=three_combos)
    assert builtin.returncode == 0 and mine.returncode == 0, mine.stderr
    a, b = json.loads(builtin.stdout), json.loads(mine.stdout)
    assert b["protocol"]["features"] == ["model"] and b["protocol"]["model"]["factory"] == "mymodel.py:build"
    assert b["protocol"]["model"]["class"].endswith("TfidfClassifier")
    assert a["protocol"]["model"] is None
    (sa,), (sb,) = a["results"], b["results"]
    assert sb["baseline"]["macro_f1_splits"] == sa["baseline"]["macro_f1_splits"]
    assert {c["combo_id"]: c["macro_f1_splits"] for c in sb["combos"]} == {
        c["combo_id"]: c["macro_f1_splits"] for c in sa["combos"]
    }
    bad = run_cli("evaluate", "--label-col", "label", "--model", "nowhere:build", cwd=three_combos)
    assert bad.returncode == 2 and "--model 'nowhere:build'" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow
def test_variants_of_one_class_raise_that_class_s_recall_and_the_per_class_gains_show_it(tmp_path: Path) -> None:
    """A combo with variants of class alpha's rows only (each a new sentence of alpha: other filler words, another
    of alpha's cue words) lifts alpha's recall: its per-class recall gain for alpha is the largest of the three, with
    an interval above 0; the per-class F1 gains are reported beside it (here they show the precision it costs)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    rng = random.Random(3)
    filler = [f"w{n:03d}" for n in range(300)]
    letters = {"alpha": "bcdfgh", "beta": "jklmnp", "gamma": "qrstvz"}  # no n-gram of one class's cues in another's
    cues = {c: ["".join(rng.choices(abc, k=7)) for _ in range(40)] for c, abc in letters.items()}
    rows = []
    for n in range(180):
        label = ("alpha", "beta", "gamma")[n % 3]
        rows.append(
            {"id": f"r{n:03d}", "label": label, "text": " ".join([*rng.sample(filler, 10), rng.choice(cues[label])])}
        )
    proc = run_cli("run", "--input", str(write_csv(tmp_path / "in.csv", rows)), *RUN, "--methods", "nlp_keyboard",
                   "--num-shards", "1", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (dataset,) = (tmp_path / ROOT).glob("combo_*/dataset.parquet")
    table = pq.read_table(dataset)
    alphas = pa.array([r["id"] for r in rows if r["label"] == "alpha"])
    alpha = table.filter(pc.is_in(table.column("row_key"), alphas))
    texts = [" ".join([*rng.sample(filler, 10), rng.choice(cues["alpha"])]) for _ in range(alpha.num_rows)]
    pq.write_table(alpha.set_column(alpha.schema.get_field_index("text"), "text", pa.array(texts)), dataset)

    proc = run_cli("evaluate", "--label-col", "label", "--folds", "5", "--repeats", "2", "--format", "json",
                   cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (section,) = json.loads(proc.stdout)["results"]
    (combo,) = section["combos"]
    recall = combo["per_class_recall"]
    assert recall["alpha"]["mean"] > max(recall["beta"]["mean"], recall["gamma"]["mean"]), recall
    assert recall["alpha"]["ci_low"] > 0, recall
    assert set(combo["per_class"]) == {"alpha", "beta", "gamma"}
    assert set(section["baseline"]["per_class_recall"]) == {"alpha", "beta", "gamma"}
