"""More variants where classes are short (`run --balance`, `--balance-target`, `--max-variants-per-sample`,
`--variants-per-class`): each row of class c asks for the variants that bring c's originals plus variants to the
target, the same rows in every shard and every rerun; recorded in the plan, meta.json, the summary, export.json and
the card. Without these flags nothing changes (fingerprints are pinned in test_settings.py)."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import CHEAP_RUN_ARGS, REPO, SAMPLE, run_cli, sample_rows, write_csv

from augshard.core.config import load_config
from augshard.core.errors import ConfigError, InputError
from augshard.storage.balance import allocate
from augshard.storage.data import Split, load_dataset
from augshard.storage.meta import read_meta

LABEL = ("--label-col", "label")


def short_classes(n_negative: int = 6, n_neutral: int = 2) -> list[dict[str, str]]:
    """The sample's 67 positive rows, and only `n_negative` negative and `n_neutral` neutral ones."""
    rows = sample_rows(200)
    keep = {"positive": 67, "negative": n_negative, "neutral": n_neutral}
    out, seen = [], Counter()
    for row in rows:
        if seen[row["label"]] < keep[row["label"]]:
            seen[row["label"]] += 1
            out.append(row)
    return out


def config(path: Path, **settings) -> object:
    base = dict(input=str(path), text_col="text", evidence_col="evidence", id_col="id", label_col="label")
    return load_config(overrides=base | settings)


def allocation(path: Path, **settings):
    cfg = config(path, **settings)
    split = Split.of(cfg.split_col, cfg.augment_split)
    dataset = load_dataset(cfg.input, cfg.text_col, cfg.evidence_col, cfg.id_col, split)
    return dataset, allocate(dataset, cfg)


@pytest.fixture
def short_csv(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "in.csv", short_classes(n_negative=6, n_neutral=4))


def test_balance_brings_every_class_to_the_largest_and_spreads_the_remainder(short_csv: Path) -> None:
    dataset, asks = allocation(short_csv, balance=True, max_variants_per_sample=100)
    by_class = {c.label: c for c in asks.classes}
    largest = max(c.originals for c in asks.classes)
    assert asks.target == largest and by_class["positive"].asked == 0
    for label in ("negative", "neutral"):
        c = by_class[label]
        assert c.originals + c.asked == largest  # exactly the target: the remainder goes one each to some rows
        counts = [asks.of(r) for r in dataset.rows if asks.label(r) == label]
        assert max(counts) - min(counts) <= 1 and sum(counts) == c.asked
    assert [c.label for c in asks.classes] == ["neutral", "negative", "positive"]  # rarest first
    assert asks.asked_total == sum(asks.of(r) for r in dataset.rows)


def test_the_cap_and_an_explicit_target_bound_the_counts(short_csv: Path) -> None:
    _, capped = allocation(short_csv, balance=True)  # default cap 10: neutral would need 60 / 4 = 15 a row
    neutral = next(c for c in capped.classes if c.label == "neutral")
    assert (neutral.fewest, neutral.most, neutral.asked) == (10, 10, 40) and capped.cap == 10
    _, above = allocation(short_csv, balance=True, balance_target=100, max_variants_per_sample=1000)
    assert all(c.originals + c.asked == 100 for c in above.classes)  # the largest class gets variants too


def test_which_rows_get_the_remainder_depends_on_seed_and_key_not_on_row_order(tmp_path: Path) -> None:
    rows = short_classes(n_negative=7, n_neutral=3)
    a = write_csv(tmp_path / "a.csv", rows)
    shuffled = rows[:]
    random.Random(1).shuffle(shuffled)
    b = write_csv(tmp_path / "b.csv", shuffled)

    def per_key(path: Path, seed: int = 42) -> dict[str, int]:
        dataset, asks = allocation(path, balance=True, seed=seed)
        return {r.key: asks.of(r) for r in dataset.rows}

    assert per_key(a) == per_key(b) == per_key(a)
    negative = {r["id"] for r in rows if r["label"] == "negative"}
    _, asks = allocation(a, balance=True)
    base, rem = divmod(asks.target - 7, 7)
    assert rem and sorted(per_key(a)[k] for k in negative) == [base] * (7 - rem) + [base + 1] * rem
    assert any(per_key(a, seed)[k] != per_key(a)[k] for seed in range(43, 60) for k in negative)


