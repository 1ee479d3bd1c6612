"""Input rows: read CSV/Parquet, validate columns and text, an input's identity, stable row keys, locate and splice
evidence."""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from augshard.core import columns as col
from augshard.core.errors import InputError, OutputError

try:  # difflib's SequenceMatcher compiled (Cython): the same blocks and ratios to the last bit, ~7x faster
    from cydifflib import SequenceMatcher
except ImportError:  # a platform without its wheel: the standard library's, slower, same results
    from difflib import SequenceMatcher

FUZZY_MIN_RATIO = 0.55
# difflib's ratio costs about len(a) * len(b): a pair past this many character pairs (two sentences of ~1,600
# characters each, about half a second) is not compared; such an evidence is matched exactly or not at all.
FUZZY_MAX_PAIRS = 2_500_000
# ... and a row's whole search is bounded too (a megabyte of sentences like its evidence would align each one): past
# this many character pairs aligned, plus characters counted by the cheap bounds, the row is skipped as
# `evidence_search_too_long` (docs/cli.md, "Long texts").
FUZZY_MAX_WORK = 50_000_000
_CSV_FIELD_LIMIT = 2**31 - 1  # the C long limit on every platform csv runs on
_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+[\"')\]]*|$)")
# An in-memory input written as Parquet (storage/inputs.py) says so in its schema's metadata: where it came from
# (dataframe, arrow, dataset). Its identity is then the hash of its content, not of its bytes, and its row keys hash
# the values as text, as a CSV of the same rows holds them (`as_text`).
ORIGIN_KEY = b"augshard.origin"
HASH_ROWS = 65_536  # the content hash reads this many rows at a time: the same slices, however the table is chunked


@dataclass(frozen=True)
class Row:
    """A usable input row: its stable key, its text, and the span of the text that gets augmented."""

    index: int
    key: str
    text: str
    start: int
    end: int
    match: str  # "exact", "fuzzy" (best sentence) or "whole" (no evidence column)

    @property
    def evidence(self) -> str:
        return self.text[self.start : self.end]


@dataclass
class Dataset:
    """The input table as read, plus the rows augshard can use and the ones it skips (with reasons)."""

    path: str
    sha256: str  # the file's; an in-memory input's: its content's (`input_sha256`)
    table: Any  # pyarrow.Table of the input columns, in input order
    rows: list[Row]
    skipped: Counter = field(default_factory=Counter)
    skipped_rows: list[tuple[int, str, str]] = field(default_factory=list)  # (index, key, reason) of each skipped row
    # Usable rows outside the augmented split (--split-col): carried as originals, never varied; counted in
    # `skipped` as NOT_AUGMENTED, not listed in `skipped_rows` (they are not lost, only held out).
    held_out: list[Row] = field(default_factory=list)

    @functools.cached_property
    def held_out_keys(self) -> set[str]:
        return {row.key for row in self.held_out}

    def refuse_held_out(self, keys: list[str], where: str) -> None:
        """Variants of held-out rows (`where`'s `keys`) never go on: the run made none, and this holds it."""
        if leaked := self.held_out_keys.intersection(keys):
            raise OutputError(
                f"{where} has variants of {len(leaked)} row(s) outside the run's augmented split (e.g. "
                f"{sorted(leaked)[0]}): nothing written"
            )

    @property
    def rows_skipped(self) -> int:
        return sum(self.skipped.values())

    @property
    def origin(self) -> str:
        """ "file", or what an in-memory input was (dataframe, arrow, dataset): `origin_of`."""
        return origin_of(self.table)

    @property
    def key_rule(self) -> str:
        """What its row keys hash without an id column: the "values" as read, or (in-memory) their "text"."""
        return "values" if self.origin == "file" else "text"


def origin_of(table: Any) -> str:
    """What a table read from an input was: "file", or the in-memory kind its Parquet copy records."""
    meta = table.schema.metadata or {}
    return meta[ORIGIN_KEY].decode() if ORIGIN_KEY in meta else "file"


