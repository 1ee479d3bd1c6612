"""End to end: `augshard run` on real files, as a user runs it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import run_cli, sample_rows, tree, write_csv

pytestmark = pytest.mark.slow

METHODS = "nlp_keyboard,nlp_randchar_swap,nlp_randword_delete"
COLUMNS = [
    "combo_id",
    "combo_dir",
    "methods",
    "k",
    "rows",
    "rows_skipped",
    "rows_rejected",
    "status",
    "dataset_path",
    "duration_s",
    "shard",
]


def base_args(csv_path: Path, *extra: str) -> list[str]:
    return [
        "run",
        "--input",
        str(csv_path),
        "--text-col",
        "text",
        "--evidence-col",
        "evidence",
        "--id-col",
        "id",
        "--methods",
        METHODS,
        "--quality-metric",
        "char_ratio",
        *extra,
    ]


def read_manifest(root: Path) -> list[dict[str, str]]:
    with open(root / "manifest_final.csv", encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def datasets(root: Path) -> dict[str, bytes]:
    return {p.parent.name: p.read_bytes() for p in sorted(root.glob("combo_*/dataset.parquet"))}


@pytest.fixture(scope="module")
def two_shard_run(tmp_path_factory: pytest.TempPathFactory):
    """One 2-shard run of 3 methods (k <= 2) over 20 sample rows, shared by the assertions below."""
    cwd = tmp_path_factory.mktemp("run2")
    rows = sample_rows(20)
    rows[3]["evidence"] = "A sentence that is nowhere in the text of this row at all, really."
    write_csv(cwd / "in.csv", rows)
    proc = run_cli(*base_args(cwd / "in.csv", "--num-shards", "2", "--keep-shards"), cwd=cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return cwd, rows, proc


def test_two_shards_make_six_combos_and_a_manifest(two_shard_run) -> None:
    cwd, rows, proc = two_shard_run
    assert proc.returncode == 0, proc.stderr + proc.stdout
    root = cwd / "data/processed/augsets"
    manifest = read_manifest(root)
    assert list(manifest[0])[: len(COLUMNS)] == COLUMNS
    assert len(manifest) == 6
    assert sorted(int(m["k"]) for m in manifest) == [1, 1, 1, 2, 2, 2]
    assert {m["status"] for m in manifest} == {"ok"}
    assert {m["shard"] for m in manifest} == {"0", "1"}
    assert (root / "manifest_shard0_of_2.csv").is_file() and (root / "manifest_shard1_of_2.csv").is_file()
    assert "combo_2_nlp_keyboard+nlp_randchar_swap" in {m["combo_dir"] for m in manifest}
    for m in manifest:
        table = pq.read_table(root / m["dataset_path"])
        assert table.num_rows == int(m["rows"]) > 0
        assert int(m["rows_skipped"]) == 1  # the row whose evidence is not in its text
        meta = json.loads((root / m["combo_dir"] / "meta.json").read_text())
        assert meta["rows"] == int(m["rows"]) and meta["combo_id"] == m["combo_id"]
        assert meta["seed"] == 42 and meta["quality"]["metric"] == "char_ratio"
        assert len(meta["source"]["sha256"]) == 64
    assert (cwd / "logs/augment/shard_0_of_2.log").is_file()
    assert (cwd / "data/cache/augment_shard1.db").is_file()
    assert not list(root.glob(".augshard-tmp/*"))
    assert "Total combos: 6" in proc.stdout


def test_rows_respect_bounds_and_only_the_evidence_changes(two_shard_run) -> None:
    cwd, rows, _ = two_shard_run
    by_id = {r["id"]: r for r in rows}
    root = cwd / "data/processed/augsets"
    for path in root.glob("combo_*/dataset.parquet"):
        records = pq.read_table(path).to_pylist()
        per_row: dict[str, list[str]] = {}
        for rec in records:
            assert 0.40 <= rec["similarity"] <= 0.98  # char_ratio's default range
            original = by_id[rec["id"]]
            assert rec["evidence_original"] == original["evidence"]
            assert rec["evidence"] != original["evidence"]
            start = original["text"].index(original["evidence"])
            end = start + len(original["evidence"])
            assert rec["text"] == original["text"][:start] + rec["evidence"] + original["text"][end:]
            assert rec["label"] == original["label"] and rec["row_key"] == rec["id"]
            per_row.setdefault(rec["id"], []).append(rec["evidence"])
        assert rows[3]["id"] not in per_row
        for variants in per_row.values():
            assert 1 <= len(variants) <= 2 and len(set(variants)) == len(variants)


def test_rerun_skips_complete_combos_and_recomputes_changed_ones(two_shard_run) -> None:
    cwd, _, _ = two_shard_run
    root = cwd / "data/processed/augsets"
    before = {p: p.stat().st_mtime_ns for p in root.glob("combo_*/dataset.parquet")}
    again = run_cli(*base_args(cwd / "in.csv", "--num-shards", "2"), cwd=cwd)
    assert again.returncode == 0, again.stderr
    assert ": 0 to run, 6 complete;" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert {m["resumed"] for m in read_manifest(root)} == {"True"}
    # A changed setting makes every combo stale: recomputed, never silently reused.
    changed = run_cli(*base_args(cwd / "in.csv", "--num-shards", "2", "--seed", "7"), cwd=cwd)
    assert changed.returncode == 0, changed.stderr
    assert ": 6 to run, 0 complete;" in changed.stdout
    assert all(p.stat().st_mtime_ns != t for p, t in before.items())
    assert {json.loads(p.read_text())["seed"] for p in root.glob("combo_*/meta.json")} == {7}


def test_same_datasets_whatever_the_number_of_shards(tmp_path: Path) -> None:
    """Byte-identical Parquet files from 1 and 3 shards, with the real embedding filter."""
    write_csv(tmp_path / "in.csv", sample_rows(16))
    outputs = {}
    for n in (1, 3):
        cwd = tmp_path / f"n{n}"
        cwd.mkdir()
        args = base_args(
            tmp_path / "in.csv",
            "--num-shards",
            str(n),
            "--quality-metric",
            "embedding",
            "--methods",
            "nlp_randword_delete,nlp_wordnet_syn",
        )
        proc = run_cli(*args, cwd=cwd)
        assert proc.returncode == 0, proc.stderr + proc.stdout
        outputs[n] = datasets(cwd / "data/processed/augsets")
    assert len(outputs[1]) == 3
    assert outputs[1] == outputs[3]


def test_dry_run_prints_the_plan_and_writes_nothing(small_csv: Path) -> None:
    cwd = small_csv.parent
    before = tree(cwd)
    proc = run_cli(*base_args(small_csv, "--num-shards", "2", "--dry-run"), cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    assert tree(cwd) == before
    assert "combo_2_nlp_keyboard+nlp_randword_delete" in proc.stdout
    assert "6 combos planned on 2 shards (--num-shards): 6 to run" in proc.stdout
    assert "nothing was written" in proc.stdout


def test_shard_jobs_then_merge(small_csv: Path) -> None:
    cwd = small_csv.parent
    for i in (0, 1):
        proc = run_cli(*base_args(small_csv, "--num-shards", "2", "--shard-index", str(i)), cwd=cwd)
        assert proc.returncode == 0, proc.stderr
        assert "augment_shard" not in proc.stderr
    root = cwd / "data/processed/augsets"
    assert not (root / "manifest_final.csv").exists()
    merged = run_cli("merge", "--output-root", str(root), cwd=cwd)
    assert merged.returncode == 0, merged.stderr
    assert "Total combos: 6 (6 ok, 0 failed, 0 unavailable)" in merged.stdout
    assert len(read_manifest(root)) == 6
    assert not list(root.glob("manifest_shard*"))


def test_merge_refuses_manifests_of_different_plans(small_csv: Path) -> None:
    cwd = small_csv.parent
    root = cwd / "data/processed/augsets"
    assert run_cli(*base_args(small_csv, "--num-shards", "2", "--shard-index", "0"), cwd=cwd).returncode == 0
    other = base_args(small_csv, "--num-shards", "2", "--shard-index", "1", "--seed", "1")
    assert run_cli(*other, cwd=cwd).returncode == 0
    merged = run_cli("merge", "--output-root", str(root), cwd=cwd)
    assert merged.returncode == 2
    assert "different plan" in merged.stderr and "manifest_shard" in merged.stderr
    assert not (root / "manifest_final.csv").exists()


def test_whole_text_is_augmented_without_an_evidence_column(tmp_path: Path) -> None:
    rows = [{"text": r["evidence"], "label": r["label"]} for r in sample_rows(12)]
    write_csv(tmp_path / "plain.csv", rows)
    proc = run_cli(
        "run",
        "--input",
        "plain.csv",
        "--methods",
        "nlp_keyboard",
        "--num-shards",
        "1",
        "--quality-metric",
        "char_ratio",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    records = pq.read_table(tmp_path / "data/processed/augsets/combo_1_nlp_keyboard/dataset.parquet").to_pylist()
    originals = {r["text"] for r in rows}
    assert records and all(r["text_original"] in originals and r["text"] != r["text_original"] for r in records)
    assert "evidence_original" not in records[0]


def test_methods_lists_the_catalogue() -> None:
    proc = run_cli("methods", cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr
    for method in ("nlp_keyboard", "nlp_wordnet_syn", "ta_wordswap_qwerty", "nlp_randchar_ins"):
        line = next(ln for ln in proc.stdout.splitlines() if ln.split()[:1] == [method])
        assert line.split()[3] == "ok"


SHORT_EVIDENCE_CATALOGUE = """
methods:
  - {id: nlp_keyboard, lib: nlpaug, kind: KeyboardAug, args: {aug_char_min: 1, aug_char_p: 0.3}}
  # Cropping at least 3 words works on the probe sentence but raises on every 2-word evidence below.
  - {id: nlp_crop, lib: nlpaug, kind: RandomWordAug, args: {action: crop, aug_min: 3}}
  - {id: ta_teleport, lib: textattack, kind: WordSwapTeleport}
