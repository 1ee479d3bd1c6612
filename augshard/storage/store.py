"""Combo folders: written in a hidden temporary folder and renamed into place whole (rows, `meta.json`, and with
--keep-vectors their vectors), the sweep of dead writers' folders, and "is this combo complete?"."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import stat
import time
import uuid
from pathlib import Path
from typing import Any

from augshard.core.combos import Combo
from augshard.core.errors import OutputError
from augshard.storage.meta import ComboMeta, read_meta, write_meta
from augshard.storage.temporaries import move_folder_into_place, parse_leftover, sweep
from augshard.storage.vectors import VECTORS, VectorsMeta, VectorsWriter, read_vectors

__all__ = ["VECTORS", "VectorsMeta", "read_vectors"]  # the kept vectors' names, where combo folders are read

TMP_DIR = ".augshard-tmp"
DATASET = "dataset.parquet"
DATASET_CSV = "dataset.csv"  # beside the Parquet with --save-format csv
META = "meta.json"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_name(dir_name: str, host: str, pid: int, token: str) -> str:
    """`<pid>~<token>~<host>~<combo dir>`: '~' appears in neither hostnames nor combo folders, so the owner
    parses back even from a dotted hostname or a `.old` folder left behind."""
    return f"{pid}~{token}~{host}~{dir_name}"


def parse_temp_name(name: str) -> tuple[str, int] | None:
    """(host, pid) of a temp folder's writer, or None for a name augshard did not make."""
    found = parse_leftover(name, ("combo",))
    return None if found is None or found.pid is None else (found.host, found.pid)


def clean_stale_temp(output_root: str | Path) -> list[Path]:
    """Remove temporary combo folders left by dead processes of this host (others may still be writing), and
    anything else in the hidden temp folder that augshard did not name; links are removed, never followed."""
    return sweep(Path(output_root) / TMP_DIR, "combo", strays=True)


def remove_empty_temp(output_root: str | Path) -> None:
    """Drop the hidden temp folder once nothing is being written in it."""
    try:
        (Path(output_root) / TMP_DIR).rmdir()
    except OSError:
        pass


def read_complete(output_root: str | Path, combo: Combo, fingerprint: str) -> ComboMeta | None:
    """The combo's meta.json if the combo is complete for this fingerprint, else None (recompute it)."""
    final = Path(output_root) / combo.dir_name
    meta_path, data_path = final / META, final / DATASET
    if not (meta_path.is_file() and data_path.is_file()):
        return None
    try:
        meta = read_meta(meta_path)
    except (OSError, ValueError):
        return None
    if meta.combo_fingerprint != fingerprint or meta.combo_id != combo.combo_id:
        return None
    return meta


class ComboWriter:
    """Stream one combo's records into a hidden temporary folder; `commit` makes it appear whole or not at all."""

    def __init__(
        self, output_root: str | Path, combo: Combo, schema: Any, csv: bool = False, vectors: bool = False
    ) -> None:
        import pyarrow.parquet as pq

        self.root = Path(output_root)
        self.combo = combo
        self.schema = schema
        tmp_root = self.root / TMP_DIR
        tmp_root.mkdir(parents=True, exist_ok=True)
        if not stat.S_ISDIR(os.lstat(tmp_root).st_mode):  # a link planted there: never written through
            raise OutputError(f"{tmp_root} is not a folder augshard made (a link?); remove it and run again")
        self.tmp = tmp_root / temp_name(combo.dir_name, socket.gethostname(), os.getpid(), uuid.uuid4().hex[:8])
        self.tmp.mkdir()
        self._writer = pq.ParquetWriter(self.tmp / DATASET, schema, compression="zstd")
        self.csv = csv
        self.rows = 0
        self.vectors = VectorsWriter(self.tmp) if vectors else None
        self.seconds = 0.0  # spent writing: records and vectors to Parquet, then the commit (a shard's time split)

    def write(self, records: list[dict[str, Any]]) -> None:
        """One chunk of records becomes one row group, so memory stays flat however many rows there are."""
        import pyarrow as pa

        if records:
            t0 = time.perf_counter()
            self._writer.write_table(pa.Table.from_pylist(records, schema=self.schema))
            self.rows += len(records)
            self.seconds += time.perf_counter() - t0

    def write_vectors(self, keys: list[tuple[str, int]], vectors: Any) -> None:
        """The vectors of the records just written, row for row (`(row_key, variant)` and an (n, dim) array)."""
        if self.vectors is None:
            raise ValueError("a combo writer opened without vectors")
        t0 = time.perf_counter()
        self.vectors.write(keys, vectors)
        self.seconds += time.perf_counter() - t0

    @property
    def vector_rows(self) -> int:
        return self.vectors.rows if self.vectors is not None else 0

    @property
    def vector_dim(self) -> int | None:
        return self.vectors.dim if self.vectors is not None else None

    def commit(self, meta: ComboMeta) -> Path:
        t0 = time.perf_counter()
        self._writer.close()
        files = [self.tmp / DATASET]
        if self.vectors is not None:
            if meta.vectors is None:
                raise ValueError("a combo written with vectors needs meta.vectors")
            # meta.json records the closed file's digest: verify and evaluate then know these are its vectors
            meta = dataclasses.replace(meta, vectors=self.vectors.close(meta.vectors, self.rows))
            files.append(self.vectors.path)
        if self.csv:
            files.append(self._write_csv())
        meta_path = self.tmp / META
        write_meta(meta_path, meta)
        for path in (*files, meta_path, self.tmp):
            _fsync(path)
        final = self.root / self.combo.dir_name
        # An out-of-date or forced combo: its old folder waits beside the temporary one while the new one moves in.
        move_folder_into_place(self.tmp, final, self.tmp.with_name(self.tmp.name + ".old"))
        _fsync(self.root)
        self.seconds += time.perf_counter() - t0
        return final

    def _write_csv(self) -> Path:
        """The same rows as CSV, read back from the Parquet one row group at a time."""
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        path = self.tmp / DATASET_CSV
        source = pq.ParquetFile(self.tmp / DATASET)
        with pacsv.CSVWriter(path, source.schema_arrow) as out:
            for i in range(source.num_row_groups):
                out.write_table(source.read_row_group(i))
        return path

    def abort(self) -> None:
        try:
            self._writer.close()
        except Exception:  # noqa: BLE001 - the folder is removed anyway
            # A close that failed (a full disk) is not retried by the writer's __del__, which would print a
            # traceback into the shard's output long after the combo was reported failed.
            self._writer.is_open = False
        if self.vectors is not None:
            self.vectors.abort()
        shutil.rmtree(self.tmp, ignore_errors=True)