def content_sha256(table: Any) -> str:
    """The identity of an in-memory input: a hash of its columns' names and types and of every value in order,
    never of pandas' index, the schema's other metadata, the chunking, or how the Parquet bytes come out."""
    digest = hashlib.sha256()
    digest.update(json.dumps([[f.name, str(f.type)] for f in table.schema]).encode())
    for start in range(0, table.num_rows, HASH_ROWS):
        for column in table.slice(start, HASH_ROWS).columns:
            values = json.dumps(column.to_pylist(), default=str, ensure_ascii=False)
            digest.update(values.encode())
    return digest.hexdigest()


def input_sha256(path: str | Path, table: Any = None) -> str:
    """An input's identity, what meta.json and the fingerprints record: a file's sha256, or an in-memory input's
    content hash (`content_sha256`) when the file is augshard's Parquet copy of one. `table`: the file, read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if table is None and Path(path).suffix.lower() in (".parquet", ".pq"):
        try:
            schema = pq.read_schema(path)
        except (OSError, pa.ArrowException):  # not Parquet after all: its bytes are its identity
            return file_sha256(path)
        table = read_table(path) if ORIGIN_KEY in (schema.metadata or {}) else None
    if table is not None and origin_of(table) != "file":
        return content_sha256(table)
    return file_sha256(path)


def as_text(value: Any) -> str:
    """A value as a CSV of it holds it (what pandas' to_csv writes): missing is empty, everything else its str."""
    return "" if _is_missing(value) else str(value)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_table(path: str | Path) -> Any:
    """Read CSV (every column as text, exactly as written) or Parquet into a pyarrow Table."""
    import pyarrow as pa

    path = Path(path)
    if not path.exists():
        raise InputError(f"input file not found: {path}")
    if path.is_dir():
        raise InputError(f"input is a directory, not a file: {path}")
    if path.stat().st_size == 0:
        raise InputError(f"input file is empty: {path}")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
    elif _is_parquet(path):
        raise InputError(f"{path}: a Parquet file, read as CSV for its '{suffix}' suffix; rename it to .parquet")
    else:
        table = _read_csv(path)
    if table.num_rows == 0:
        raise InputError(f"{path}: has a header but no data rows")
    return table


def _is_parquet(path: Path) -> bool:
    """Parquet's magic bytes: `PAR1` at both ends."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
            fh.seek(-4, 2)
            return head == b"PAR1" and fh.read(4) == b"PAR1"
    except OSError:
        return False


def _read_csv(path: Path) -> Any:
    import pyarrow as pa

    # The csv module refuses fields over 128 KiB by default; a long document is one field, and must be read.
    csv.field_size_limit(_CSV_FIELD_LIMIT)
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if not header:
                raise InputError(f"input file is empty: {path}")
            body = list(reader)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path}: not UTF-8 text (invalid byte at offset {exc.start}); re-save the file as UTF-8"
        ) from None
    except csv.Error as exc:
        raise InputError(f"{path}: malformed CSV ({exc})") from None
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise InputError(f"{path}: duplicate column name(s) {', '.join(dupes)}")
    columns: dict[str, list[str | None]] = {h: [] for h in header}
    for line_no, record in enumerate(body, start=2):
        if not record:
            continue
        if len(record) > len(header):
            raise InputError(f"{path}: row {line_no} has {len(record)} fields, the header has {len(header)}")
        record = record + [None] * (len(header) - len(record))  # type: ignore[list-item]
        for name, value in zip(header, record, strict=True):
            columns[name].append(value)
    return pa.table({h: pa.array(v, type=pa.string()) for h, v in columns.items()})


def require_column(table: Any, name: str | None, flag: str, path: str) -> None:
    if name is not None and name not in table.column_names:
        raise InputError(f"{path}: column '{name}' ({flag}) not found; columns are: {', '.join(table.column_names)}")


def check_reserved_columns(table: Any, path: str, flags: dict[str, str | None]) -> None:
    """Refuse an input column named like one augshard adds (`columns.RESERVED`): the output would hold it twice.
    `flags`: the flag that names each input column (--text-col: 'text', ...), said in the rename to make."""
    clashes = [name for name in table.column_names if name in col.RESERVED]
    if not clashes:
        return
    name, new = clashes[0], f"input_{clashes[0]}"
    while new in table.column_names:
        new = f"input_{new}"
    flag = next((f for f, value in flags.items() if value == name), None)
    also = f" and pass {flag} {new}" if flag else ""
    more = f" (so are {', '.join(repr(c) for c in clashes[1:])})" if len(clashes) > 1 else ""
    raise InputError(
        f"{path}: column '{name}' has the name of a column augshard adds to its output{more}; rename it in the "
        f"input (e.g. to '{new}'){also}. Reserved: {', '.join(col.RESERVED)}"
    )


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def load_dataset(
    path: str, text_col: str, evidence_col: str | None, id_col: str | None, split: Split | None = None
) -> Dataset:
    """Read the input, check its columns, give every row a stable key and find what to augment (with `split`: only
    the rows of its augmented values; the other usable rows are `held_out`)."""
    import pyarrow as pa

    table = read_table(path)
    columns = ((text_col, "--text-col"), (evidence_col, "--evidence-col"), (id_col, "--id-col"))
    for name, flag in (*columns, (split.column if split else None, "--split-col")):
        require_column(table, name, flag, path)
    for name, flag in ((text_col, "--text-col"), (evidence_col, "--evidence-col")):
        if name is not None and not (
            pa.types.is_string(table.schema.field(name).type) or pa.types.is_large_string(table.schema.field(name).type)
        ):
            raise InputError(f"{path}: column '{name}' ({flag}) holds {table.schema.field(name).type}, not text")
    texts = table.column(text_col).to_pylist()
    evidences = table.column(evidence_col).to_pylist() if evidence_col else None
    keys = row_keys(table, id_col, path)
    rows: list[Row] = []
    skipped: Counter = Counter()
    skipped_rows: list[tuple[int, str, str]] = []
    for i, text in enumerate(texts):
        reason = ""
        if _is_missing(text) or not str(text).strip():
            reason = "empty_text"
        elif evidences is None:
            rows.append(Row(i, keys[i], text, 0, len(text), "whole"))
            continue
        elif _is_missing(evidences[i]) or not str(evidences[i]).strip():
            reason = "empty_evidence"
        else:
            try:
                located = locate_evidence(text, evidences[i])
            except EvidenceSearchTooLong:
                located, reason = None, "evidence_search_too_long"
            if located is not None:
                rows.append(Row(i, keys[i], text, *located))
                continue
            reason = reason or "evidence_not_found"
        skipped[reason] += 1
        skipped_rows.append((i, keys[i], reason))
    dataset = Dataset(path=str(path), sha256=input_sha256(path, table), table=table, rows=rows, skipped=skipped,
                      skipped_rows=skipped_rows)  # fmt: skip
    return split.hold_out(dataset) if split else dataset


NOT_AUGMENTED = "not_augmented_split"


@dataclass(frozen=True)
class Split:
    """The user's own split (--split-col, --augment-split): which rows may be augmented."""

    column: str
    augmented: tuple[str, ...]

    @classmethod
    def of(cls, column: str | None, augmented: tuple[str, ...] | list[str]) -> Split | None:
        """The split of a run's settings (or a meta.json's): None without a split column."""
        return cls(column, tuple(augmented)) if column else None

    def hold_out(self, dataset: Dataset) -> Dataset:
        """Keep the rows of the augmented values in `rows`, move the others to `held_out`. A value no row has is an
        InputError (a misspelt `--augment-split` would otherwise augment nothing, or hold nothing out)."""
        values = [_split_value(v) for v in dataset.table.column(self.column).to_pylist()]
        missing = [v for v in self.augmented if v not in set(values)]
        if missing:
            found = ", ".join(sorted({v for v in values if v is not None})[:10]) or "none"
            raise InputError(
                f"{dataset.path}: no row has {self.column} = {', '.join(missing)} (--augment-split); values: {found}"
            )
        wanted = set(self.augmented)
        held = [r for r in dataset.rows if values[r.index] not in wanted]
        dataset.rows = [r for r in dataset.rows if values[r.index] in wanted]
        dataset.held_out = held
        if held:
            dataset.skipped[NOT_AUGMENTED] += len(held)
        return dataset


def _split_value(value: Any) -> str | None:
    """A split value as text, as --augment-split names it (a Parquet column of ints reads as "1")."""
    return None if _is_missing(value) else str(value).strip()


def row_keys(table: Any, id_col: str | None, path: str) -> list[str]:
    """Keys from the id column, or a hash of the row's content: never the row's position. An in-memory input's
    values are hashed as text (`as_text`), so its rows get the keys (and the variants) of the same rows in a CSV."""
    if id_col is not None:
        ids = table.column(id_col).to_pylist()
        keys = []
        for n, value in enumerate(ids, start=1):
            if _is_missing(value) or str(value).strip() == "":
                raise InputError(f"{path}: data row {n} has no value in id column '{id_col}'")
            keys.append(str(value))
        counts = Counter(keys)
        dupes = [k for k, c in counts.items() if c > 1]
        if dupes:
            shown = ", ".join(repr(d) for d in dupes[:5])
            raise InputError(f"{path}: id column '{id_col}' has duplicate values ({shown}); ids must be unique")
        return keys
    names = sorted(table.column_names)
    columns = {n: table.column(n).to_pylist() for n in names}
    if origin_of(table) != "file":
        columns = {n: [as_text(v) for v in values] for n, values in columns.items()}
    seen: Counter = Counter()
    keys = []
    for i in range(table.num_rows):
        blob = json.dumps([[n, columns[n][i]] for n in names], default=str, ensure_ascii=False)
        digest = hashlib.sha1(blob.encode()).hexdigest()[:16]
        # Identical rows are told apart by occurrence, which reordering other rows does not change.
        keys.append(digest if seen[digest] == 0 else f"{digest}-{seen[digest]}")
        seen[digest] += 1
    return keys


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Sentence boundaries (start, end) with surrounding whitespace trimmed."""
    spans = []
    for m in _SENTENCE.finditer(text):
        start, end = m.span()
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start:
            spans.append((start, end))
    return spans


class EvidenceSearchTooLong(Exception):
    """The fuzzy search for a row's evidence went past FUZZY_MAX_WORK: the row is skipped with this reason."""


def locate_evidence(text: str, evidence: str) -> tuple[int, int, str] | None:
    """Exact substring first; else the sentence most similar to the evidence, if its ratio is ≥ 0.55.
    EvidenceSearchTooLong when that search would cost more than FUZZY_MAX_WORK."""
    evidence = evidence.strip()
    at = text.find(evidence)
    if at >= 0:
        return at, at + len(evidence), "exact"
    best, best_ratio = None, FUZZY_MIN_RATIO
    target = evidence.lower()
    work = 0
    for start, end in sentence_spans(text):
        if (end - start) * len(target) > FUZZY_MAX_PAIRS:
            continue
        matcher = SequenceMatcher(None, text[start:end].lower(), target, autojunk=False)
        # Upper bounds of the ratio, cheap to compute: a sentence that cannot reach the best is never aligned.
        if matcher.real_quick_ratio() < best_ratio:
            continue
        work += end - start + len(target)
        if matcher.quick_ratio() < best_ratio:
            continue
        work += (end - start) * len(target)
        if work > FUZZY_MAX_WORK:
            raise EvidenceSearchTooLong(f"over {FUZZY_MAX_WORK:,} character pairs")
        ratio = matcher.ratio()
        if ratio >= best_ratio and (best is None or ratio > best_ratio):
            best, best_ratio = (start, end), ratio
    if best is None:
        return None
    return best[0], best[1], "fuzzy"


def splice(text: str, start: int, end: int, replacement: str) -> str:
    """Put an augmented evidence back; everything outside [start, end) stays byte-identical."""
    return text[:start] + replacement + text[end:]