"""


def test_a_failing_combo_is_reported_and_the_others_are_written(tmp_path: Path) -> None:
    (tmp_path / "methods.yaml").write_text(SHORT_EVIDENCE_CATALOGUE, encoding="utf-8")
    evidences = ["Loved it", "Truly great", "Very nice", "Works well", "Fast delivery", "Good value"]
    rows = [{"id": f"r{i}", "text": f"Delivery took a week. {e}. Would buy again.", "evidence": e}
            for i, e in enumerate(evidences)]  # fmt: skip
    write_csv(tmp_path / "short.csv", rows)
    proc = run_cli("run", "--input", "short.csv", "--text-col", "text", "--evidence-col", "evidence", "--id-col",
                   "id", "--methods-config", "methods.yaml", "--methods", "all",
                   "--quality-metric", "none", "--num-shards", "2", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "warning: method ta_teleport is unavailable" in proc.stderr
    root = tmp_path / "data/processed/augsets"
    manifest = {m["methods"]: m for m in read_manifest(root)}
    assert manifest["nlp_keyboard"]["status"] == "ok" and int(manifest["nlp_keyboard"]["rows"]) > 0
    assert manifest["nlp_crop"]["status"] == "failed"
    assert manifest["nlp_crop+nlp_keyboard"]["status"] == "failed"
    assert "ValueError" in manifest["nlp_crop"]["error"]
    assert {manifest[m]["status"] for m in manifest if "ta_teleport" in m} == {"unavailable"}
    assert len(manifest) == 6
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["combo_1_nlp_keyboard"]
    assert "failed combo_1_nlp_crop" in proc.stdout and "logs/augment/shard_" in proc.stdout
    logs = "".join(p.read_text() for p in (tmp_path / "logs/augment").glob("*.log"))
    assert "combo combo_1_nlp_crop FAILED" in logs and "Traceback" in logs
