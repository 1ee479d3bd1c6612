"""The user's own split (`run --split-col COL --augment-split train`): only those rows get variants, the others are
carried as originals; no export file ever holds a variant of a test row, and the export says which split was
augmented (or warns that every row has variants when the run had no split column)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from helpers import CHEAP_RUN_ARGS, run_cli, sample_rows, write_csv

from augshard.core.config import RunConfig
from augshard.evaluation.document import TEST_SPLIT, UserSplit, read_document
from augshard.storage.meta import read_meta

pytestmark = pytest.mark.slow

SPLIT = ("--split-col", "split", "--augment-split", "train")
TWO_METHODS = ("--methods", "nlp_keyboard,nlp_randword_delete")


def split_rows(n: int = 12) -> list[dict[str, str]]:
    """Sample rows, every third one in `test`, one in `dev`."""
    rows = sample_rows(n)
    for i, row in enumerate(rows):
        row["split"] = "test" if i % 3 == 2 else "dev" if i == 4 else "train"
    return rows


def run(cwd: Path, *extra: str) -> subprocess.CompletedProcess:
    return run_cli("run", "--input", "in.csv", *CHEAP_RUN_ARGS, *TWO_METHODS, *extra, cwd=cwd)


@pytest.fixture(scope="module")
def split_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("split")
    write_csv(cwd / "in.csv", split_rows())
    proc = run(cwd, *SPLIT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return cwd


def keys_of(value: str) -> set[str]:
    return {r["id"] for r in split_rows() if r["split"] == value}


def test_no_dataset_of_any_combo_holds_a_variant_of_a_row_outside_the_augmented_split(split_run: Path) -> None:
    root = split_run / "data/processed/augsets"
    datasets = sorted(root.glob("combo_*/dataset.parquet"))
    assert len(datasets) == 3
    held_out = keys_of("test") | keys_of("dev")
    for path in datasets:
        varied = set(pq.read_table(path).column("row_key").to_pylist())
        assert varied and not varied & held_out, path
        assert varied <= keys_of("train")
        meta = read_meta(path.parent / "meta.json")
        assert meta.split is not None and (meta.split.column, meta.split.augmented) == ("split", ["train"])
        assert meta.split.held_out == len(held_out)
        assert meta.rows_input == len(keys_of("train"))
        assert meta.rows_skipped_by_reason == {"not_augmented_split": len(held_out)}


def test_an_export_holds_test_rows_only_as_originals_and_says_which_split_was_augmented(split_run: Path) -> None:
    proc = run_cli("export", "--to", "out", "--include-originals", cwd=split_run)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "variants only of rows where split is train" in proc.stdout
    assert "warning" not in proc.stderr
    data = pd.read_parquet(split_run / "out/data")
    test = data[data["split"] != "train"]
    assert set(test["id"]) == keys_of("test") | keys_of("dev")
    assert set(test["k"]) == {0} and test["combo_id"].isna().all()  # originals only, each once
    assert len(test) == len(set(test["id"]))
    assert (data[data["k"] > 0]["split"] == "train").all() and (data["k"] > 0).any()
    card = (split_run / "out/README.md").read_text()
    assert "variants only of rows where split is train" in card
    facts = json.loads((split_run / "out/export.json").read_text())
    assert facts["split"] == {"column": "split", "augmented": ["train"], "held_out": len(test)}


def test_without_a_split_column_export_and_card_warn_in_one_line(tmp_path: Path) -> None:
    write_csv(tmp_path / "in.csv", split_rows(6))
    assert run(tmp_path).returncode == 0
    meta = read_meta(next((tmp_path / "data/processed/augsets").glob("combo_*/meta.json")))
    assert meta.split is None and "split" not in json.loads(next((tmp_path / "data/processed/augsets").glob(
        "combo_*/meta.json")).read_text())  # fmt: skip
    proc = run_cli("export", "--to", "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    warning = [line for line in proc.stderr.splitlines() if "variants exist for every row" in line]
    assert len(warning) == 1 and "--split-col" in warning[0]
    card = (tmp_path / "out/README.md").read_text()
    assert sum("variants exist for every row" in line for line in card.splitlines()) == 1


def test_several_augmented_values_repeated_or_comma_separated(tmp_path: Path) -> None:
    write_csv(tmp_path / "in.csv", split_rows(6))
    repeated = run(tmp_path, "--split-col", "split", "--augment-split", "train", "--augment-split", "dev",
                   "--dry-run", "--format", "json")  # fmt: skip
    commas = run(tmp_path, "--split-col", "split", "--augment-split", "train,dev", "--dry-run", "--format", "json")
    assert repeated.returncode == 0, repeated.stderr
    plans = [json.loads(p.stdout) for p in (repeated, commas)]
    assert plans[0]["plan"] == plans[1]["plan"]
    assert plans[0]["input"]["rows_usable"] == 4 and plans[0]["input"]["rows_skipped"] == {"not_augmented_split": 2}
    table = run(tmp_path, *SPLIT, "--dry-run")
    assert "3 rows to augment (where split is train)" in table.stdout


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (("--split-col", "fold"), "column 'fold' (--split-col) not found"),
        (("--split-col", "split", "--augment-split", "training"), "no row has split = training"),
    ],
)
def test_a_split_column_or_value_the_input_lacks_is_one_line_and_exit_2(
    tmp_path: Path, flags: tuple[str, ...], said: str
) -> None:
    write_csv(tmp_path / "in.csv", split_rows(6))
    proc = run(tmp_path, *flags)
    assert proc.returncode == 2 and said in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "data/processed/augsets").exists() or not any(
        (tmp_path / "data/processed/augsets").glob("combo_*")
    )


def test_the_fingerprint_changes_only_with_a_split_column() -> None:
    plain = RunConfig().fingerprint()
    assert RunConfig(augment_split=("dev",)).fingerprint() == plain  # no split column: the values change nothing
    train = RunConfig(split_col="split").fingerprint()
    assert train != plain and RunConfig(split_col="split", augment_split=("dev",)).fingerprint() != train


def evaluate(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return run_cli("evaluate", "--label-col", "label", "--drop-rare-classes", *args, cwd=cwd)


def test_evaluate_takes_the_users_split_as_its_one_test_set(split_run: Path) -> None:
    proc = evaluate(split_run, "--test-split", "test", "--out", "split_eval.json")
    assert proc.returncode == 0, proc.stderr
    assert "trained on the 7 originals where split is train, scored on the 4 where split is test" in proc.stdout
    doc = read_document(split_run / "split_eval.json")
    assert doc.protocol.design == TEST_SPLIT and doc.protocol.confirm is None
    assert doc.protocol.test_split == UserSplit("split", "test", ["train"], 7, 4, 1000)
    section = doc.results[0]
    assert section.splits == 1 and section.power is not None and section.power.splits == 1000
    assert section.baseline.macro_f1_splits == [section.baseline.macro_f1.mean]
    for row in section.combos:
        assert (
            row.gain.mean == round(row.macro_f1.mean - section.baseline.macro_f1.mean, 6)
            or abs(row.gain.mean - (row.macro_f1.mean - section.baseline.macro_f1.mean)) < 2e-6
        )
        assert row.gain.ci_low <= row.gain.ci_high and row.gain.splits == 1000


def test_evaluate_trains_on_no_variant_of_a_test_row_even_when_the_run_varied_every_row(tmp_path: Path) -> None:
    write_csv(tmp_path / "in.csv", split_rows())
    assert run(tmp_path).returncode == 0  # no --split-col: every row has variants
    proc = evaluate(tmp_path, "--test-split", "test", "--split-col", "split", "--combos", "nlp_keyboard")
    assert proc.returncode == 0, proc.stderr
    doc = read_document(tmp_path / "data/processed/augsets" / next(
        p.name for p in (tmp_path / "data/processed/augsets").glob("evaluation*.json")))  # fmt: skip
    assert doc.protocol.test_split == UserSplit("split", "test", [], 8, 4, 1000)  # train and dev: not test
    (row,) = doc.results[0].combos
    keys = pq.read_table(next((tmp_path / "data/processed/augsets").glob("combo_1_nlp_keyboard/dataset.parquet")))
    not_test = [k for k in keys.column("row_key").to_pylist() if k not in keys_of("test")]
    assert row.variants_used == len(not_test) < keys.num_rows


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--test-split", "train"), "the run augmented that split"),
        (("--test-split", "test", "--confirm-top", "2"), "no screen and no --confirm-top"),
        (("--split-col", "split"), "--split-col goes with --test-split"),
        (("--test-split", "holdout"), "no labelled original for the test set"),
    ],
)
def test_evaluate_refuses_a_test_split_it_cannot_use_in_one_line(
    split_run: Path, args: tuple[str, ...], said: str
) -> None:
    proc = evaluate(split_run, *args, "--out", "refused.json")
    assert proc.returncode == 2 and said in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (split_run / "refused.json").exists()


def test_augment_split_without_a_split_column_says_it_does_nothing(tmp_path: Path) -> None:
    write_csv(tmp_path / "in.csv", split_rows())
    proc = run(tmp_path, "--augment-split", "train", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "note: --augment-split does nothing without --split-col COL" in proc.stderr
    assert "--augment-split does nothing" not in run(tmp_path, "--dry-run").stderr  # its default alone says nothing
