"""`run --keep-vectors`: vectors.parquet beside each dataset, row for row, the filter's own vectors, atomic."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import run_cli, run_events, sample_rows, write_csv

from augshard.core.config import RunConfig
from augshard.storage.meta import ComboMeta, read_meta
from augshard.storage.store import VECTORS, read_vectors

COMBO = "combo_1_nlp_keyboard"
ARGS = ("--text-col", "text", "--evidence-col", "evidence", "--id-col", "id", "--methods", "nlp_keyboard",
        "--quality-metric", "embedding", "--num-shards", "1", "--no-live")  # fmt: skip


def _run(cwd: Path, csv: Path, *extra: str) -> Path:
    proc = run_cli("run", "--input", str(csv), *ARGS, *extra, cwd=cwd)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return cwd / "data/processed/augsets" / COMBO


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Three runs on 20 sample rows: `plain` (no flag), `kept` (the flag, a fresh cache: vectors from the filter),
    and `rerun` (the flag in `plain`'s folder: every score from the cache, so every vector encoded afterwards)."""
    base = tmp_path_factory.mktemp("keep")
    csv = write_csv(base / "in.csv", sample_rows(20))
    out: dict[str, object] = {}
    for name in ("plain", "kept"):
        (base / name).mkdir()
        folder = _run(base / name, csv, *(["--keep-vectors"] if name == "kept" else []))
        out[name] = folder
        out[name + "_bytes"] = (folder / "dataset.parquet").read_bytes()
        # What read_vectors finds in the folder as this run left it (`rerun` adds vectors to `plain`'s later).
        out[name + "_files"] = sorted(p.name for p in folder.iterdir())
        out[name + "_vectors"] = read_vectors(folder)
    (out["kept_done"],) = run_events(base / "kept", "shard_done")
    out["rerun"] = _run(base / "plain", csv, "--keep-vectors")
    out["rerun_log"] = (base / "plain/logs/augment/shard_0_of_1.log").read_text(encoding="utf-8")
    out["rerun_bytes"] = (base / "plain" / "data/processed/augsets" / COMBO / "dataset.parquet").read_bytes()
    return out


def _keys(folder: Path) -> list[tuple[str, int]]:
    table = pq.read_table(folder / "dataset.parquet", columns=["row_key", "variant"])
    return list(zip(table.column("row_key").to_pylist(), table.column("variant").to_pylist(), strict=True))


@pytest.mark.parametrize("name", ["kept", "rerun"])
def test_one_vector_per_dataset_row_in_the_same_order(runs: dict, name: str) -> None:
    folder = runs[name]
    schema = pq.read_schema(folder / VECTORS)
    assert [str(t) for t in schema.types] == ["string", "int32", "fixed_size_list<element: float>[384]"]
    keys, vectors = read_vectors(folder)
    assert keys == _keys(folder) and len(keys) > 0
    assert vectors.shape == (len(keys), 384) and vectors.dtype == np.float32


@pytest.mark.parametrize("name", ["kept", "rerun"])
def test_vectors_are_the_encoders_vectors_of_the_evidence(runs: dict, name: str) -> None:
    from augshard.shard.encoders import Encoder

    folder = runs[name]
    meta = read_meta(folder / "meta.json")
    encoder = Encoder(meta.quality.model if meta.quality.model != "all-MiniLM-L6-v2" else None, 64,
                      meta.quality.backend, "cpu")  # fmt: skip
    assert encoder.identity == meta.vectors.encoder
    evidences = pq.read_table(folder / "dataset.parquet").column("evidence").to_pylist()
    fresh = encoder.encode(evidences)
    _, kept = read_vectors(folder)
    cosines = (kept * fresh).sum(axis=1) / np.linalg.norm(kept, axis=1) / np.linalg.norm(fresh, axis=1)
    assert cosines.min() >= 0.9999


