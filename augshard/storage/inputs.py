"""In-memory inputs: a pandas DataFrame, a pyarrow Table, a `datasets.Dataset` (or one split of a `DatasetDict`)
given to the API as a run's input becomes one Parquet file, `<cache_dir>/inputs/<origin>-<content hash>.parquet`,
that the shards (separate processes), export and evaluate read by path like any input file. Its schema's metadata
says where it came from, so its identity is its content hash and its row keys hash values as text (data.py)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from augshard.core.errors import ConfigError, InputError
from augshard.storage.data import ORIGIN_KEY, content_sha256, input_sha256
from augshard.storage.temporaries import atomic_file, sweep_temp_files

ACCEPTED = (
    "a path (str or os.PathLike) to a CSV or Parquet file, a pandas DataFrame, a pyarrow Table, a datasets.Dataset, "
    "or a datasets.DatasetDict with split= naming one of its splits"
)
FOLDER = "inputs"  # under the run's cache_dir


@dataclass(frozen=True)
class InMemoryInput:
    """An in-memory input as a table (without pandas' index or any schema metadata), where it came from and its
    content hash (`data.content_sha256`), which names its Parquet file."""

    table: Any
    origin: str  # dataframe | arrow | dataset
    sha256: str

    @property
    def name(self) -> str:
        """`<origin>-<content hash>.parquet`: the same rows from a DataFrame and a Dataset are one input (one
        identity), each file saying truly where its rows came from."""
        return f"{self.origin}-{self.sha256}.parquet"

    def write(self, cache_dir: str | Path) -> Path:
        """The Parquet copy under `cache_dir/inputs/`, written whole (atomically) unless one with this content is
        already there: a rerun with the same rows reads the same file."""
        import pyarrow.parquet as pq

        path = Path(cache_dir) / FOLDER / self.name
        if path.is_file() and _holds(path, self.sha256):
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        sweep_temp_files(path.parent)  # what a writer that died here left
        table = self.table.replace_schema_metadata({ORIGIN_KEY: self.origin.encode()})
        with atomic_file(path, "wb") as fh:
            pq.write_table(table, fh, compression="zstd")
        return path


def _holds(path: Path, sha256: str) -> bool:
    try:
        return input_sha256(path) == sha256
    except (OSError, InputError):
        return False


def in_memory(value: Any, split: str | None = None) -> InMemoryInput | None:
    """None for a path (or no input); the table of an in-memory input; a ConfigError saying what is accepted for
    anything else (a list, a dict, a number, a DatasetDict without `split`)."""
    if value is None or isinstance(value, (str, os.PathLike)):
        if split is not None:
            raise ConfigError(f"split={split!r} names a split of a datasets.DatasetDict input; input is {value!r}")
        return None
    table, origin = _as_table(value, split)
    if table.num_rows == 0:
        raise InputError(f"the input {type(value).__name__} has no rows")
    dupes = sorted({n for n in table.column_names if table.column_names.count(n) > 1})
    if dupes:
        raise InputError(f"the input {type(value).__name__} has duplicate column name(s) {', '.join(dupes)}")
    table = table.replace_schema_metadata(None)
    return InMemoryInput(table, origin, content_sha256(table))


def _kind(module: str, name: str) -> type | None:
    """A class of a library already imported (an object of it exists only then): pandas and datasets stay unloaded."""
    return getattr(sys.modules.get(module), name, None)


def _as_table(value: Any, split: str | None) -> tuple[Any, str]:
    import pyarrow as pa

    frame, dataset = _kind("pandas", "DataFrame"), _kind("datasets", "Dataset")
    splits = _kind("datasets", "DatasetDict")
    if splits is not None and isinstance(value, splits):
        if split is None or split not in value:
            named = f"split={split!r} is not one of them" if split is not None else "give split= to choose one"
            raise ConfigError(f"input is a datasets.DatasetDict with splits {', '.join(value)}: {named}")
        value = value[split]
    elif split is not None:
        raise ConfigError(f"split={split!r} names a split of a datasets.DatasetDict; input is a {type(value).__name__}")
    if isinstance(value, pa.Table):
        return value, "arrow"
    if frame is not None and isinstance(value, frame):
        try:
            return pa.Table.from_pandas(value, preserve_index=False), "dataframe"
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise InputError(f"the input DataFrame cannot be read as a table ({exc})") from None
    if dataset is not None and isinstance(value, dataset):
        return value.with_format("arrow")[:], "dataset"  # its rows as it shows them (after select, shuffle, ...)
    raise ConfigError(f"input must be {ACCEPTED}; got {type(value).__name__}")
