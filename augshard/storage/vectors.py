"""A combo's kept vectors (`--keep-vectors`): `vectors.parquet` written row for row with the dataset, what meta.json
records of it (`VectorsMeta`: file, rows, dimension, dtype, sha256, encoder, field), read back, and checked against
both (`vectors_problems`: what `verify` reports and what `evaluate` refuses to use)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.markup import escape

from augshard.events.output import notice
from augshard.storage.data import file_sha256

VECTORS = "vectors.parquet"  # with --keep-vectors: row_key, variant, vector; one row per dataset row, same order
DTYPE = "float32"
# The encoders' vectors are normalised (cosine = dot product): a vector whose length is off by more than this was
# not written by the filter (zeroed, scaled), whatever its digest says.
UNIT_TOLERANCE = 1e-3


@dataclass(frozen=True)
class VectorsMeta:
    """A combo's `vectors.parquet` (--keep-vectors): the embedding filter's vector of each variant of the dataset,
    row for row; `field` says which text was encoded: the variant's evidence span, or its whole text. `sha256` and
    `dtype` are recorded when the file is closed; a meta.json written before them has None (its vectors are checked
    for rows, dimension, keys and values, but not against a digest)."""

    file: str
    dim: int
    rows: int
    encoder: str  # the scorer's identity: vectors from another encoder are not comparable with these
    field: str  # "evidence" (with an evidence column) or "text"
    dtype: str | None = None
    sha256: str | None = None


def vectors_schema(dim: int) -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("row_key", pa.string()),
            pa.field("variant", pa.int32()),
            pa.field("vector", pa.list_(pa.float32(), dim)),
        ]
    )


class VectorsWriter:
    """`vectors.parquet` in a combo's temporary folder, opened on the first vectors (when their dimension is known)."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / VECTORS
        self._writer: Any = None
        self.rows = 0
        self.dim: int | None = None

    def write(self, keys: list[tuple[str, int]], vectors: Any) -> None:
        """The vectors of the records just written, row for row (`(row_key, variant)` and an (n, dim) array)."""
        import numpy as np
        import pyarrow as pa

        if not keys:
            return
        array = np.ascontiguousarray(vectors, dtype=np.float32)
        if array.ndim != 2 or len(array) != len(keys):
            raise ValueError(f"{len(keys)} keys but vectors of shape {array.shape}")
        if self._writer is None:
            self.dim = int(array.shape[1])
            self._writer = self._open(self.dim)
        elif array.shape[1] != self.dim:
            raise ValueError(f"vectors of dimension {array.shape[1]} after {self.dim}")
        flat = pa.array(array.reshape(-1), type=pa.float32())
        table = pa.table(
            {
                "row_key": pa.array([k for k, _ in keys], type=pa.string()),
                "variant": pa.array([v for _, v in keys], type=pa.int32()),
                "vector": pa.FixedSizeListArray.from_arrays(flat, self.dim),
            },
            schema=vectors_schema(self.dim),
        )
        self._writer.write_table(table)
        self.rows += len(keys)

    def _open(self, dim: int) -> Any:
        import pyarrow.parquet as pq

        # Dictionaries do not pay for float vectors nor for unique keys; zstd still trims a few percent.
        return pq.ParquetWriter(self.path, vectors_schema(dim), compression="zstd", use_dictionary=False)

    def close(self, meta: VectorsMeta, rows: int) -> VectorsMeta:
        """Close the file (an empty one for a combo without rows) once it holds a vector for each of the dataset's
        `rows`; `meta` with the file's dtype and sha256."""
        from dataclasses import replace

        if self._writer is None:
            self._writer = self._open(meta.dim)
        self._writer.close()
        if self.rows != rows or meta.rows != rows:
            raise RuntimeError(f"{self.rows} vectors for {rows} rows (meta says {meta.rows})")
        return replace(meta, dtype=DTYPE, sha256=file_sha256(self.path))

    def abort(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:  # noqa: BLE001 - the folder is removed anyway
                # A close that failed (a full disk) is not retried by the writer's __del__, which would print a
                # traceback into the shard's output long after the combo was reported failed.
                self._writer.is_open = False


def read_vectors(combo_folder: Path) -> tuple[list[tuple[str, int]], Any] | None:
    """A combo's kept vectors: its `(row_key, variant)` keys in file order (the order of `dataset.parquet`) and an
    (n, dim) float32 numpy array; None when the combo was written without --keep-vectors."""
    import pyarrow.parquet as pq

    path = Path(combo_folder) / VECTORS
    if not path.is_file():
        return None
    return _keys_and_array(pq.read_table(path))


def _keys_and_array(table: Any) -> tuple[list[tuple[str, int]], Any]:
    import numpy as np

    keys = list(zip(table.column("row_key").to_pylist(), table.column("variant").to_pylist(), strict=True))
    column = table.column("vector")
    dim = column.type.list_size
    chunks = [chunk.flatten().to_numpy(zero_copy_only=False) for chunk in column.chunks]
    flat = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    return keys, flat.astype(np.float32, copy=False).reshape(len(keys), dim)


def dataset_keys(dataset: Any) -> list[tuple[str, int]]:
    """The `(row_key, variant)` of each row of a dataset.parquet (a path or a table), in file order."""
    import pyarrow.parquet as pq

    table = dataset if not isinstance(dataset, str | Path) else pq.read_table(dataset, columns=["row_key", "variant"])
    return list(zip(table.column("row_key").to_pylist(), table.column("variant").to_pylist(), strict=True))


def vectors_problems(folder: Path, meta: VectorsMeta | None, keys: list[tuple[str, int]]) -> list[str]:
    """What is wrong with a combo's vectors.parquet, one line per problem (none: it may be used): against meta.json
    (sha256, rows, dimension, dtype) and the dataset (`keys`: its `(row_key, variant)`, row for row), and in its
    values (finite, unit length)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(folder) / VECTORS
    if meta is None:
        return [f"{VECTORS} that meta.json does not mention"] if path.exists() else []
    if not path.is_file():
        return [f"{VECTORS} missing ({path}), meta.json says it was kept"]
    problems = []
    if meta.sha256 is not None and (digest := file_sha256(path)) != meta.sha256:
        problems.append(f"{VECTORS} has sha256 {digest[:12]}…, meta.json records {meta.sha256[:12]}… (changed since)")
    try:
        source = pq.ParquetFile(path)
        schema, rows = source.schema_arrow, source.metadata.num_rows
    except Exception as exc:  # noqa: BLE001 - any failure to read is the problem being reported
        return [*problems, _unreadable(path, exc)]
    kind = schema.field("vector").type if "vector" in schema.names else None
    if kind is None or not pa.types.is_fixed_size_list(kind) or schema.names[:2] != ["row_key", "variant"]:
        return [*problems, f"{VECTORS} is not a vectors file (columns {', '.join(map(str, schema))})"]
    dtype = np.dtype(kind.value_type.to_pandas_dtype()).name
    if kind.list_size != meta.dim or dtype != (meta.dtype or DTYPE):
        problems.append(f"{VECTORS} holds {dtype} vectors of dimension {kind.list_size}, meta.json says "
                        f"{meta.dtype or DTYPE} of dimension {meta.dim}")  # fmt: skip
    if rows != meta.rows or rows != len(keys):
        problems.append(f"{VECTORS} has {rows:,} rows, meta.json says {meta.rows:,}, the dataset has {len(keys):,}")
    own: list[tuple[str, int]] = []
    bad, off, zero = 0, 0, 0
    try:  # a batch at a time: memory stays flat however many vectors the combo kept (every page is read)
        for batch in source.iter_batches(batch_size=65_536):
            batch_keys, array = _keys_and_array(pa.Table.from_batches([batch]))
            own += batch_keys
            finite = np.isfinite(array).all(axis=1)
            norms = np.linalg.norm(np.where(finite[:, None], array, 0.0), axis=1)
            unit = np.abs(norms - 1.0) <= UNIT_TOLERANCE
            bad += int((~finite).sum())
            off += int((finite & ~unit).sum())
            zero += int((finite & (norms == 0)).sum())
    except Exception as exc:  # noqa: BLE001 - as above
        return [*problems, _unreadable(path, exc)]
    if own != keys and len(own) == len(keys):
        at = next(i for i, (a, b) in enumerate(zip(own, keys, strict=True)) if a != b)
        how = "the same rows in another order" if sorted(own) == sorted(keys) else "other rows"
        problems.append(f"{VECTORS} row keys are not the dataset's ({how}; first at row {at}: {own[at]} against "
                        f"{keys[at]})")  # fmt: skip
    if bad:
        problems.append(f"{VECTORS} has {bad:,} vector(s) with NaN or inf values")
    if off:
        problems.append(f"{VECTORS} has {off:,} vector(s) not of unit length ({zero:,} all zero): not the encoder's")
    return problems


def _unreadable(path: Path, exc: Exception) -> str:
    return f"{VECTORS} does not open ({path}): {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"


def usable_vectors(folder: Path, meta: VectorsMeta, name: str) -> bool:
    """Whether a combo's kept vectors may stand in for encoding its variants (`evaluate --features embedding`): they
    pass `vectors_problems` against its meta.json and dataset.parquet. If not, one warning names the combo and why."""
    problems = vectors_problems(folder, meta, dataset_keys(Path(folder) / "dataset.parquet"))
    if problems:
        why = "; ".join(problems)
        notice(escape(f"combo {name}: its {VECTORS} is not used ({why}); its variants are encoded again"), "warning")
    return not problems