def test_a_rerun_from_the_cache_still_writes_every_vector(runs: dict) -> None:
    """The plain run's combo lacks vectors, so the flag recomputes it; its scores come from the cache, which keeps
    no vectors: every one is encoded afterwards, none is missing."""
    log = runs["rerun_log"]
    assert "score_misses 0," in log and "candidates_encoded 0," in log
    rows = read_meta(runs["rerun"] / "meta.json").rows
    assert f"candidates_reencoded {rows}," in log
    assert read_vectors(runs["rerun"])[1].shape == (rows, 384)


def test_dataset_bytes_are_the_same_with_and_without_the_flag(runs: dict) -> None:
    assert runs["plain_bytes"] == runs["kept_bytes"] == runs["rerun_bytes"]


def test_meta_records_the_vectors(runs: dict) -> None:
    meta = read_meta(runs["kept"] / "meta.json")
    assert meta.vectors is not None
    assert (meta.vectors.file, meta.vectors.dim, meta.vectors.rows, meta.vectors.field) == (VECTORS, 384, meta.rows,
                                                                                            "evidence")  # fmt: skip
    assert meta.vectors.encoder.startswith("embedding|")


def test_verify_accepts_the_vectors_and_checks_their_rows(runs: dict, tmp_path: Path) -> None:
    root = runs["kept"].parent
    proc = run_cli("verify", "--output-root", str(root), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK" in proc.stdout


def test_without_the_flag_no_vectors_and_an_old_meta_json_reads(runs: dict) -> None:
    assert runs["plain_files"] == ["dataset.parquet", "meta.json"]  # a real combo folder, made without the flag
    assert runs["plain_vectors"] is None
    assert runs["kept_vectors"] is not None and len(runs["kept_vectors"][0]) > 0  # the same read, where vectors are
    data = json.loads((runs["kept"] / "meta.json").read_text(encoding="utf-8"))
    del data["vectors"]
    assert ComboMeta.from_dict(data).vectors is None
    assert "vectors" not in ComboMeta.from_dict(data).to_dict()


def test_fingerprints_without_the_flag_are_unchanged() -> None:
    """The values computed by the code before keep_vectors existed (2aabf36)."""
    assert RunConfig(input="x").fingerprint() == "049378f7731c6692"
    # char_ratio's default range became [0.40, 0.98]: the range of that day, given, keeps its fingerprint.
    given = {"quality_min_sim": 0.55, "quality_max_sim": 0.95}
    assert RunConfig(input="x", quality_metric="char_ratio", **given).fingerprint() == "c88a100f8f1e647f"
    assert RunConfig(input="x", keep_vectors=True).fingerprint() != "049378f7731c6692"


def test_keep_vectors_needs_the_embedding_metric(small_csv: Path) -> None:
    proc = run_cli("run", "--input", str(small_csv), *ARGS, "--quality-metric", "char_ratio", "--keep-vectors",
                   cwd=small_csv.parent)  # fmt: skip
    assert proc.returncode == 2
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "--keep-vectors" in lines[0] and "embedding" in lines[0], lines
    assert not (small_csv.parent / "data").exists()


def test_a_shard_reports_where_its_time_went(runs: dict) -> None:
    """The time split `bench/run.py` reports (N): building, the originals' encodes, the methods' calls, the
    candidates' encodes and writing, each measured inside the shard, none larger than the shard's time (a method is
    built inside its first call: that time is building, not the calls')."""
    done = runs["kept_done"]
    f = done.filter
    assert f["originals_encoded"] == 20 and 0 < f["originals_encode_s"] < f["encode_s"]
    assert done.calls_computed > 0 and done.calls_s > 0 and done.write_s > 0 and done.build_s > 0
    assert done.build_s + f["encode_s"] + done.calls_s + done.write_s < done.duration


# --- vectors with integrity: meta.json records them, verify checks them, evaluate uses only whole ones ----------

OTHER = "combo_1_nlp_randchar_swap"


def test_meta_records_the_vectors_digest_and_dtype(runs: dict) -> None:
    from augshard.storage.data import file_sha256

    meta = read_meta(runs["kept"] / "meta.json")
    assert meta.vectors.dtype == "float32" and meta.vectors.sha256 == file_sha256(runs["kept"] / VECTORS)


@pytest.fixture(scope="module")
def two_combos(runs: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`kept`'s input run with two combos (nlp_keyboard, nlp_randchar_swap), both with vectors: its cwd."""
    cwd = tmp_path_factory.mktemp("two")
    csv = read_meta(runs["kept"] / "meta.json").source.path
    proc = run_cli("run", "--input", csv, *ARGS[:7], "nlp_keyboard,nlp_randchar_swap", *ARGS[8:], "--combo-mode",
                   "single", "--keep-vectors", cwd=cwd)  # fmt: skip
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return cwd


def _damage(cwd: Path, how: str, dest: Path) -> Path:
    """A copy of `two_combos`' cwd whose nlp_keyboard vectors were damaged `how`; the copy's output root."""
    import shutil

    import pyarrow as pa

    from augshard.storage.vectors import vectors_schema

    shutil.copytree(cwd, dest)
    root = dest / "data/processed/augsets"
    path = root / COMBO / VECTORS
    if how == "other-combo":
        shutil.copyfile(root / OTHER / VECTORS, path)
        return root
    keys, vectors = read_vectors(root / COMBO)
    if how == "zeroed":
        vectors = np.zeros_like(vectors)
    elif how == "shuffled":  # the vectors of other rows, the keys in place
        vectors = np.roll(vectors, 1, axis=0)
    elif how == "nan":
        vectors[0, 3] = np.nan
    elif how == "inf":
        vectors[-1, 0] = np.inf
    elif how == "wrong-dim":
        vectors = vectors[:, :383]
    table = pa.table(
        {
            "row_key": [k for k, _ in keys],
            "variant": pa.array([v for _, v in keys], pa.int32()),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1]),
        },
        schema=vectors_schema(vectors.shape[1]),
    )
    pq.write_table(table, path)
    return root


