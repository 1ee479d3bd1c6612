"""Tests for augshard.storage.manifest: shard manifests, merge rules and the summary."""

from __future__ import annotations

import csv
import json
import re
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import run_cli

from augshard.core.combos import Combo
from augshard.core.errors import OutputError
from augshard.storage.manifest import COLUMNS, outside_root, read_manifest, shard_manifest_name, write_shard_manifest
from augshard.storage.merge import merge, summarize
from augshard.storage.outcome import ComboOutcome, Status

PLAN_FP = "0123456789abcdef"


def entry(methods: tuple[str, ...], rows: int, status: str = "ok", shard: int = 0, fp: str = PLAN_FP) -> ComboOutcome:
    combo = Combo(methods)
    return ComboOutcome(
        combo_id=combo.combo_id,
        combo_dir=combo.dir_name,
        methods=combo.name,
        k=combo.k,
        rows=rows if status == "ok" else 0,
        rows_skipped=1,
        rows_rejected=3,
        status=Status(status),
        dataset_path=f"out/{combo.dir_name}/dataset.parquet" if status == "ok" else "",
        duration_s=1.25,
        shard=shard,
        resumed=False,
        plan_fingerprint=fp,
        error="" if status == "ok" else "RuntimeError: boom",
    )


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


@pytest.fixture
def two_shards(tmp_path: Path) -> Path:
    write_shard_manifest(tmp_path, 0, 2, [entry(("a",), 20), entry(("a", "b"), 18), entry(("c",), 0, "failed")])
    write_shard_manifest(tmp_path, 1, 2, [entry(("b",), 10, shard=1), entry(("b", "c"), 16, shard=1)])
    return tmp_path


def test_shard_manifest_name_and_columns(tmp_path: Path) -> None:
    path = write_shard_manifest(tmp_path, 3, 7, [entry(("a",), 5)])
    assert path == tmp_path / "manifest_shard3_of_7.csv"
    assert shard_manifest_name(3, 7) == "manifest_shard3_of_7.csv"
    columns, rows = read_rows(path)
    assert columns == COLUMNS
    assert rows[0]["combo_id"] == Combo(("a",)).combo_id
    assert read_manifest(path) == [entry(("a",), 5)]  # a row reads back as the outcome it was written from
    assert not list(tmp_path.glob(".*tmp"))  # the atomic write left no temp file behind


def test_merge_writes_final_manifest(two_shards: Path) -> None:
    summary = merge(two_shards)
    final = two_shards / "manifest_final.csv"
    columns, rows = read_rows(final)
    expected = ["combo_id", "combo_dir", "methods", "k", "rows", "rows_skipped", "rows_rejected", "status"]
    expected += ["dataset_path", "duration_s", "shard"]
    assert set(expected) <= set(columns)
    assert columns == COLUMNS
    # Sorted by k, then methods.
    assert [r["methods"] for r in rows] == ["a", "b", "c", "a+b", "b+c"]
    by_methods = {r["methods"]: r for r in rows}
    assert by_methods["a"]["rows"] == "20"
    assert by_methods["a"]["combo_dir"] == "combo_1_a"
    assert by_methods["a"]["combo_id"] == Combo(("a",)).combo_id
    assert by_methods["b"]["shard"] == "1"
    assert by_methods["c"]["status"] == "failed"
    assert by_methods["a+b"]["k"] == "2"
    assert by_methods["a+b"]["dataset_path"] == "out/combo_2_a+b/dataset.parquet"
    assert {r["plan_fingerprint"] for r in rows} == {PLAN_FP}
    assert summary.combos == 5


def test_merge_removes_shard_manifests(two_shards: Path) -> None:
    merge(two_shards)
    assert not list(two_shards.glob("manifest_shard*"))
    assert (two_shards / "manifest_final.csv").is_file()


