"""`augshard verify`: a real run's outputs pass; each kind of damage is named."""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import run_cli, sample_rows, write_csv

from augshard.core.errors import OutputError
from augshard.storage.verify import verify

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The output root of a real run: 3 single-method combos over 12 rows."""
    cwd = tmp_path_factory.mktemp("verify")
    write_csv(cwd / "in.csv", sample_rows(12))
    proc = run_cli("run", "--input", "in.csv", "--text-col", "text", "--evidence-col", "evidence", "--id-col", "id",
                   "--methods", "nlp_keyboard,nlp_randword_delete,nlp_randchar_swap", "--combo-mode", "single",
                   "--quality-metric", "char_ratio", "--num-shards", "1", cwd=cwd)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return cwd / "data/processed/augsets"


@pytest.fixture
def root(pristine: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "augsets"
    shutil.copytree(pristine, copy)
    return copy


def manifest(root: Path) -> list[dict[str, str]]:
    with open(root / "manifest_final.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def rewrite_manifest(root: Path, rows: list[dict[str, str]]) -> None:
    with open(root / "manifest_final.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_a_real_run_verifies_clean(root: Path) -> None:
    result = verify(root)
    assert result.problems == []
    assert result.combos == 3 and result.datasets == 3
    assert result.rows == sum(int(m["rows"]) for m in manifest(root)) > 0
    proc = run_cli("verify", "--output-root", str(root), cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK: the manifest and the datasets agree" in proc.stdout


def test_a_truncated_parquet_is_caught(root: Path) -> None:
    path = root / "combo_1_nlp_keyboard/dataset.parquet"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    proc = run_cli("verify", "--output-root", str(root), cwd=root)
    assert proc.returncode == 1
    assert "✗ combo_1_nlp_keyboard: dataset does not open" in proc.stdout
    assert "1 problem(s)" in proc.stdout and "2 datasets" in proc.stdout


def test_a_missing_dataset_is_caught(root: Path) -> None:
    shutil.rmtree(root / "combo_1_nlp_randchar_swap")
    proc = run_cli("verify", "--output-root", str(root), cwd=root)
    assert proc.returncode == 1
    assert "✗ combo_1_nlp_randchar_swap: dataset missing" in proc.stdout


def test_a_row_count_mismatch_is_caught(root: Path) -> None:
    rows = manifest(root)
    target = next(r for r in rows if r["methods"] == "nlp_randword_delete")
    real = int(target["rows"])
    target["rows"] = str(real + 1)
    rewrite_manifest(root, rows)
    problems = verify(root).problems
    assert f"combo_1_nlp_randword_delete: dataset has {real:,} rows, the manifest says {real + 1:,}" in problems
    assert f"combo_1_nlp_randword_delete: meta.json rows is {real}, the manifest says {real + 1}" in problems


def test_meta_json_that_disagrees_is_caught(root: Path) -> None:
    meta_path = root / "combo_1_nlp_keyboard/meta.json"
    meta = json.loads(meta_path.read_text())
    meta["combo_id"] = "0123456789"
    meta["source"]["text_col"] = "body"
    meta_path.write_text(json.dumps(meta))
    problems = verify(root).problems
    assert any("meta.json combo_id is '0123456789'" in p for p in problems)
    assert any("lacks column(s) body" in p for p in problems)
    (root / "combo_1_nlp_randchar_swap/meta.json").unlink()
    assert any("combo_1_nlp_randchar_swap: meta.json missing" in p for p in verify(root).problems)


def test_orphans_and_temporary_leftovers_are_caught(root: Path) -> None:
    (root / "combo_1_nlp_wordnet_syn").mkdir()
    (root / ".augshard-tmp/123~abcd~host~combo_1_x").mkdir(parents=True)
    (root / "notes.tmp").write_text("")  # no writer augshard knows of: not its own to call harmless
    (root / "combo_1_nlp_keyboard/dataset.parquet.partial").write_text("")
    problems = verify(root).problems
    assert len(problems) == 4
    assert any("orphan combo folder" in p and "combo_1_nlp_wordnet_syn" in p for p in problems)
    assert any("temporary folder left behind" in p for p in problems)
    assert any("temporary file left behind" in p for p in problems)
    assert any("unexpected file(s) dataset.parquet.partial" in p for p in problems)


def test_a_temporary_a_dead_writer_left_is_stale_not_damage(root: Path) -> None:
    """A full disk or a kill leaves a writer's temporary behind: `verify` says so, and still passes."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    temps = [root / f".manifest_final.csv~{dead.pid}~{host}.tmp", root / f".manifest_final.csv.{dead.pid}.tmp"]
    folder = root / ".augshard-tmp" / f"{dead.pid}~abcd~{host}~combo_1_x"
    folder.mkdir(parents=True)
    for temp in temps:
        temp.write_text("half a manifest")
    result = verify(root)
    assert result.problems == [] and sorted(result.stale) == sorted(map(str, [*temps, folder]))
    proc = run_cli("verify", "--output-root", str(root), cwd=root)
    assert proc.returncode == 0 and proc.stdout.count("stale temporary") == 3, proc.stdout
    # A temporary of a live writer is a write in progress, not stale: still a problem for a finished run.
    live = root / f".manifest_final.csv~{os.getpid()}~{host}.tmp"
    live.write_text("")
    assert [p for p in verify(root).problems if str(live) in p]


def test_a_missing_manifest_and_a_missing_root(root: Path, tmp_path: Path) -> None:
    (root / "manifest_final.csv").unlink()
    result = verify(root)
    assert len(result.problems) == 4  # no manifest, so every combo folder is an orphan
    assert result.problems[0].startswith("manifest missing")
    with pytest.raises(OutputError, match="output root not found"):
        verify(tmp_path / "nowhere")
    proc = run_cli("verify", "--output-root", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert proc.returncode == 2 and "output root not found" in proc.stderr


def test_vectors_left_unchecked_by_an_older_meta_json_are_a_note_not_a_problem(tmp_path: Path) -> None:
    """A meta.json written before the vectors' sha256 (`vectors_unchecked`): said, and the run still verifies."""
    from augshard.storage.verify import Verification

    report = Verification(tmp_path / "manifest_final.csv", unchecked=["combo_1_nlp_keyboard"])
    lines = report.lines()
    assert any(line.startswith("combo_1_nlp_keyboard: vectors.parquet has no sha256 in meta.json") for line in lines)
    assert lines[-1] == "OK: the manifest and the datasets agree"
    doc = report.as_json()
    assert doc["ok"] is True and doc["vectors_unchecked"] == ["combo_1_nlp_keyboard"]
