"""Rows in memory as a run's input (issue 32): a pandas DataFrame, a pyarrow Table, a datasets.Dataset or a
DatasetDict's split gives the rows a CSV of them gives; its identity is its content; its columns keep their types
through dataset.parquet, the export and the card; any other input is one ConfigError."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import SAMPLE, sample_rows

import augshard
from augshard.api import Action
from augshard.core.errors import ConfigError
from augshard.storage.data import content_sha256
from augshard.storage.meta import read_meta

COMBO = "combo_1_nlp_keyboard"
COMPARED = ("text", "evidence", "row_key", "variant", "evidence_original", "similarity")


def settings(root: Path, name: str) -> dict:
    return dict(text_col="text", evidence_col="evidence", methods=["nlp_keyboard"], quality_metric="char_ratio",
                num_shards=1, output_root=str(root / name), cache_dir=str(root / "cache"), log_dir=str(root / "logs"),
                progress=False)  # fmt: skip


def dataset_of(root: Path, name: str) -> pa.Table:
    return pq.read_table(root / name / COMBO / "dataset.parquet")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The shipped sample with an integer column (`stars`, text in the CSV, int64 once pandas reads it) run from the
    CSV file, a DataFrame read from it, a Dataset and a DatasetDict's split; no id column, so row keys hash values."""
    root = tmp_path_factory.mktemp("inmem")
    rows = [dict(r, stars=str(i % 5 + 1)) for i, r in enumerate(sample_rows(60))]
    with open(root / "in.csv", "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    frame = pd.read_csv(root / "in.csv")
    assert frame["stars"].dtype == np.int64  # the case where hashing values as read would differ from the CSV
    dataset = datasets.Dataset.from_pandas(frame, preserve_index=False)
    results = {
        "csv": augshard.run(input=str(root / "in.csv"), **settings(root, "csv")),
        "frame": augshard.run(input=frame, **settings(root, "frame")),
        "dataset": augshard.run(input=dataset, **settings(root, "dataset")),
        "dict": augshard.run(input=datasets.DatasetDict(train=dataset), split="train", **settings(root, "dict")),
    }
    return {"root": root, "frame": frame, "results": results}


@pytest.mark.parametrize("kind", ["frame", "dataset", "dict"])
def test_in_memory_rows_give_the_csv_rows(runs: dict, kind: str) -> None:
    root, result = runs["root"], runs["results"][kind]
    assert result.ok and runs["results"]["csv"].ok
    csv_rows, rows = dataset_of(root, "csv"), dataset_of(root, kind)
    assert rows.num_rows == csv_rows.num_rows > 0
    for name in COMPARED:
        assert rows.column(name).to_pylist() == csv_rows.column(name).to_pylist(), name
    assert rows.schema.field("stars").type == pa.int64()  # kept, where the CSV's is text
    assert csv_rows.schema.field("stars").type == pa.string()


def test_the_input_is_its_content_hash_in_the_cache_and_meta_json_says_so(runs: dict) -> None:
    root, frame = runs["root"], runs["frame"]
    meta = read_meta(root / "frame" / COMBO / "meta.json")
    digest = content_sha256(pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None))
    assert meta.source.sha256 == digest and meta.source.origin == "dataframe" and meta.source.row_keys == "text"
    assert Path(meta.source.path) == (root / "cache" / "inputs" / f"dataframe-{digest}.parquet").resolve()
    assert read_meta(root / "dataset" / COMBO / "meta.json").source.origin == "dataset"
    # A file's meta.json says what it always said: no origin, no row-key rule.
    raw = json.loads((root / "csv" / COMBO / "meta.json").read_text())
    assert set(raw["source"]) == {"path", "sha256", "text_col", "evidence_col", "id_col"}


def test_the_same_rows_again_reuse_the_copy_and_the_complete_combos(runs: dict) -> None:
    """pandas' index is no part of the identity: the rows under another index are the same input."""
    root, frame = runs["root"], runs["frame"]
    copies = {p: p.stat().st_mtime_ns for p in (root / "cache" / "inputs").iterdir()}
    again = frame.set_axis(range(100, 100 + len(frame)))
    plan = augshard.plan(input=again, **{k: v for k, v in settings(root, "frame").items() if k != "progress"})
    assert [c.action for c in plan.combos] == [Action.SKIP]
    assert {p: p.stat().st_mtime_ns for p in (root / "cache" / "inputs").iterdir()} == copies  # read, not rewritten
    changed = frame.assign(stars=frame["stars"] + 1)
    plan = augshard.plan(input=changed, **{k: v for k, v in settings(root, "frame").items() if k != "progress"})
    assert [c.action for c in plan.combos] == [Action.RUN]