def test_variants_per_class_sets_named_classes_and_leaves_the_others_to_variants_per_sample(short_csv: Path) -> None:
    dataset, asks = allocation(short_csv, variants_per_class="neutral=5, negative=0", variants_per_sample=2)
    want = {"neutral": 5, "negative": 0, "positive": 2}
    assert all(asks.of(r) == want[asks.label(r)] for r in dataset.rows)
    assert asks.target is None and {c.label: c.how for c in asks.classes}["positive"] == "uniform"
    with pytest.raises(InputError, match=r"no row to augment has label = nuetral .*values: negative, neutral"):
        allocation(short_csv, variants_per_class={"nuetral": 3})


def test_only_the_augmented_split_is_counted(tmp_path: Path) -> None:
    rows = short_classes(n_negative=6, n_neutral=4)
    for i, row in enumerate(rows):
        row["split"] = "test" if i % 2 else "train"
    path = write_csv(tmp_path / "in.csv", rows)
    dataset, asks = allocation(path, balance=True, split_col="split", max_variants_per_sample=100)
    split = {r["id"]: r["split"] for r in rows}
    assert {split[r.key] for r in dataset.rows} == {"train"} and {split[r.key] for r in dataset.held_out} == {"test"}
    train = Counter(asks.label(r) for r in dataset.rows)
    assert {c.label: c.originals for c in asks.classes} == dict(train) and sum(train.values()) < len(rows) / 2 + 1
    assert asks.target == max(train.values())


def test_settings_that_need_labels_or_balance_say_so(short_csv: Path) -> None:
    with pytest.raises(ConfigError, match="--balance needs --label-col"):
        config(short_csv, balance=True, label_col=None)
    with pytest.raises(ConfigError, match="--variants-per-class needs --label-col"):
        config(short_csv, variants_per_class="a=1", label_col=None)
    with pytest.raises(ConfigError, match="only shape --balance: add --balance"):
        config(short_csv, balance_target=50)
    with pytest.raises(ConfigError, match="expected LABEL=N"):
        config(short_csv, variants_per_class="neutral")
    with pytest.raises(ConfigError, match="names class 'a' twice"):
        config(short_csv, variants_per_class=["a=1", "a=2"])
    plain = config(short_csv).fingerprint()
    assert config(short_csv, balance=True).fingerprint() != plain
    assert (
        config(short_csv, balance=True).fingerprint()
        != config(short_csv, balance=True, balance_target=70).fingerprint()
    )
    assert config(short_csv, variants_per_class="a=1").fingerprint() != plain
    # the shape of --balance means nothing without it, and so moves no fingerprint
    assert config(short_csv, max_variants_per_sample=10).fingerprint() == plain