def test_merge_keep_shards_and_output_name(two_shards: Path) -> None:
    merge(two_shards, output_name="final.csv", keep_shards=True)
    assert sorted(p.name for p in two_shards.glob("manifest_shard*")) == [
        "manifest_shard0_of_2.csv",
        "manifest_shard1_of_2.csv",
    ]
    assert (two_shards / "final.csv").is_file()
    assert not (two_shards / "manifest_final.csv").exists()


@pytest.mark.parametrize("ok_first", [True, False])
def test_merge_dedupes_combo_id_ok_wins(tmp_path: Path, ok_first: bool) -> None:
    ok, failed = entry(("a",), 12, "ok", shard=0), entry(("a",), 0, "failed", shard=1)
    first, second = (ok, failed) if ok_first else (failed, ok)
    first = replace(first, shard=0)
    second = replace(second, shard=1)
    write_shard_manifest(tmp_path, 0, 2, [first, entry(("b",), 4)])
    write_shard_manifest(tmp_path, 1, 2, [second])
    summary = merge(tmp_path)
    _, rows = read_rows(tmp_path / "manifest_final.csv")
    assert [r["combo_id"] for r in rows].count(Combo(("a",)).combo_id) == 1
    row_a = next(r for r in rows if r["methods"] == "a")
    assert row_a["status"] == "ok"
    assert row_a["rows"] == "12"
    assert summary.combos == 2
    assert summary.ok == 2
    assert summary.failed == 0


def test_merge_dedupes_identical_ok_rows(tmp_path: Path) -> None:
    write_shard_manifest(tmp_path, 0, 2, [entry(("a",), 12)])
    write_shard_manifest(tmp_path, 1, 2, [entry(("a",), 12, shard=1)])
    merge(tmp_path)
    _, rows = read_rows(tmp_path / "manifest_final.csv")
    assert len(rows) == 1
    assert rows[0]["shard"] == "0"


def test_merge_refuses_different_plan_fingerprints(tmp_path: Path) -> None:
    write_shard_manifest(tmp_path, 0, 3, [entry(("a",), 1)])
    write_shard_manifest(tmp_path, 1, 3, [entry(("b",), 1, fp="ffffffffffffffff")])
    write_shard_manifest(tmp_path, 2, 3, [entry(("c",), 1)])
    with pytest.raises(OutputError) as info:
        merge(tmp_path)
    message = str(info.value)
    assert "manifest_shard1_of_3.csv" in message
    assert "manifest_shard0_of_3.csv" not in message
    assert "manifest_shard2_of_3.csv" not in message
    assert "different plan" in message
    assert PLAN_FP in message
    # Nothing merged, nothing removed.
    assert not (tmp_path / "manifest_final.csv").exists()
    assert len(list(tmp_path.glob("manifest_shard*"))) == 3


def test_merge_accepts_an_empty_shard_manifest(tmp_path: Path) -> None:
    write_shard_manifest(tmp_path, 0, 2, [entry(("a",), 3)])
    write_shard_manifest(tmp_path, 1, 2, [])
    summary = merge(tmp_path)
    assert summary.combos == 1
    assert summary.rows == 3


def test_merge_refuses_missing_shard(tmp_path: Path) -> None:
    write_shard_manifest(tmp_path, 0, 3, [entry(("a",), 1)])
    write_shard_manifest(tmp_path, 2, 3, [entry(("c",), 1)])
    with pytest.raises(OutputError, match=r"missing manifest\(s\) for shard\(s\) 1 of 3"):
        merge(tmp_path)
    assert not (tmp_path / "manifest_final.csv").exists()


def test_merge_refuses_mixed_shard_counts(tmp_path: Path) -> None:
    write_shard_manifest(tmp_path, 0, 1, [entry(("a",), 1)])
    write_shard_manifest(tmp_path, 0, 2, [entry(("a",), 1)])
    write_shard_manifest(tmp_path, 1, 2, [entry(("b",), 1)])
    with pytest.raises(OutputError, match=r"different shard counts \(of_1, of_2\)"):
        merge(tmp_path)


def test_merge_refuses_no_manifests(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="no shard manifests"):
        merge(tmp_path)
    with pytest.raises(OutputError, match="output root not found"):
        merge(tmp_path / "absent")