DAMAGE = {  # what verify says of each (besides the digest)
    "zeroed": "not of unit length",
    "shuffled": "sha256",
    "other-combo": "row",
    "nan": "NaN or inf",
    "inf": "NaN or inf",
    "wrong-dim": "dimension 383",
}


@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_verify_catches_damaged_vectors_one_line_per_problem(two_combos: Path, tmp_path: Path, how: str) -> None:
    root = _damage(two_combos, how, tmp_path / "copy")
    proc = run_cli("verify", "--output-root", str(root), cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    problems = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("✗")]
    assert problems and all(f"{COMBO}: {VECTORS}" in line for line in problems), problems
    assert any("sha256" in line for line in problems) and any(DAMAGE[how] in line for line in problems), problems
    assert not any(OTHER in line for line in problems)
    report = json.loads(run_cli("verify", "--output-root", str(root), "--format", "json", cwd=tmp_path).stdout)
    assert len(report["problems"]) == len(problems) and report["ok"] is False


def test_verify_says_what_an_older_meta_json_leaves_unchecked(two_combos: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(two_combos / "data/processed/augsets", root)
    assert run_cli("verify", "--output-root", str(root), cwd=tmp_path).returncode == 0
    meta_path = root / COMBO / "meta.json"
    data = json.loads(meta_path.read_text(encoding="utf-8"))
    del data["vectors"]["sha256"], data["vectors"]["dtype"]  # as written before they were recorded
    meta_path.write_text(json.dumps(data), encoding="utf-8")
    proc = run_cli("verify", "--output-root", str(root), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{COMBO}: {VECTORS} has no sha256 in meta.json" in proc.stderr + proc.stdout
    # Without the digest, rows, dimension, keys and values are still checked: zeroed vectors are caught.
    keys, vectors = read_vectors(root / COMBO)
    _zero_in_place(root / COMBO / VECTORS, keys, vectors)
    proc = run_cli("verify", "--output-root", str(root), cwd=tmp_path)
    assert proc.returncode == 1 and "not of unit length" in proc.stdout + proc.stderr


def _zero_in_place(path: Path, keys: list, vectors: np.ndarray) -> None:
    import pyarrow as pa

    from augshard.storage.vectors import vectors_schema

    flat = pa.array(np.zeros_like(vectors).reshape(-1))
    table = pa.table({"row_key": [k for k, _ in keys], "variant": pa.array([v for _, v in keys], pa.int32()),
                      "vector": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])},
                     schema=vectors_schema(vectors.shape[1]))  # fmt: skip
    pq.write_table(table, path)


