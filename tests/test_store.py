"""Tests for augshard.store: atomic combo folders, completeness checks, stale temp cleanup."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import make_meta

from augshard.combos import Combo
from augshard.store import (
    DATASET,
    META,
    TMP_DIR,
    VECTORS,
    ComboMeta,
    ComboWriter,
    VectorsMeta,
    clean_stale_temp,
    parse_temp_name,
    read_complete,
    read_meta,
    read_vectors,
    temp_name,
)

COMBO = Combo(("nlp_keyboard", "nlp_ocr"))
SCHEMA = pa.schema([pa.field("text", pa.string()), pa.field("variant", pa.int32())])
FP = "feedfacecafebeef"


def _meta(fingerprint: str = FP, combo: Combo = COMBO) -> ComboMeta:
    return make_meta(combo, fingerprint, rows=3)


def _records(n: int, tag: str = "v") -> list[dict]:
    return [{"text": f"{tag}{i}", "variant": i % 2} for i in range(n)]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_writer_streams_into_hidden_temp_until_commit(tmp_path: Path) -> None:
    writer = ComboWriter(tmp_path, COMBO, SCHEMA)
    writer.write(_records(2))
    writer.write([])
    writer.write(_records(1, "w"))
    final = tmp_path / COMBO.dir_name
    assert not final.exists()
    assert [p.name for p in tmp_path.iterdir()] == [TMP_DIR]
    assert writer.tmp.parent == tmp_path / TMP_DIR
    assert parse_temp_name(writer.tmp.name) == (socket.gethostname(), os.getpid())
    assert writer.tmp.name.endswith(COMBO.dir_name)
    assert (writer.tmp / DATASET).exists()
    assert writer.rows == 3

    out = writer.commit(_meta())
    assert out == final
    assert sorted(p.name for p in final.iterdir()) == [DATASET, META]
    table = pq.read_table(final / DATASET)
    assert table.schema.equals(SCHEMA)
    assert table.to_pylist() == _records(2) + _records(1, "w")
    assert pq.ParquetFile(final / DATASET).num_row_groups == 2  # one row group per non-empty chunk
    assert json.loads((final / META).read_text(encoding="utf-8")) == _meta().to_dict()
    assert list((tmp_path / TMP_DIR).iterdir()) == []


def test_abort_leaves_nothing(tmp_path: Path) -> None:
    writer = ComboWriter(tmp_path, COMBO, SCHEMA)
    writer.write(_records(4))
    writer.abort()
    assert not (tmp_path / COMBO.dir_name).exists()
    assert not writer.tmp.exists()
    assert list((tmp_path / TMP_DIR).iterdir()) == []


def test_abort_twice_is_harmless(tmp_path: Path) -> None:
    writer = ComboWriter(tmp_path, COMBO, SCHEMA)
    writer.abort()
    writer.abort()
    assert list((tmp_path / TMP_DIR).iterdir()) == []


def test_commit_replaces_existing_final_folder(tmp_path: Path) -> None:
    final = tmp_path / COMBO.dir_name
    final.mkdir()
    (final / "stale.txt").write_text("old run", encoding="utf-8")
    (final / META).write_text(json.dumps(_meta("old").to_dict()), encoding="utf-8")
    writer = ComboWriter(tmp_path, COMBO, SCHEMA)
    writer.write(_records(2, "new"))
    writer.commit(_meta())
    assert sorted(p.name for p in final.iterdir()) == [DATASET, META]
    assert pq.read_table(final / DATASET).column("text").to_pylist() == ["new0", "new1"]
    assert json.loads((final / META).read_text(encoding="utf-8"))["combo_fingerprint"] == FP
    assert list((tmp_path / TMP_DIR).iterdir()) == []  # neither the temp nor the old folder is left


def test_commit_with_no_rows_writes_an_empty_dataset(tmp_path: Path) -> None:
    writer = ComboWriter(tmp_path, COMBO, SCHEMA)
    final = writer.commit(_meta())
    table = pq.read_table(final / DATASET)
    assert table.num_rows == 0
    assert table.schema.equals(SCHEMA)


def _commit(root: Path, fingerprint: str = FP, combo: Combo = COMBO) -> Path:
    writer = ComboWriter(root, combo, SCHEMA)
    writer.write(_records(3))
    return writer.commit(_meta(fingerprint, combo))


def test_read_complete_returns_meta_for_matching_fingerprint(tmp_path: Path) -> None:
    _commit(tmp_path)
    assert read_complete(tmp_path, COMBO, FP) == _meta()


def test_read_complete_wrong_fingerprint(tmp_path: Path) -> None:
    _commit(tmp_path)
    assert read_complete(tmp_path, COMBO, "0000000000000000") is None


def test_read_complete_missing_meta(tmp_path: Path) -> None:
    final = _commit(tmp_path)
    (final / META).unlink()
    assert read_complete(tmp_path, COMBO, FP) is None


def test_read_complete_missing_dataset(tmp_path: Path) -> None:
    final = _commit(tmp_path)
    (final / DATASET).unlink()
    assert read_complete(tmp_path, COMBO, FP) is None


def test_read_complete_unreadable_meta(tmp_path: Path) -> None:
    final = _commit(tmp_path)
    (final / META).write_text("{not json", encoding="utf-8")
    assert read_complete(tmp_path, COMBO, FP) is None


def test_read_complete_wrong_combo_id(tmp_path: Path) -> None:
    final = _commit(tmp_path)
    (final / META).write_text(json.dumps({**_meta().to_dict(), "combo_id": "aaaaaaaaaa"}), encoding="utf-8")
    assert read_complete(tmp_path, COMBO, FP) is None


def test_read_complete_nothing_written(tmp_path: Path) -> None:
    assert read_complete(tmp_path, COMBO, FP) is None


def _temp_folder(root: Path, host: str, pid: int, suffix: str = "abcd1234") -> Path:
    folder = root / TMP_DIR / temp_name(COMBO.dir_name, host, pid, suffix)
    folder.mkdir(parents=True)
    (folder / DATASET).write_bytes(b"partial")
    return folder


def test_clean_stale_temp_removes_dead_and_keeps_live(tmp_path: Path) -> None:
    host = socket.gethostname()
    dead = _temp_folder(tmp_path, host, _dead_pid(), "deadbeef")
    live = _temp_folder(tmp_path, host, os.getpid(), "a11ve000")
    other_host = _temp_folder(tmp_path, "some-other-host", _dead_pid(), "0th3rh0s")
    removed = clean_stale_temp(tmp_path)
    assert removed == [dead]
    assert not dead.exists()
    assert live.exists()
    assert other_host.exists()  # another machine's process may still be writing it


def test_clean_stale_temp_without_temp_root(tmp_path: Path) -> None:
    assert clean_stale_temp(tmp_path) == []
    assert clean_stale_temp(tmp_path / "absent") == []


def test_clean_stale_temp_keeps_an_open_writer(tmp_path: Path) -> None:
    writer = ComboWriter(tmp_path, COMBO, SCHEMA)
    writer.write(_records(1))
    assert clean_stale_temp(tmp_path) == []
    assert writer.tmp.exists()
    writer.commit(_meta())
    assert read_complete(tmp_path, COMBO, FP) == _meta()


def test_clean_stale_temp_with_dotted_hostname(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "node1.example.com")
    dead = _temp_folder(tmp_path, "node1.example.com", _dead_pid())
    assert clean_stale_temp(tmp_path) == [dead]
    assert not dead.exists()


def test_clean_stale_temp_removes_old_folder_of_dead_process(tmp_path: Path) -> None:
    left = _temp_folder(tmp_path, socket.gethostname(), _dead_pid(), "deadbeef")
    old = left.rename(left.with_name(left.name + ".old"))  # as commit() names a replaced folder
    assert clean_stale_temp(tmp_path) == [old]
    assert not old.exists()


def test_meta_json_reads_back_as_the_record_it_was_written_from(tmp_path: Path) -> None:
    final = _commit(tmp_path)
    assert read_meta(final / META) == _meta()
    # Keys a newer augshard wrote are kept through a read and a write; a missing key is named.
    data = {**_meta().to_dict(), "written_by_a_newer_version": {"x": 1}}
    (final / META).write_text(json.dumps(data), encoding="utf-8")
    assert read_meta(final / META).to_dict() == data
    del data["rows"]
    (final / META).write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="rows"):
        read_meta(final / META)
    (final / META).write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ValueError, match="not a JSON object"):
        read_meta(final / META)


def test_meta_json_also_carries_the_original_tools_keys(tmp_path: Path) -> None:
    """The original generator's meta.json had combo_methods, combo_id, variants_per_sample, seed, rows,
    source_input, columns and timing {duration_seconds, rows_per_second, rows_skipped}: scripts that read them go on
    working, and reading them back changes nothing."""
    final = _commit(tmp_path)
    data = json.loads((final / META).read_text(encoding="utf-8"))
    meta = _meta()
    assert data["combo_methods"] == meta.methods and data["combo_id"] == meta.combo_id
    assert data["source_input"] == meta.source.path
    assert data["timing"]["rows_skipped"] == meta.rows_skipped
    for key in ("variants_per_sample", "seed", "rows", "columns"):
        assert key in data
    assert set(data["timing"]) >= {"duration_seconds", "rows_per_second", "rows_skipped"}
    assert read_meta(final / META).extra == {}  # derived keys are not carried as unknown ones


def _vectors_meta(rows: int, dim: int = 4) -> ComboMeta:
    return make_meta(COMBO, FP, rows=rows, vectors=VectorsMeta(VECTORS, dim, rows, "embedding|test", "evidence"))


def test_vectors_are_committed_with_the_combo_and_read_back(tmp_path: Path) -> None:
    import numpy as np

    writer = ComboWriter(tmp_path, COMBO, SCHEMA, vectors=True)
    vectors = np.arange(12, dtype=np.float32).reshape(3, 4)
    for start in (0, 2):  # two chunks, two row groups
        writer.write(_records(3)[start : start + 2])
        writer.write_vectors([(f"r{i}", i % 2) for i in range(start, min(start + 2, 3))], vectors[start : start + 2])
    assert not (tmp_path / COMBO.dir_name).exists()
    final = writer.commit(_vectors_meta(3))
    assert sorted(p.name for p in final.iterdir()) == [DATASET, META, VECTORS]
    keys, back = read_vectors(final)
    assert keys == [("r0", 0), ("r1", 1), ("r2", 0)]
    assert back.dtype == np.float32 and np.array_equal(back, vectors)
    from augshard.data import file_sha256

    digest = file_sha256(final / VECTORS)  # recorded when the file is closed
    recorded = VectorsMeta(VECTORS, 4, 3, "embedding|test", "evidence", "float32", digest)
    assert read_meta(final / META).vectors == recorded


def test_vectors_missing_for_some_rows_commit_nothing(tmp_path: Path) -> None:
    import numpy as np

    writer = ComboWriter(tmp_path, COMBO, SCHEMA, vectors=True)
    writer.write(_records(3))
    writer.write_vectors([("r0", 0), ("r1", 1)], np.zeros((2, 4), dtype=np.float32))
    with pytest.raises(RuntimeError, match="2 vectors for 3 rows"):
        writer.commit(_vectors_meta(3))
    writer.abort()
    assert not (tmp_path / COMBO.dir_name).exists()
    assert list((tmp_path / TMP_DIR).iterdir()) == []


def test_a_combo_without_rows_gets_an_empty_vectors_file(tmp_path: Path) -> None:
    final = ComboWriter(tmp_path, COMBO, SCHEMA, vectors=True).commit(_vectors_meta(0, dim=384))
    keys, vectors = read_vectors(final)
    assert keys == [] and vectors.shape == (0, 384)
    assert read_vectors(tmp_path) is None