def test_cli_errors_are_one_line(tmp_path: Path, short_csv: Path) -> None:
    proc = run_cli("run", "--input", str(short_csv), *CHEAP_RUN_ARGS, "--balance", "--dry-run", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (
        proc.stderr.strip().splitlines()[-1]
        == "error: --balance needs --label-col: the column holding each row's class"
    )


@pytest.mark.slow
def test_a_balanced_run_asks_and_keeps_per_class_the_same_whatever_the_shards(tmp_path: Path) -> None:
    write_csv(tmp_path / "in.csv", short_classes(n_negative=6, n_neutral=3))
    args = ("--input", "in.csv", *CHEAP_RUN_ARGS, *LABEL, "--balance", "--methods", "nlp_keyboard,nlp_randchar_swap",
            "--max-combo-size", "1", "--quality-metric", "none")  # fmt: skip
    plan = run_cli("run", *args, "--dry-run", "--format", "json", cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    doc = json.loads(plan.stdout)
    classes = {c["label"]: c for c in doc["balance"]["classes"]}
    # 66 positive rows are usable (one's evidence is not in its text); neutral's (66 - 3) / 3 is capped at 10
    assert doc["balance"]["target"] == 66 and classes["neutral"]["per_row"] == "10"
    assert classes["negative"]["asked"] == 60 and doc["variants_asked"] == 30 + 60

    one = run_cli("run", *args, "--num-shards", "1", "--output-root", "one", "--no-live", cwd=tmp_path)
    two = run_cli("run", *args, "--num-shards", "2", "--output-root", "two", "--format", "json", cwd=tmp_path)
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    assert "balance: target 66 per class: neutral 3 -> 10/row, negative 6 -> 10/row, positive 66 -> 0/row" in one.stdout
    assert "balance: target 66 per class; variants per combo" in one.stdout  # the summary's per-class yield
    labels = {r["id"]: r["label"] for r in short_classes(n_negative=6, n_neutral=3)}
    for combo in ("combo_1_nlp_keyboard", "combo_1_nlp_randchar_swap"):
        data = pq.read_table(tmp_path / "one" / combo / "dataset.parquet")
        assert data.equals(pq.read_table(tmp_path / "two" / combo / "dataset.parquet"))
        kept = Counter(labels[k] for k in data.column("row_key").to_pylist())
        meta = read_meta(tmp_path / "one" / combo / "meta.json")
        assert meta.balance is not None and meta.balance.target == 66
        assert {c.label: c.kept for c in meta.balance.classes} == {
            "neutral": kept["neutral"],
            "negative": kept["negative"],
            "positive": 0,
        }
        assert kept["neutral"] > 20 and kept["negative"] > 40  # `none` keeps every changed, new candidate
        assert meta.variants.asked == 90 and meta.variants.kept == data.num_rows
        per_row = Counter(data.column("row_key").to_pylist())
        assert max(per_row.values()) <= 10

    summary = {c["label"]: c for c in json.loads(two.stdout)["balance"]}  # the run document's per-class yield
    kept_one = Counter(labels[k] for k in pq.read_table(tmp_path / "one/combo_1_nlp_keyboard/dataset.parquet")
                       .column("row_key").to_pylist())  # fmt: skip
    assert summary["neutral"]["combos"] == 2 and summary["neutral"]["asked"] == 30 and summary["positive"]["asked"] == 0
    assert summary["neutral"]["kept_min"] <= kept_one["neutral"] <= summary["neutral"]["kept_max"]
    report = run_cli("report", "--output-root", "one", "--out", "r.html", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert "variants per row by class to 66: neutral 10, negative 10, positive 0" in (tmp_path / "r.html").read_text()

    out = run_cli("export", "--to", "train", "--output-root", "one", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    facts = json.loads((tmp_path / "train/export.json").read_text())
    assert facts["balance"] == {"target": 66, "max_variants_per_sample": 10,
                                "per_row": {"negative": "10", "neutral": "10", "positive": "0"}}  # fmt: skip
    card = (tmp_path / "train/README.md").read_text()
    assert "Variants per class (`--balance` to 66 per class): neutral 10, negative 10, positive 0" in card


@pytest.mark.slow
def test_readmes_from_python_example_prints_what_the_readme_shows(tmp_path: Path) -> None:
    """README's "From Python": a DataFrame in, the user's split kept, balanced, evaluated, exported; run verbatim."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## From Python") :]
    code, shown = re.findall(r"```(?:python)?\n(.*?)```", section, flags=re.S)[:2]
    assert "balance=True" in code and 'test_split="test"' in code and "augshard.export(" in code
    shutil.copy(SAMPLE, tmp_path / "reviews.csv")
    script = tmp_path / "example.py"
    prelude = "import pandas as pd\npd.set_option('display.width', 200)\npd.set_option('display.max_columns', None)\n"
    script.write_text(prelude + code, encoding="utf-8")  # as a wide terminal shows it
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == shown.split()


def test_a_balanced_shard_job_crosses_as_json_unchanged(short_csv: Path) -> None:
    """A Dask worker gets the job as JSON: the per-class counts (a tuple in RunConfig) come back as they were."""
    from augshard.runner.job import ShardJob

    cfg = config(short_csv, balance=True, balance_target=80, variants_per_class=["neutral=4"])
    job = ShardJob(cfg=cfg, index=0, num_shards=1, combos=(), specs=(), plan_fingerprint="p", input_sha="s")
    back = ShardJob.from_json(job.to_json())
    assert back == job and back.cfg.variants_per_class == ("neutral=4",) and back.cfg.fingerprint() == cfg.fingerprint()
