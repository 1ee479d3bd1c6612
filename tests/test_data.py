"""Tests for augshard.storage.data: reading inputs, row keys, locating and splicing evidence."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import write_csv as write_dicts
from hypothesis import given
from hypothesis import strategies as st

from augshard.core.errors import InputError
from augshard.storage.data import file_sha256, load_dataset, locate_evidence, read_table, splice


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


TEXT = "The battery lasts all day. The screen is bright and sharp. Shipping was slow."


# --- reading --------------------------------------------------------------------------------------


def test_csv_keeps_every_column_as_text(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "in.csv",
        ["id", "score", "flag", "text"],
        [["007", "1.50", "TRUE", "hello"], ["010", "2", "no", "world"]],
    )
    table = read_table(path)
    assert table.column_names == ["id", "score", "flag", "text"]
    assert all(pa.types.is_string(f.type) for f in table.schema)
    assert table.column("id").to_pylist() == ["007", "010"]
    assert table.column("score").to_pylist() == ["1.50", "2"]
    assert table.column("flag").to_pylist() == ["TRUE", "no"]


def test_csv_ids_stay_as_written_in_row_keys(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "in.csv", ["id", "text"], [["007", "first text"], ["0007", "second text"]])
    ds = load_dataset(str(path), "text", None, "id")
    assert [r.key for r in ds.rows] == ["007", "0007"]


def test_csv_quotes_commas_and_newlines_round_trip(tmp_path: Path) -> None:
    tricky = [
        ["1", 'She said "hi", then left.', "a,b"],
        ["2", "line one\nline two\r\nline three", '""quoted""'],
        ["3", "  leading and trailing spaces  ", "ünïcödé ✓ 日本"],
    ]
    path = write_csv(tmp_path / "in.csv", ["id", "text", "other"], tricky)
    table = read_table(path)
    assert [list(r.values()) for r in table.to_pylist()] == tricky


def test_csv_with_bom_header(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes("id,text\n1,hello\n".encode("utf-8-sig"))
    assert read_table(path).column_names == ["id", "text"]


def test_parquet_read(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": [3, 1], "text": ["alpha beta", "gamma delta"], "label": [0.5, 1.0]}), path)
    table = read_table(path)
    assert table.column("text").to_pylist() == ["alpha beta", "gamma delta"]
    ds = load_dataset(str(path), "text", None, "id")
    assert [r.key for r in ds.rows] == ["3", "1"]
    assert [r.text for r in ds.rows] == ["alpha beta", "gamma delta"]
    assert all(r.match == "whole" and (r.start, r.end) == (0, len(r.text)) for r in ds.rows)
    assert ds.sha256 == file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_parquet_non_string_text_column(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": [1, 2, 3]}), path)
    with pytest.raises(InputError, match=r"column 'text' \(--text-col\) holds int64, not text"):
        load_dataset(str(path), "text", None, None)


def test_parquet_non_string_evidence_column(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": ["a b c"], "ev": [1.5]}), path)
    with pytest.raises(InputError, match=r"'ev' \(--evidence-col\)"):
        load_dataset(str(path), "text", "ev", None)


def test_not_a_parquet_file(tmp_path: Path) -> None:
    path = tmp_path / "fake.parquet"
    path.write_bytes(b"this is not parquet at all")
    with pytest.raises(InputError, match="not a readable Parquet file"):
        read_table(path)


@pytest.mark.parametrize(
    ("kwargs", "column", "flag"),
    [
        ({"text_col": "body", "evidence_col": None, "id_col": None}, "body", "--text-col"),
        ({"text_col": "text", "evidence_col": "proof", "id_col": None}, "proof", "--evidence-col"),
        ({"text_col": "text", "evidence_col": None, "id_col": "uid"}, "uid", "--id-col"),
    ],
)
def test_missing_column_names_column_and_flag(tmp_path: Path, kwargs: dict, column: str, flag: str) -> None:
    path = write_csv(tmp_path / "in.csv", ["id", "text"], [["1", "hello"]])
    with pytest.raises(InputError) as info:
        load_dataset(str(path), **kwargs)
    message = str(info.value)
    assert f"'{column}'" in message
    assert flag in message
    assert "columns are: id, text" in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        read_table(tmp_path / "absent.csv")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        load_dataset(str(path), "text", None, None)


def test_header_only_file(tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_text("id,text,evidence\n", encoding="utf-8")
    with pytest.raises(InputError, match="header but no data rows"):
        load_dataset(str(path), "text", "evidence", "id")


def test_non_utf8_bytes(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("id,text\n1,caf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(InputError, match="UTF-8") as info:
        load_dataset(str(path), "text", None, "id")
    assert str(path) in str(info.value)


def test_too_many_fields_in_a_row(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    path.write_text("id,text\n1,hello\n2,hello,extra\n", encoding="utf-8")
    with pytest.raises(InputError, match="row 3 has 3 fields"):
        read_table(path)


def test_duplicate_ids(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "in.csv", ["id", "text"], [["a1", "one"], ["b2", "two"], ["a1", "three"]])
    with pytest.raises(InputError, match=r"duplicate values \('a1'\)"):
        load_dataset(str(path), "text", None, "id")


def test_empty_id(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "in.csv", ["id", "text"], [["a1", "one"], ["", "two"]])
    with pytest.raises(InputError, match="data row 2 has no value in id column 'id'"):
        load_dataset(str(path), "text", None, "id")


# --- rows, skips and evidence ---------------------------------------------------------------------


def test_skipped_rows_counted_by_reason(tmp_path: Path) -> None:
    rows = [
        ["1", TEXT, "The screen is bright and sharp."],  # exact
        ["2", "", "anything"],  # empty text
        ["3", "   ", "anything"],  # whitespace-only text
        ["4", TEXT, ""],  # empty evidence
        ["5", TEXT, "   "],  # whitespace-only evidence
        ["6", TEXT, "Quantum chromodynamics describes gluons."],  # not found
        ["7", TEXT, "Shipping was slow."],  # exact
    ]
    path = write_csv(tmp_path / "in.csv", ["id", "text", "evidence"], rows)
    ds = load_dataset(str(path), "text", "evidence", "id")
    assert [r.key for r in ds.rows] == ["1", "7"]
    assert [r.index for r in ds.rows] == [0, 6]
    assert dict(ds.skipped) == {"empty_text": 2, "empty_evidence": 2, "evidence_not_found": 1}
    assert ds.rows_skipped == 5
    assert ds.table.num_rows == 7


def test_exact_match_span(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "in.csv", ["text", "evidence"], [[TEXT, "  The screen is bright and sharp. "]])
    (row,) = load_dataset(str(path), "text", "evidence", None).rows
    start = TEXT.index("The screen")
    assert (row.start, row.end, row.match) == (start, start + len("The screen is bright and sharp."), "exact")
    assert row.evidence == "The screen is bright and sharp."


def test_fuzzy_match_picks_paraphrased_sentence() -> None:
    text = "I ordered the blue one last week. The screen is bright and sharp. Delivery took four days."
    located = locate_evidence(text, "The screen is bright and crisp.")
    assert located is not None
    start, end, match = located
    assert match == "fuzzy"
    assert text[start:end] == "The screen is bright and sharp."


def test_fuzzy_match_is_case_insensitive_and_picks_best_of_similar() -> None:
    text = "The room was clean. The room was clean and quiet. The bed was soft."
    start, end, match = locate_evidence(text, "the room was CLEAN and calm.")
    assert match == "fuzzy"
    assert text[start:end] == "The room was clean and quiet."


def test_evidence_below_threshold_not_found() -> None:
    assert locate_evidence(TEXT, "Completely unrelated words about astronomy here.") is None


def test_no_evidence_column_uses_whole_text(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "in.csv", ["text"], [["whole text here"], [""]])
    ds = load_dataset(str(path), "text", None, None)
    assert [(r.start, r.end, r.match) for r in ds.rows] == [(0, 15, "whole")]
    assert dict(ds.skipped) == {"empty_text": 1}


# --- row keys -------------------------------------------------------------------------------------

ROWS = [
    ["positive", "Great kettle, boils fast.", "boils fast"],
    ["negative", "The lid rattles constantly.", "lid rattles"],
    ["neutral", "It is a kettle.", "kettle"],
    ["positive", "Great kettle, boils fast.", "boils fast"],  # identical to the first row
]


def _keys_by_content(path: Path) -> dict[tuple[str, ...], list[str]]:
    ds = load_dataset(str(path), "text", "evidence", None)
    table = ds.table.to_pylist()
    out: dict[tuple[str, ...], list[str]] = {}
    for row in ds.rows:
        out.setdefault(tuple(table[row.index].values()), []).append(row.key)
    return out


def test_hash_keys_do_not_depend_on_row_order(tmp_path: Path) -> None:
    header = ["label", "text", "evidence"]
    a = write_csv(tmp_path / "a.csv", header, ROWS)
    b = write_csv(tmp_path / "b.csv", header, [ROWS[2], ROWS[0], ROWS[3], ROWS[1]])
    keys_a, keys_b = _keys_by_content(a), _keys_by_content(b)
    assert keys_a.keys() == keys_b.keys()
    for content, keys in keys_a.items():
        assert sorted(keys) == sorted(keys_b[content])


def test_hash_keys_do_not_depend_on_column_order(tmp_path: Path) -> None:
    a = write_csv(tmp_path / "a.csv", ["label", "text", "evidence"], ROWS[:3])
    b = write_csv(tmp_path / "b.csv", ["evidence", "label", "text"], [[r[2], r[0], r[1]] for r in ROWS[:3]])
    keys_a = [r.key for r in load_dataset(str(a), "text", "evidence", None).rows]
    keys_b = [r.key for r in load_dataset(str(b), "text", "evidence", None).rows]
    assert keys_a == keys_b


def test_identical_rows_get_distinct_keys(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv", ["label", "text", "evidence"], ROWS)
    keys = [r.key for r in load_dataset(str(path), "text", "evidence", None).rows]
    assert len(set(keys)) == len(keys) == 4
    assert keys[3] == f"{keys[0]}-1"


def test_hash_key_changes_with_any_column(tmp_path: Path) -> None:
    a = write_csv(tmp_path / "a.csv", ["label", "text"], [["positive", "same text"]])
    b = write_csv(tmp_path / "b.csv", ["label", "text"], [["negative", "same text"]])
    (ka,) = load_dataset(str(a), "text", None, None).rows
    (kb,) = load_dataset(str(b), "text", None, None).rows
    assert ka.key != kb.key


# --- splice ---------------------------------------------------------------------------------------


def test_splice_example() -> None:
    start = TEXT.index("bright")
    assert splice(TEXT, start, start + len("bright"), "dim") == TEXT.replace("bright", "dim")


@st.composite
def _text_span_replacement(draw: st.DrawFn) -> tuple[str, int, int, str]:
    text = draw(st.text())
    start = draw(st.integers(min_value=0, max_value=len(text)))
    end = draw(st.integers(min_value=start, max_value=len(text)))
    return text, start, end, draw(st.text())


@given(_text_span_replacement())
def test_splice_leaves_outside_of_span_byte_identical(case: tuple[str, int, int, str]) -> None:
    text, start, end, replacement = case
    out = splice(text, start, end, replacement)
    encoded = out.encode("utf-8")
    head, tail = text[:start].encode("utf-8"), text[end:].encode("utf-8")
    assert encoded.startswith(head)
    assert encoded.endswith(tail)
    assert len(encoded) == len(head) + len(replacement.encode("utf-8")) + len(tail)
    assert out[start : start + len(replacement)] == replacement


def test_a_parquet_file_named_csv_is_told_to_be_renamed(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    pq.write_table(pa.table({"text": ["a b c"]}), path)
    with pytest.raises(InputError, match=r"a Parquet file, read as CSV for its '\.csv' suffix; rename it") as info:
        read_table(path)
    assert "UTF-8" not in str(info.value)


def test_an_unmatched_long_evidence_loads_in_bounded_time(tmp_path: Path) -> None:
    """50 kB of evidence found nowhere in its text: every sentence is ruled out by cheap bounds, not aligned."""
    import time

    text = " ".join(f"Sentence number {i} says something about the product." for i in range(200))
    evidence = ("An unrelated paragraph that never appears in the text at all. " * 800)[:50_000]
    rows = [{"id": str(i), "text": text, "evidence": evidence} for i in range(3)]
    path = write_dicts(tmp_path / "in.csv", rows)
    t0 = time.time()
    load_dataset(str(path), "text", "evidence", "id")
    assert time.time() - t0 < 2.0
    assert locate_evidence("One. Two is here.", "two is her") == (5, 17, "fuzzy")  # short ones still match


def test_a_megabyte_of_sentences_like_the_evidence_is_skipped_with_its_reason_in_bounded_time(tmp_path: Path) -> None:
    """Sentences of the evidence's own words in other orders: each passes the cheap bounds and is aligned (about
    3 ms each with cydifflib, 7x that without: 2 to 15 s for this megabyte, measured). The search stops at
    FUZZY_MAX_WORK and the row is skipped, said by its reason; a short row still matches."""
    import random
    import time

    rng = random.Random(2)
    words = ("the", "kettle", "boils", "a", "full", "litre", "of", "water", "in", "under", "three", "minutes", "and",
             "switches", "itself", "off", "quietly")  # fmt: skip
    evidence = " ".join(rng.choice(words) for _ in range(280))[:1500]
    text = ". ".join(" ".join(rng.choice(words) for _ in range(280))[:1500] for _ in range(660)) + "."
    rows = [{"id": "big", "text": text, "evidence": evidence},
            {"id": "small", "text": "One. Two is here.", "evidence": "two is her"}]  # fmt: skip
    path = write_dicts(tmp_path / "in.csv", rows)
    t0 = time.time()
    dataset = load_dataset(str(path), "text", "evidence", "id")
    assert time.time() - t0 < 3.0
    assert dataset.skipped_rows == [(0, "big", "evidence_search_too_long")]
    assert [(r.key, r.match) for r in dataset.rows] == [("small", "fuzzy")]


def test_reserved_names_cover_every_column_augshard_adds() -> None:
    """One list (columns.RESERVED) that preflight refuses in the input: every column a dataset.parquet, an export
    or augshard.load() adds beside the input's is in it."""
    from augshard.core import columns as col
    from augshard.shard.pipeline import output_schema

    plain = pa.schema([pa.field("text", pa.string())])
    for evidence in (False, True):
        added = set(output_schema(plain, evidence, labels=True).names) - {"text"}
        assert added <= set(col.RESERVED), added - set(col.RESERVED)
    assert {"combo_id", "combo_dir", "methods", "k"} <= set(col.RESERVED)  # load()'s and the export's


def test_reserved_column_refused_in_one_line(tmp_path: Path) -> None:
    from augshard.storage.data import check_reserved_columns

    table = pa.table({"text": ["a"], "combo_id": ["x"], "input_combo_id": ["y"], "k": ["1"]})
    with pytest.raises(InputError) as err:
        check_reserved_columns(table, "in.csv", {"--text-col": "text", "--id-col": None})
    message = str(err.value)
    assert "column 'combo_id'" in message and "(so are 'k')" in message and "input_input_combo_id" in message
    assert "\n" not in message
    check_reserved_columns(pa.table({"text": ["a"], "id": ["1"]}), "in.csv", {})  # no clash: nothing said
