"""Per-shard SQLite (WAL) cache of method calls; an accelerator only: deleting it, or a disk too full to write it,
costs time, never results."""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import time
import zlib
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger("augshard.shard.cache")


# Each value carries a CRC of (key, value): a row damaged in a way SQLite does not notice is dropped, not used.
SCHEMA = "CREATE TABLE IF NOT EXISTS calls_v2 (key TEXT PRIMARY KEY, value TEXT NOT NULL, crc INTEGER NOT NULL)"
# Similarity scores of (original, candidate) pairs, keyed by the scorer's identity too.
SCORES = "CREATE TABLE IF NOT EXISTS scores_v1 (key TEXT PRIMARY KEY, value REAL NOT NULL, crc INTEGER NOT NULL)"
# Sentence embeddings of original evidences (float32 bytes), so each is encoded once per shard, even across reruns.
VECTORS = "CREATE TABLE IF NOT EXISTS vectors_v1 (key TEXT PRIMARY KEY, value BLOB NOT NULL, crc INTEGER NOT NULL)"
TABLES = (SCHEMA, SCORES, VECTORS)
OPEN_ATTEMPTS = 20


SHARD_CACHE = "augment_shard{}.db"  # in the run's cache folder, one per plan shard


def method_cache_path(cache_dir: str | Path, disk_cache: str | None, home: int) -> Path:
    """The SQLite cache of plan shard `home`: data/cache/augment_shard{home}.db, or the one file every shard shares
    (`--disk-cache`, the original tool's flag)."""
    return Path(disk_cache) if disk_cache else Path(cache_dir) / SHARD_CACHE.format(home)


def method_caches(cache_dir: str | Path, disk_cache: str | None) -> list[Path]:
    """The method caches of a run that exist already (none on a cold run)."""
    if disk_cache:
        return [p for p in [Path(disk_cache)] if p.is_file()]
    return sorted(Path(cache_dir).glob(SHARD_CACHE.format("*")))


def _busy(exc: sqlite3.OperationalError) -> bool:
    """Locked by another connection: not damage, a moment to wait."""
    return "locked" in str(exc) or "busy" in str(exc)


def _unwritable(exc: sqlite3.OperationalError) -> bool:
    """A full disk, an I/O error or a read-only file: the file may be fine, so it is not moved aside."""
    text = str(exc).lower()
    return any(word in text for word in ("full", "disk i/o", "readonly", "read-only", "unable to open"))


def _crc(key: str, value: str | float | bytes) -> int:
    if isinstance(value, bytes):
        return zlib.crc32(value, zlib.crc32(f"{key}\x1f".encode()))
    if isinstance(value, float):
        value = repr(value)
    return zlib.crc32(f"{key}\x1f{value}".encode("utf-8", "surrogatepass"))


def cache_key(method_id: str, canonical_args: str, version: str, seed: int, text: str) -> str:
    """Everything that decides a method call's output is in the key, so edited settings never hit stale entries."""
    blob = "\x1f".join((method_id, canonical_args, version, str(seed), text))
    return hashlib.sha1(blob.encode("utf-8", "surrogatepass")).hexdigest()


class Cache:
    """One connection per process; reads in bulk; writes batched and committed together.

    A cache that cannot be opened, read or written (a full disk, a read-only folder, I/O errors) turns itself off
    with one warning: from then on every lookup misses and every write is dropped, and the shard goes on."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.hits = 0
        self.misses = 0
        self.conn: sqlite3.Connection | None = None
        self.off_because = ""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = self._open()
        except (sqlite3.Error, OSError) as exc:
            self._turn_off(exc)

    def _turn_off(self, exc: BaseException) -> None:
        """Degrade to no cache, said once; the results are the same, only slower."""
        if self.off_because:
            return
        self.off_because = f"{type(exc).__name__}: {exc}"
        log.warning("cache %s turned off (%s); going on without it", self.path, self.off_because)
        self.close()

    def _open(self) -> sqlite3.Connection:
        """Connect, creating the tables; a file SQLite cannot read is moved aside and rebuilt. Another process
        opening the same file at the same moment (shards sharing a cache) is waited for, never taken for damage."""
        for attempt in range(OPEN_ATTEMPTS):
            try:
                return self._connect(check=True)
            except sqlite3.OperationalError as exc:
                if _unwritable(exc):
                    raise
                if not _busy(exc):
                    break  # not a lock: the file is damaged
                if attempt == OPEN_ATTEMPTS - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))
            except sqlite3.DatabaseError:
                break
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
        log.warning("cache %s is unreadable; moved aside to %s and rebuilt", self.path, aside)
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(self.path) + suffix)
            if src.exists():
                src.rename(Path(str(aside) + suffix))
        return self._connect(check=False)

    def _connect(self, check: bool) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            with conn:
                for table in TABLES:
                    conn.execute(table)
            if check:
                row = conn.execute("PRAGMA quick_check").fetchone()
                if row is None or row[0] != "ok":
                    raise sqlite3.DatabaseError(f"integrity check failed: {row}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _get(self, table: str, keys: list[str]) -> dict:
        if self.conn is None:
            return {}
        try:
            return self._read(table, keys)
        except (sqlite3.Error, OSError) as exc:
            self._turn_off(exc)
            return {}

    def _read(self, table: str, keys: list[str]) -> dict:
        assert self.conn is not None
        found: dict = {}
        damaged = 0
        for i in range(0, len(keys), 500):
            part = keys[i : i + 500]
            marks = ",".join("?" * len(part))
            for key, value, crc in self.conn.execute(
                f"SELECT key, value, crc FROM {table} WHERE key IN ({marks})", part
            ):
                if crc == _crc(key, value):
                    found[key] = value
                else:
                    damaged += 1
        if damaged:
            log.warning("cache %s: %d damaged entries ignored (recomputed)", self.path, damaged)
        return found

    def _put(self, table: str, items: Iterable[tuple[str, str | float | bytes]]) -> None:
        if self.conn is None:
            return
        try:
            with self.conn:
                self.conn.executemany(
                    f"INSERT OR REPLACE INTO {table} (key, value, crc) VALUES (?, ?, ?)",
                    ((k, v, _crc(k, v)) for k, v in items),
                )
        except (sqlite3.Error, OSError) as exc:  # SQLITE_FULL, SQLITE_IOERR, a read-only file: not the shard's end
            self._turn_off(exc)

    def get_many(self, keys: list[str]) -> dict[str, str]:
        """Method outputs by call key."""
        found = self._get("calls_v2", keys)
        self.hits += len(found)
        self.misses += len(keys) - len(found)
        return found

    def put_many(self, items: Iterable[tuple[str, str]]) -> None:
        self._put("calls_v2", items)

    def get_scores(self, keys: list[str]) -> dict[str, float]:
        """Similarity scores by `quality.score_key`."""
        return self._get("scores_v1", keys)

    def put_scores(self, items: Iterable[tuple[str, float]]) -> None:
        self._put("scores_v1", items)

    def get_vectors(self, keys: list[str]) -> dict[str, bytes]:
        return self._get("vectors_v1", keys)

    def put_vectors(self, items: Iterable[tuple[str, bytes]]) -> None:
        self._put("vectors_v1", items)

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except sqlite3.Error:
                pass
            self.conn = None
