"""Tests for augshard.shard.cache: the per-shard SQLite cache of method calls."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from augshard.shard.cache import Cache, cache_key

BASE = {
    "method_id": "nlp_keyboard",
    "canonical_args": '{"a":1}',
    "version": "1.1.11",
    "seed": 7,
    "text": "hello",
}


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    c = Cache(tmp_path / "sub" / "augment_shard0.db")
    yield c
    c.close()


def test_roundtrip_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "augment_shard0.db"
    items = [(f"k{i}", f"value {i} ✓ \n with newline") for i in range(1200)]
    c = Cache(path)
    c.put_many(items)
    c.close()
    reopened = Cache(path)
    keys = [k for k, _ in items] + ["absent-1", "absent-2"]
    assert reopened.get_many(keys) == dict(items)
    assert (reopened.hits, reopened.misses) == (1200, 2)
    reopened.close()


def test_get_many_empty_and_missing(cache: Cache) -> None:
    assert cache.get_many([]) == {}
    assert cache.get_many(["nope"]) == {}
    assert (cache.hits, cache.misses) == (0, 1)


def test_put_many_replaces_existing_value(cache: Cache) -> None:
    cache.put_many([("k", "old")])
    cache.put_many([("k", "new")])
    assert cache.get_many(["k"]) == {"k": "new"}


def test_put_many_accepts_a_generator(cache: Cache) -> None:
    cache.put_many((f"g{i}", str(i)) for i in range(3))
    assert cache.get_many(["g0", "g1", "g2"]) == {"g0": "0", "g1": "1", "g2": "2"}


def test_journal_mode_is_wal(cache: Cache) -> None:
    assert cache.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_cache_key_is_deterministic() -> None:
    assert cache_key(**BASE) == cache_key(**BASE)
    assert len(cache_key(**BASE)) == 40


@pytest.mark.parametrize(
    "change",
    [
        {"method_id": "nlp_ocr"},
        {"canonical_args": '{"a":2}'},
        {"version": "1.1.12"},
        {"seed": 8},
        {"text": "hello!"},
        {"text": "Hello"},
    ],
)
def test_cache_key_changes_with_each_part(change: dict) -> None:
    assert cache_key(**{**BASE, **change}) != cache_key(**BASE)


def test_cache_key_parts_do_not_run_together() -> None:
    # Moving characters from one part to the next must not give the same key.
    a = cache_key("ab", "c", "v", 1, "t")
    b = cache_key("a", "bc", "v", 1, "t")
    assert a != b


def test_cache_key_accepts_lone_surrogates() -> None:
    assert cache_key(**{**BASE, "text": "bad \udc80 text"}) != cache_key(**BASE)


def test_corrupted_db_is_moved_aside_and_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "augment_shard1.db"
    garbage = bytes(range(256)) * 64
    path.write_bytes(garbage)
    c = Cache(path)
    aside = list(tmp_path.glob("augment_shard1.db.corrupt-*"))
    assert len(aside) == 1
    assert aside[0].read_bytes() == garbage
    c.put_many([("k", "v")])
    assert c.get_many(["k"]) == {"k": "v"}
    c.close()
    # The rebuilt file is a real SQLite database that survives a reopen.
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM calls_v2 WHERE key='k'").fetchone() == ("v",)
    again = Cache(path)
    assert again.get_many(["k"]) == {"k": "v"}
    again.close()
    assert len(list(tmp_path.glob("augment_shard1.db.corrupt-*"))) == 1


def test_short_garbage_file_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    path.write_bytes(b"not sqlite")
    c = Cache(path)
    assert len(list(tmp_path.glob("c.db.corrupt-*"))) == 1
    c.put_many([("x", "y")])
    assert c.get_many(["x"]) == {"x": "y"}
    c.close()


def test_a_damaged_value_is_ignored_not_returned(tmp_path: Path) -> None:
    """A row whose value changed behind SQLite's back (bad disk, a stray writer) fails its CRC and is recomputed."""
    cache = Cache(tmp_path / "c.db")
    cache.put_many([("good", "fine output"), ("bad", "original output")])
    cache.conn.execute("UPDATE calls_v2 SET value = 'tampered output' WHERE key = 'bad'")
    cache.conn.commit()
    assert cache.get_many(["good", "bad"]) == {"good": "fine output"}
    cache.close()


def test_shards_opening_one_cache_file_at_once_wait_for_each_other(tmp_path: Path) -> None:
    """`--disk-cache FILE` (and a combo taken from another shard's list) has processes open one file together:
    a lock held while another creates the tables is waited for, never taken for damage and moved aside."""
    import subprocess
    import sys
    import time

    # Every process opens the new file at the same moment (their start-ups vary by more than the open takes).
    code = (
        "import sys, time; from augshard.shard.cache import Cache; "
        "time.sleep(max(0, float(sys.argv[3]) - time.time())); "
        "c = Cache(sys.argv[1]); n = sys.argv[2]; c.put_many((f'{n}-{i}', str(i)) for i in range(200)); "
        "assert len(c.get_many([f'{n}-{i}' for i in range(200)])) == 200; c.close()"
    )
    for round_ in range(3):
        path, at = tmp_path / f"shared{round_}.db", str(time.time() + 2.0)
        procs = [subprocess.Popen([sys.executable, "-c", code, str(path), str(n), at]) for n in range(6)]
        assert [p.wait(timeout=120) for p in procs] == [0] * 6
        cache = Cache(path)
        assert len(cache.get_many([f"{n}-{i}" for n in range(6) for i in range(200)])) == 1200
        cache.close()
    assert not list(tmp_path.glob("*.corrupt-*"))


class _FullDisk:
    """A connection whose writes fail as SQLite's do on a full disk (SQLITE_FULL)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def executemany(self, *args: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    def execute(self, *args: object) -> object:
        return self.conn.execute(*args)

    def close(self) -> None:
        self.conn.close()


def test_a_cache_that_cannot_write_turns_itself_off_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = Cache(tmp_path / "c.db")
    cache.put_many([("a", "1")])
    cache.conn = _FullDisk(cache.conn)  # type: ignore[assignment]
    with caplog.at_level(logging.WARNING, logger="augshard.shard.cache"):
        cache.put_many([("b", "2")])  # no exception: the shard goes on
        cache.put_scores([("s", 0.5)])
        assert cache.get_many(["a", "b"]) == {} and cache.get_scores(["s"]) == {}
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "turned off" in warnings[0] and "disk is full" in warnings[0]
    cache.close()
    assert sorted(p.name for p in tmp_path.iterdir() if ".corrupt-" in p.name) == []


def test_a_cache_that_cannot_be_opened_for_a_full_disk_is_off_not_moved_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Cache(tmp_path / "c.db").close()

    def full(self: Cache, check: bool) -> sqlite3.Connection:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Cache, "_connect", full)
    cache = Cache(tmp_path / "c.db")
    assert cache.conn is None and "disk is full" in cache.off_because
    assert cache.get_many(["x"]) == {} and cache.put_many([("x", "y")]) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.db"]  # the file may be fine: never moved aside
