"""Tests for augshard.storage.store and augshard.storage.temporaries: atomic combo folders, completeness checks,
exclusive
temporaries, the one sweep of stale leftovers."""

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

from augshard.core.combos import Combo
from augshard.storage import temporaries
from augshard.storage.meta import ComboMeta, read_meta
from augshard.storage.store import (
    DATASET,
    META,
    TMP_DIR,
    VECTORS,
    ComboWriter,
    VectorsMeta,
    clean_stale_temp,
    parse_temp_name,
    read_complete,
    read_vectors,
    temp_name,
)
from augshard.storage.temporaries import write_atomic

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
    from augshard.storage.data import file_sha256

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


# --- exclusive temporaries and the one sweep (augshard.storage.temporaries) -----------------------------------


def _victim(tmp_path: Path) -> Path:
    """A file a planted link points at: it must come out of every write and sweep byte-identical."""
    folder = tmp_path / "elsewhere"
    folder.mkdir(exist_ok=True)
    victim = folder / "precious.txt"
    victim.write_text("keep me", encoding="utf-8")
    return victim


def test_a_link_planted_at_the_old_predictable_temp_name_is_never_followed(tmp_path: Path) -> None:
    # Before: `.<name>~<pid>~<host>.tmp` opened with a plain open(), so this link redirected the manifest.
    victim = _victim(tmp_path)
    target = tmp_path / "manifest_final.csv"
    for pid in (os.getpid(), os.getpid() + 1):
        for name in (f".{target.name}~{pid}~{socket.gethostname()}.tmp", f".{target.name}.{pid}.tmp"):
            (tmp_path / name).symlink_to(victim)
    write_atomic(target, "combo_id\n")
    assert target.read_text(encoding="utf-8") == "combo_id\n" and not target.is_symlink()
    assert victim.read_text(encoding="utf-8") == "keep me"


def test_a_link_planted_at_the_drawn_temp_name_is_never_followed_and_never_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    victim = _victim(tmp_path)
    draws = iter(["a" * 16, "a" * 16, "b" * 16])
    monkeypatch.setattr(temporaries, "token", lambda: next(draws))
    target = tmp_path / "evaluation.json"
    planted = tmp_path / f".evaluation.json~{os.getpid()}~{socket.gethostname()}~{'a' * 16}.tmp"
    planted.symlink_to(victim)
    write_atomic(target, "{}\n")  # the first two draws hit the link: O_EXCL | O_NOFOLLOW refuses it, b... is used
    assert target.read_text(encoding="utf-8") == "{}\n"
    assert victim.read_text(encoding="utf-8") == "keep me" and planted.is_symlink()
    assert not list(tmp_path.glob(f".evaluation.json~*~{'b' * 16}.tmp"))  # renamed into place


def test_a_staging_folder_is_an_exclusive_mkdir_never_a_planted_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    victim = _victim(tmp_path)
    draws = iter(["c" * 16, "d" * 16])
    monkeypatch.setattr(temporaries, "token", lambda: next(draws))
    planted = tmp_path / f".train~{os.getpid()}~{socket.gethostname()}~{'c' * 16}.staging"
    planted.symlink_to(victim.parent, target_is_directory=True)
    staging = temporaries.staging_folder(tmp_path / "train")
    assert staging.name.endswith(f"~{'d' * 16}.staging") and staging.is_dir() and not staging.is_symlink()
    assert sorted(p.name for p in victim.parent.iterdir()) == ["precious.txt"]


def _leftovers(folder: Path, pid: int, host: str) -> dict[str, Path]:
    """One leftover of every name format augshard has used, written by `pid` on `host`."""
    names = {
        "file": f".manifest_final.csv~{pid}~{host}~{'e' * 16}.tmp",
        "file, before the token": f".evaluation.json~{pid}~{host}.tmp",
        "file, before the host": f".report.html.{pid}.tmp",
        "staging folder": f".train~{pid}~{host}~{'f' * 16}.staging",
        "aside folder": f".train~{pid}~{host}~{'0' * 16}.old",
        "export staging, before": f".train.augshard-export-{pid}~{host}",
        "export aside, before": f".train.augshard-old-{pid}~{host}",
        "claims": f".claims-0123abcd-{pid}-1700000000~{host}~{'1' * 16}",
        "claims, before the token": f".claims-0123abcd-{pid}-1700000000~{host}",
        "nltk aside, before": f".wordnet.old-{pid}-123456789",
    }
    out = {}
    folder.mkdir(parents=True)
    for what, name in names.items():
        path = folder / name
        if name.endswith(".tmp"):
            path.write_text("partial", encoding="utf-8")
        else:
            (path / "data").mkdir(parents=True)
            (path / "data" / "part").write_text("partial", encoding="utf-8")
        out[what] = path
    return out