def test_read_manifest_rejects_foreign_csv(tmp_path: Path) -> None:
    path = tmp_path / "manifest_shard0_of_1.csv"
    path.write_text("name,value\nx,1\n", encoding="utf-8")
    with pytest.raises(OutputError, match="not an augshard manifest"):
        read_manifest(path)


def test_summary_numbers(tmp_path: Path) -> None:
    write_shard_manifest(tmp_path, 0, 2, [entry(("a",), 20), entry(("a", "b"), 18), entry(("c",), 0, "failed")])
    write_shard_manifest(
        tmp_path,
        1,
        2,
        [
            entry(("b",), 10, shard=1),
            entry(("b", "c"), 16, shard=1),
            entry(("d",), 0, "unavailable", shard=1),
        ],
    )
    s = merge(tmp_path)
    assert s.combos == 6
    assert (s.ok, s.failed, s.unavailable) == (4, 1, 1)
    assert s.rows == 20 + 18 + 10 + 16
    assert dict(s.per_k) == {1: 4, 2: 2}
    assert (s.min_rows, s.max_rows) == (10, 20)
    assert s.avg_rows == pytest.approx(64 / 4)
    assert s.failed_combos == ["combo_1_c"]
    lines = s.lines()
    assert lines[0] == "Total combos: 6 (4 ok, 1 failed, 1 unavailable)"
    assert lines[1] == "Total rows: 64"
    assert lines[2] == "Combos per k: k=1: 4, k=2: 2"
    assert lines[3] == "Rows per combo: min 10 / max 20 / avg 16.0"


def test_summary_with_no_ok_combo() -> None:
    s = summarize([replace(entry(("x",), 0, "failed"), combo_id="abc", combo_dir="")])
    assert (s.combos, s.ok, s.failed, s.rows, s.min_rows, s.max_rows, s.avg_rows) == (1, 0, 1, 0, 0, 0, 0.0)
    assert s.failed_combos == ["abc"]


def test_merge_counts_interrupted_combos_as_interrupted_not_failed(tmp_path: Path) -> None:
    write_shard_manifest(tmp_path, 0, 1, [entry(("a",), 20), entry(("b",), 0, "interrupted")])
    s = merge(tmp_path, keep_shards=True)
    assert (s.ok, s.failed, s.interrupted, s.unfinished) == (1, 0, 1, 1)
    assert s.failed_combos == [] and s.interrupted_combos == ["combo_1_b"]
    assert s.lines()[0] == "Total combos: 2 (1 ok, 0 failed, 0 unavailable, 1 interrupted)"
    proc = run_cli("merge", "--output-root", str(tmp_path), "--format", "json", cwd=tmp_path)
    doc = json.loads(proc.stdout)
    assert proc.returncode == 1 and (doc["failed"], doc["interrupted"]) == (0, 1), proc.stdout + proc.stderr


def test_merge_waits_for_no_run_it_would_break(tmp_path: Path) -> None:
    """A merge while a run holds the output root is refused: the run's own shard manifests stay for its own merge."""
    write_shard_manifest(tmp_path, 0, 1, [entry(("a",), 20)])
    before = (tmp_path / shard_manifest_name(0, 1)).read_bytes()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = {"pid": holder.pid, "host": socket.gethostname(), "started": time.time(), "argv": ["augshard", "run"]}
        (tmp_path / ".augshard.runner.lock").write_text(json.dumps(lock))
        proc = run_cli("merge", "--output-root", str(tmp_path), cwd=tmp_path)
        assert proc.returncode == 2 and f"in use by another augshard run (pid {holder.pid}" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
        assert (tmp_path / shard_manifest_name(0, 1)).read_bytes() == before
        assert not (tmp_path / "manifest_final.csv").exists()
    finally:
        holder.kill()
        holder.wait()
    proc = run_cli("merge", "--output-root", str(tmp_path), cwd=tmp_path)  # the lock of a dead run is stale
    assert proc.returncode == 0 and (tmp_path / "manifest_final.csv").is_file(), proc.stderr


