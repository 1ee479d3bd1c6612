"""Reading the Parquet files a run or an export wrote: a file that does not open (truncated, not Parquet, a folder)
is one line (an OutputError naming it), never a pyarrow traceback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from augshard.core.errors import OutputError


def _errors() -> tuple[type[BaseException], ...]:
    import pyarrow as pa  # heavy: loaded by the readers that need it, not when augshard is imported

    return (OSError, ValueError, TypeError, KeyError, pa.ArrowException)


def unreadable(path: str | Path, exc: BaseException) -> OutputError:
    detail = " ".join(str(exc).split())[:200]
    return OutputError(f"{path}: does not open as a Parquet file ({type(exc).__name__}: {detail})")


def read_table(path: str | Path, columns: list[str] | None = None) -> Any:
    """The whole file (or `columns`) as a pyarrow Table."""
    import pyarrow.parquet as pq

    if not Path(path).is_file():
        raise OutputError(f"{path}: no such Parquet file")
    try:
        return pq.read_table(path, columns=columns)
    except _errors() as exc:
        raise unreadable(path, exc) from None


def read_schema(path: str | Path) -> Any:
    import pyarrow.parquet as pq

    if not Path(path).is_file():
        raise OutputError(f"{path}: no such Parquet file")
    try:
        return pq.read_schema(path)
    except _errors() as exc:
        raise unreadable(path, exc) from None


def iter_batches(path: str | Path, batch_size: int) -> Iterator[Any]:
    """The file's record batches; what the caller does with one is not caught here."""
    import pyarrow.parquet as pq

    if not Path(path).is_file():
        raise OutputError(f"{path}: no such Parquet file")
    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            yield batch
    except _errors() as exc:
        raise unreadable(path, exc) from None
