"""Atomic combo outputs: rows streamed into a temporary Parquet, fsynced, then the folder renamed into place."""

from __future__ import annotations

import json
import os
import shutil
import socket
import uuid
from pathlib import Path
from typing import Any

from augshard.combos import Combo

TMP_DIR = ".augshard-tmp"
DATASET = "dataset.parquet"
META = "meta.json"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def pid_alive(pid: int) -> bool:
    """Whether a process of this host still exists (one of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def temp_name(dir_name: str, host: str, pid: int, token: str) -> str:
    """`<pid>~<token>~<host>~<combo dir>`: '~' appears in neither hostnames nor combo folders, so the owner
    parses back even from a dotted hostname or a `.old` folder left behind."""
    return f"{pid}~{token}~{host}~{dir_name}"


def parse_temp_name(name: str) -> tuple[str, int] | None:
    """(host, pid) of a temp folder's writer, or None for a name augshard did not make."""
    parts = name.split("~", 3)
    if len(parts) != 4 or not parts[0].isdigit():
        return None
    return parts[2], int(parts[0])


def clean_stale_temp(output_root: str | Path) -> list[Path]:
    """Remove temporary combo folders left by dead processes of this host (others may still be writing)."""
    tmp_root = Path(output_root) / TMP_DIR
    removed: list[Path] = []
    if not tmp_root.is_dir():
        return removed
    host = socket.gethostname()
    for entry in sorted(tmp_root.iterdir()):
        owner = parse_temp_name(entry.name)
        if owner is not None and (owner[0] != host or pid_alive(owner[1])):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


def remove_empty_temp(output_root: str | Path) -> None:
    """Drop the hidden temp folder once nothing is being written in it."""
    try:
        (Path(output_root) / TMP_DIR).rmdir()
    except OSError:
        pass


def read_complete(output_root: str | Path, combo: Combo, fingerprint: str) -> dict[str, Any] | None:
    """The combo's meta.json if the combo is complete for this fingerprint, else None (recompute it)."""
    final = Path(output_root) / combo.dir_name
    meta_path, data_path = final / META, final / DATASET
    if not (meta_path.is_file() and data_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if meta.get("combo_fingerprint") != fingerprint or meta.get("combo_id") != combo.combo_id:
        return None
    return meta


class ComboWriter:
    """Stream one combo's records into a hidden temporary folder; `commit` makes it appear whole or not at all."""

    def __init__(self, output_root: str | Path, combo: Combo, schema: Any) -> None:
        import pyarrow.parquet as pq

        self.root = Path(output_root)
        self.combo = combo
        self.schema = schema
        tmp_root = self.root / TMP_DIR
        tmp_root.mkdir(parents=True, exist_ok=True)
        self.tmp = tmp_root / temp_name(combo.dir_name, socket.gethostname(), os.getpid(), uuid.uuid4().hex[:8])
        self.tmp.mkdir()
        self._writer = pq.ParquetWriter(self.tmp / DATASET, schema, compression="zstd")
        self.rows = 0

    def write(self, records: list[dict[str, Any]]) -> None:
        """One chunk of records becomes one row group, so memory stays flat however many rows there are."""
        import pyarrow as pa

        if records:
            self._writer.write_table(pa.Table.from_pylist(records, schema=self.schema))
            self.rows += len(records)

    def commit(self, meta: dict[str, Any]) -> Path:
        self._writer.close()
        meta_path = self.tmp / META
        meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        for path in (self.tmp / DATASET, meta_path, self.tmp):
            _fsync(path)
        final = self.root / self.combo.dir_name
        if final.exists():
            # An out-of-date or forced combo: move the old folder out of the way first, then swap in the new one.
            trash = self.tmp.with_name(self.tmp.name + ".old")
            final.rename(trash)
            self.tmp.rename(final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            self.tmp.rename(final)
        _fsync(self.root)
        return final

    def abort(self) -> None:
        try:
            self._writer.close()
        except Exception:  # noqa: BLE001 - the folder is removed anyway
            # A close that failed (a full disk) is not retried by the writer's __del__, which would print a
            # traceback into the shard's output long after the combo was reported failed.
            self._writer.is_open = False
        shutil.rmtree(self.tmp, ignore_errors=True)