def test_a_manifest_that_cannot_be_written_leaves_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk mid-write: the error names the file, the old manifest stays whole, no temporary stays behind."""
    import errno
    import os

    path = write_shard_manifest(tmp_path, 0, 1, [entry(("a",), 20)])
    before = path.read_bytes()
    real_fsync = os.fsync

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space left on device") as caught:
        write_shard_manifest(tmp_path, 0, 1, [entry(("a",), 20), entry(("b",), 5)])
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert caught.value.filename == str(path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_a_second_merge_gives_the_same_manifest_and_summary(two_shards: Path) -> None:
    first = merge(two_shards)
    manifest = (two_shards / "manifest_final.csv").read_bytes()
    assert not list(two_shards.glob("manifest_shard*"))  # the first merge removed them
    assert merge(two_shards) == first and (two_shards / "manifest_final.csv").read_bytes() == manifest


def test_merge_run_twice_from_the_cli_says_the_same_and_exits_the_same(two_shards: Path) -> None:
    procs = [run_cli("merge", "--output-root", str(two_shards), "--format", fmt, cwd=two_shards)
             for fmt in ("json", "json", "table")]  # fmt: skip
    assert [p.returncode for p in procs] == [1, 1, 1]  # one failed combo in the shard manifests
    assert json.loads(procs[0].stdout) == json.loads(procs[1].stdout)
    assert procs[0].stderr == "" and "note: no shard manifests left" in procs[1].stderr
    assert "note:" not in procs[2].stdout and "Total combos: 5 (4 ok, 1 failed, 0 unavailable)" in procs[2].stdout


@pytest.mark.parametrize(
    ("combo_dir", "dataset_path", "said"),
    [
        ("..", "../dataset.parquet", "combo_dir '..' is not a folder of the output root"),
        ("combo_1_a/../../x", "combo_1_a/dataset.parquet", "is not a folder of the output root"),
        ("combo_1_a", "/etc/passwd", "dataset_path '/etc/passwd' points outside the output root"),
        ("combo_1_a", "combo_1_a/../../../x.parquet", "points outside the output root"),
        ("combo_1_a", "C:\\data\\x.parquet", "points outside the output root"),
        ("combo_1_a", "..\\x.parquet", "points outside the output root"),
    ],
)
def test_a_row_outside_the_output_root_is_refused_by_the_reader_and_listed_for_verify(
    tmp_path: Path, combo_dir: str, dataset_path: str, said: str
) -> None:
    inside = entry(("a",), 5)
    row = replace(inside, combo_dir=combo_dir, dataset_path=dataset_path)
    assert outside_root(inside) is None and said in (outside_root(row) or "")
    path = write_shard_manifest(tmp_path, 0, 1, [inside, row])
    with pytest.raises(OutputError, match="line 3: combo .*no reader follows it"):
        read_manifest(path)
    assert read_manifest(path, contained=False) == [inside, row]  # what verify reads, to list it


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"combo_id,status,rows,k,plan_fingerprint\n\xff\xfe,ok,1,1,x\n", "not UTF-8 text at byte"),
        (b"combo_id,status,rows,k,plan_fingerprint,error\nx,ok,1,1,p," + b"e" * 200_000 + b"\n", "field larger than"),
        (b"", "missing column(s) combo_id"),
    ],
)
def test_a_manifest_that_is_not_one_is_one_output_error(tmp_path: Path, content: bytes, said: str) -> None:
    path = tmp_path / "manifest_final.csv"
    path.write_bytes(content)
    # csv's field limit is process-wide and reading an input raises it (data.py): the csv module's own default here,
    # so the oversized field is refused by csv whatever ran before in this process.
    limit = csv.field_size_limit(131_072)
    try:
        with pytest.raises(OutputError, match=re.escape(said)):
            read_manifest(path)
    finally:
        csv.field_size_limit(limit)
    path.unlink()
    path.mkdir()
    with pytest.raises(OutputError, match="cannot be read"):
        read_manifest(path)