def test_the_sweep_removes_a_dead_writers_leftovers_of_every_format(tmp_path: Path) -> None:
    host = socket.gethostname()
    dead = _leftovers(tmp_path / "dead", _dead_pid(), host)
    live = _leftovers(tmp_path / "live", os.getpid(), host)
    remote = _leftovers(tmp_path / "remote", _dead_pid(), "some-other-host")
    legacy_combo = tmp_path / "dead" / f".model.{_dead_pid()}.abcdef"  # the ONNX export's staging, before
    legacy_combo.mkdir()
    assert sorted(temporaries.sweep(tmp_path / "dead")) == sorted([*dead.values(), legacy_combo])
    assert not list((tmp_path / "dead").iterdir())
    assert temporaries.sweep(tmp_path / "live") == [] and all(p.exists() for p in live.values())
    # Another machine's process may still be writing its own; a name without a host is this host's (older versions).
    theirs = [p for p in remote.values() if "some-other-host" in p.name]
    assert sorted(temporaries.sweep(tmp_path / "remote")) == sorted(set(remote.values()) - set(theirs))
    assert all(p.exists() for p in theirs)


def test_the_sweep_removes_a_link_itself_and_never_follows_it(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    host, pid = socket.gethostname(), _dead_pid()
    folder = tmp_path / "out"
    folder.mkdir()
    links = [folder / name for name in (f".x~{pid}~{host}.tmp", f".train~{pid}~{host}~{'a' * 16}.staging",
                                         f".train.augshard-old-{pid}~{host}", f".wordnet.old-{pid}-1")]  # fmt: skip
    for link in links:
        link.symlink_to(victim.parent, target_is_directory=True)
    tmp_root = tmp_path / "root" / TMP_DIR
    tmp_root.mkdir(parents=True)
    combo_link = tmp_root / temp_name(COMBO.dir_name, host, pid, "deadbeef")
    combo_link.symlink_to(victim.parent, target_is_directory=True)
    assert sorted(temporaries.sweep(folder)) == sorted(links)
    assert clean_stale_temp(tmp_path / "root") == [combo_link]
    assert not any(p.is_symlink() or p.exists() for p in [*links, combo_link])
    assert victim.read_text(encoding="utf-8") == "keep me"
    assert sorted(p.name for p in victim.parent.iterdir()) == ["precious.txt"]


def test_each_owner_of_leftovers_sweeps_through_the_one_helper(tmp_path: Path) -> None:
    from augshard.exporting.export import sweep_leftovers
    from augshard.methods.provision import _remove_stale_staging
    from augshard.shard.claims import sweep_claims

    host, pid = socket.gethostname(), _dead_pid()
    victim = _victim(tmp_path)
    logs, out, nltk = tmp_path / "logs", tmp_path / "out", tmp_path / "nltk"
    for folder in (logs, out, nltk / "corpora"):
        folder.mkdir(parents=True)
    claims = [logs / f".claims-0a-{pid}-1~{host}", logs / f".claims-0a-{pid}-1~{host}~{'2' * 16}"]
    exports = [out / f".train.augshard-export-{pid}~{host}", out / f".train~{pid}~{host}~{'3' * 16}.old"]
    other_target = out / f".other.augshard-export-{pid}~{host}"  # another --to's: not this export's to sweep
    olds = [nltk / "corpora" / f".wordnet.old-{pid}-77", nltk / "corpora" / f".wordnet~{pid}~{host}~{'4' * 16}.old"]
    staging = nltk / f".augshard-staging~{pid}~{host}~{'5' * 16}.staging"
    for path in (*claims, exports[0], other_target, olds[0], staging):
        path.mkdir()
    for path in (exports[1], olds[1]):
        path.symlink_to(victim.parent, target_is_directory=True)  # an `.old` link: removed, never followed
    assert sorted(sweep_claims(logs)) == sorted(claims)
    assert sorted(sweep_leftovers(out / "train")) == sorted(exports) and other_target.is_dir()
    _remove_stale_staging(nltk)
    assert sorted(p.name for p in nltk.iterdir()) == ["corpora"]
    assert list((nltk / "corpora").iterdir()) == []
    assert sorted(p.name for p in victim.parent.iterdir()) == ["precious.txt"]