def test_export_and_evaluate_read_an_in_memory_run(runs: dict, tmp_path: Path) -> None:
    root = runs["root"]
    exported = augshard.export(tmp_path / "set", root / "frame", include_originals=True)
    assert exported.rows > 0
    table = pq.read_table(tmp_path / "set" / "data")
    assert table.schema.field("stars").type == pa.int64()
    assert "from a pandas DataFrame given in memory (content sha256 `" in (tmp_path / "set" / "README.md").read_text()
    result = augshard.evaluate("label", root / "frame", folds=2, repeats=1, workers=1, out=tmp_path / "ev.json")
    assert [g.combo_dir for g in result.gains] == [COMBO]


def test_a_pyarrow_table_is_an_input_too(runs: dict) -> None:
    root = runs["root"]
    table = pa.Table.from_pandas(runs["frame"], preserve_index=False)
    result = augshard.run(input=table, **settings(root, "arrow"))
    assert result.ok
    keys = dataset_of(root, "arrow").column("row_key").to_pylist()
    assert keys == dataset_of(root, "csv").column("row_key").to_pylist()
    assert read_meta(root / "arrow" / COMBO / "meta.json").source.origin == "arrow"


@pytest.mark.parametrize(
    ("value", "split", "says"),
    [
        ([{"text": "a"}], None, "got list"),
        ({"text": ["a"]}, None, "got dict"),
        (5, None, "got int"),
        (datasets.DatasetDict(train=datasets.Dataset.from_dict({"text": ["a"]})), None, "give split= to choose one"),
        (datasets.DatasetDict(train=datasets.Dataset.from_dict({"text": ["a"]})), "test", "'test' is not one of them"),
        (str(SAMPLE), "train", "names a split of a datasets.DatasetDict"),
    ],
)
def test_any_other_input_is_one_config_error_naming_what_is_accepted(
    tmp_path: Path, value: object, split: str | None, says: str
) -> None:
    with pytest.raises(ConfigError, match=says) as info:
        augshard.plan(input=value, split=split, text_col="text", cache_dir=str(tmp_path / "cache"))
    if "got" in says:
        assert "a pandas DataFrame, a pyarrow Table, a datasets.Dataset" in str(info.value)
    assert not (tmp_path / "cache").exists()


def test_every_column_keeps_its_type_through_the_dataset_the_export_and_the_card(tmp_path: Path) -> None:
    """A Parquet file with typed columns: dataset.parquet and the export keep each type, and the card names it as
    `datasets` does (int16 was 'string' there)."""
    frame = pd.DataFrame(sample_rows(12))
    frame["stars"] = np.arange(12, dtype="int64")
    frame["small"] = np.arange(12, dtype="int16")
    frame["score"] = np.arange(12) / 3
    frame["ok"] = [i % 2 == 0 for i in range(12)]
    frame["when"] = pd.date_range("2024-01-01", periods=12, freq="D").astype("datetime64[us]")
    frame["tags"] = [["x", "y"][: i % 3] for i in range(12)]
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "in.parquet")
    assert augshard.run(input=str(tmp_path / "in.parquet"), **settings(tmp_path, "out")).ok
    wanted = {"stars": pa.int64(), "small": pa.int16(), "score": pa.float64(), "ok": pa.bool_(),
              "when": pa.timestamp("us"), "tags": pa.list_(pa.string())}  # fmt: skip
    written = dataset_of(tmp_path, "out").schema
    assert {n: written.field(n).type for n in wanted} == wanted
    augshard.export(tmp_path / "set", tmp_path / "out", include_originals=True)
    exported = pq.read_table(tmp_path / "set" / "data").schema
    assert {n: exported.field(n).type for n in wanted} == wanted
    card = (tmp_path / "set" / "README.md").read_text()
    for name, dtype in (("stars", "int64"), ("small", "int16"), ("score", "float64"), ("ok", "bool"),
                        ("when", "timestamp[us]")):  # fmt: skip
        assert f"  - name: {name}\n    dtype: {dtype}\n" in card
    assert "  - name: tags\n    sequence: string\n" in card
    loaded = datasets.load_dataset(str(tmp_path / "set"))["train"]
    assert (
        str(loaded.features["small"].dtype) == "int16"
        and loaded.num_rows == pq.read_metadata(next((tmp_path / "set" / "data").iterdir())).num_rows
    )