def _evaluate(cwd: Path, root: Path) -> subprocess.CompletedProcess:
    return run_cli("evaluate", "--output-root", str(root), "--label-col", "label", "--folds", "2", "--features",
                   "embedding", "--field", "evidence", "--format", "json", cwd=cwd)  # fmt: skip


@pytest.fixture(scope="module")
def whole_evaluation(two_combos: Path, tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess:
    """`evaluate --features embedding` of an undamaged copy of `two_combos`' run."""
    import shutil

    cwd = tmp_path_factory.mktemp("whole")
    shutil.copytree(two_combos / "data/processed/augsets", cwd / "root")
    good = _evaluate(cwd, cwd / "root")
    assert good.returncode == 0 and "warning" not in good.stderr, good.stderr
    return good


@pytest.mark.parametrize("how", ["zeroed", "other-combo", "nan", "wrong-dim"])
def test_evaluate_encodes_damaged_vectors_again_with_one_warning(
    two_combos: Path, whole_evaluation: subprocess.CompletedProcess, tmp_path: Path, how: str
) -> None:
    good = whole_evaluation
    root = _damage(two_combos, how, tmp_path / "copy")
    proc = _evaluate(tmp_path, root)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and f"combo {COMBO}: its {VECTORS} is not used" in warnings[0], proc.stderr
    assert "its variants are encoded again" in warnings[0]
    doc, reference = json.loads(proc.stdout), json.loads(good.stdout)
    rows = pq.ParquetFile(root / OTHER / VECTORS).metadata.num_rows  # the other combo's stay in use
    assert doc["run_info"]["vectors"]["stored"] == rows
    assert doc["run_info"]["vectors"]["stored"] + doc["run_info"]["vectors"]["encoded"] + \
        doc["run_info"]["vectors"]["from_cache"] == reference["run_info"]["vectors"]["stored"]  # fmt: skip
    # The gains are those of the whole vectors: nothing of the damaged file reached the classifier.
    assert doc["results"] == reference["results"]


def test_vectors_problems_of_a_file_written_by_the_writer(tmp_path: Path) -> None:
    """The check on its own: a whole file passes; a truncated, float64, missing or unannounced one is named."""
    import pyarrow as pa

    from augshard.storage.vectors import VectorsMeta, VectorsWriter, vectors_problems

    keys = [("a", 0), ("a", 1), ("b", 0)]
    vectors = np.eye(3, 4, dtype=np.float32)
    writer = VectorsWriter(tmp_path)
    writer.write(keys, vectors)
    meta = writer.close(VectorsMeta(VECTORS, 4, 3, "embedding|test", "evidence"), rows=3)
    assert vectors_problems(tmp_path, meta, keys) == []
    assert vectors_problems(tmp_path, None, keys) == [f"{VECTORS} that meta.json does not mention"]
    whole = (tmp_path / VECTORS).read_bytes()
    (tmp_path / VECTORS).write_bytes(whole[: len(whole) // 2])
    assert any("does not open" in p for p in vectors_problems(tmp_path, meta, keys))
    wide = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1).astype(np.float64)), 4)
    pq.write_table(pa.table({"row_key": ["a", "a", "b"], "variant": pa.array([0, 1, 0], pa.int32()), "vector": wide}),
                   tmp_path / VECTORS)  # fmt: skip
    problems = vectors_problems(tmp_path, meta, keys)
    assert any("holds float64 vectors of dimension 4, meta.json says float32" in p for p in problems), problems
    (tmp_path / VECTORS).unlink()
    assert vectors_problems(tmp_path, meta, keys) == [f"{VECTORS} missing ({tmp_path / VECTORS}), meta.json says it "
                                                      "was kept"]  # fmt: skip
