"""`augshard export`: one training set from a finished run: every kept variant with its provenance, deduplicated
(exactly, or also near-duplicates by MinHash LSH), label flips dropped on request, in the Hugging Face datasets
layout, with a dataset card and export.json; written to a temporary folder and renamed into place."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from augshard.errors import ConfigError, OutputError
from augshard.manifest import read_manifest
from augshard.outcome import ComboOutcome, Status
from augshard.store import META, ComboMeta, read_meta

DEDUPE_MODES = ("none", "exact", "near")
NEAR_PERMUTATIONS = 128
SHINGLE = 5  # characters per shingle of the near-duplicate check
ROW_GROUP = 10_000
PART = re.compile(r"^train-(\d{5})-of-(\d{5})\.parquet$")


@dataclass(frozen=True)
class ExportOptions:
    to: Path
    output_root: Path = Path("data/processed/augsets")
    output_name: str = "manifest_final.csv"
    dedupe: str = "exact"
    near_threshold: float = 0.9
    drop_label_flips: bool = False
    include_originals: bool = False
    combos: tuple[str, ...] = ()  # combo ids or folder names; empty: every ok combo (or those of `k`)
    k: tuple[int, ...] = ()
    shard_size: int = 500_000
    allow_incomplete: bool = False
    force: bool = False
    chosen_by: str = ""  # how the combos were chosen, when not by the user (`--best`, `--min-gain`): for the card

    def check(self) -> None:
        if self.dedupe not in DEDUPE_MODES:
            raise ConfigError(f"--dedupe must be one of {', '.join(DEDUPE_MODES)}, got '{self.dedupe}'")
        if not 0.0 < self.near_threshold <= 1.0:
            raise ConfigError(f"--near-threshold must be in (0, 1], got {self.near_threshold}")
        if self.shard_size < 1:
            raise ConfigError(f"--shard-size must be at least 1 row, got {self.shard_size}")
        if self.combos and self.k:
            raise ConfigError("--combos and --k both select combos: give one of them")


@dataclass
class ComboCount:
    """One combo's rows through the export."""

    combo_dir: str
    methods: str
    k: int
    rows: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    label_flips: int = 0

    @property
    def kept(self) -> int:
        return self.rows - self.exact_duplicates - self.near_duplicates - self.label_flips


@dataclass
class Export:
    """What an export made: its counts, for the card, export.json and the command's summary."""

    options: ExportOptions
    metas: list[ComboMeta] = field(default_factory=list)
    counts: list[ComboCount] = field(default_factory=list)
    originals: int = 0  # rows of the input written (--include-originals)
    files: list[str] = field(default_factory=list)
    features: list[tuple[str, str]] = field(default_factory=list)
    labels_before: Counter = field(default_factory=Counter)
    labels_after: Counter = field(default_factory=Counter)
    skipped: list[ComboOutcome] = field(default_factory=list)  # not ok, left out with --allow-incomplete

    @property
    def rows(self) -> int:
        return self.originals + sum(c.kept for c in self.counts)


def normalise(text: str) -> str:
    """What two texts must share to be exact duplicates: Unicode NFKC, case folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(normalise(text).encode("utf-8", "surrogatepass"), digest_size=8).digest())


def select_combos(options: ExportOptions) -> tuple[list[ComboOutcome], list[ComboOutcome]]:
    """The manifest's combos to export (sorted by k, then combo id: the order that decides which twin is kept),
    and the ones left out; a run with failed, interrupted or half-written combos is refused unless allowed."""
    root = options.output_root
    manifest = root / options.output_name
    if not manifest.is_file():
        raise OutputError(f"no finished run in {root}: {manifest} is missing (run `augshard run`, or `merge`)")
    entries = read_manifest(manifest)
    wanted = set(options.combos)
    known = {e.combo_id for e in entries} | {e.combo_dir for e in entries}
    unknown = sorted(wanted - known)
    if unknown:
        raise ConfigError(f"--combos: {', '.join(unknown)} not in {manifest}")
    chosen = [
        e
        for e in entries
        if (not wanted or e.combo_id in wanted or e.combo_dir in wanted) and (not options.k or e.k in options.k)
    ]
    bad = [e for e in chosen if e.status in (Status.FAILED, Status.INTERRUPTED) or (e.ok and not _whole(root, e))]
    if bad and not options.allow_incomplete:
        names = ", ".join(e.combo_dir for e in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise OutputError(
            f"{manifest}: {len(bad)} combo(s) failed, stopped or half-written ({names}); rerun `augshard run` to "
            "finish them, or pass --allow-incomplete to export the others"
        )
    ok = sorted((e for e in chosen if e.ok and e not in bad), key=lambda e: (e.k, e.combo_id))
    if not ok:
        raise OutputError(f"{manifest}: no complete combo to export")
    return ok, [e for e in chosen if e not in ok and e.status is not Status.UNAVAILABLE]


def _whole(root: Path, e: ComboOutcome) -> bool:
    folder = root / e.combo_dir
    return (folder / "dataset.parquet").is_file() and (folder / META).is_file()


def export(options: ExportOptions) -> Export:
    """Write the training set into a temporary folder beside `options.to` and rename it into place."""
    options.check()
    target = options.to
    if target.exists() and (not target.is_dir() or any(target.iterdir())) and not options.force:
        raise OutputError(f"{target} exists and is not empty; choose another --to, or pass --force to replace it")
    combos, skipped = select_combos(options)
    result = Export(options, skipped=skipped)
    result.metas = [read_meta(options.output_root / c.combo_dir / META) for c in combos]
    if options.drop_label_flips and not any(m.label_check for m in result.metas):
        raise ConfigError("--drop-label-flips: this run has no label check; run it with --label-col COL first")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.augshard-export-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        (staging / "data").mkdir(parents=True)
        _write_rows(result, combos, staging / "data")
        from augshard.card import write_card

        write_card(result, staging)
        _swap_into_place(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return result


def _swap_into_place(staging: Path, target: Path) -> None:
    if target.exists():
        old = target.with_name(f".{target.name}.augshard-old-{os.getpid()}")
        target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(target)


def _write_rows(result: Export, combos: list[ComboOutcome], out: Path) -> None:
    """Stream every row group of every combo through the dedupe and the label filter into part files."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    options = result.options
    first = pq.read_schema(options.output_root / combos[0].dataset_path)
    schema = first.insert(first.get_field_index("combo_id") + 1, pa.field("k", pa.int32()))
    result.features = [(f.name, str(f.type)) for f in schema]
    dedupe = Dedupe(options.dedupe, options.near_threshold)
    label_col = next((m.label_check.label_col for m in result.metas if m.label_check), None)
    writer = PartWriter(out, schema, options.shard_size)
    text_col = result.metas[0].source.text_col
    span_col = result.metas[0].source.evidence_col or text_col  # what the near check compares (see Dedupe)
    for batch in _originals(result.metas[0], schema):
        dedupe.remember(batch.column(text_col).to_pylist(), batch.column(span_col).to_pylist())
        if options.include_originals:
            writer.write(batch)
            result.originals += batch.num_rows
        if label_col:
            result.labels_before.update(batch.column(label_col).to_pylist())
    for combo in combos:
        count = ComboCount(combo.combo_dir, combo.methods, combo.k)
        for batch in pq.ParquetFile(options.output_root / combo.dataset_path).iter_batches(ROW_GROUP):
            keep = _keep(batch, dedupe, count, options, (text_col, span_col))
            table = pa.Table.from_batches([batch]).filter(pa.array(keep, pa.bool_()))
            table = table.add_column(schema.get_field_index("k"), "k", pa.array([combo.k] * table.num_rows, pa.int32()))
            writer.write(table.cast(schema))
            if label_col:
                result.labels_after.update(table.column(label_col).to_pylist())
        result.counts.append(count)
    if options.include_originals and label_col:
        result.labels_after.update(result.labels_before)
    result.files = writer.close()


def _keep(batch: Any, dedupe: Dedupe, count: ComboCount, options: ExportOptions, cols: tuple[str, str]) -> list[bool]:
    texts, spans = batch.column(cols[0]).to_pylist(), batch.column(cols[1]).to_pylist()
    agrees = batch.column("label_agrees").to_pylist() if "label_agrees" in batch.schema.names else None
    keep = []
    for i, text in enumerate(texts):
        count.rows += 1
        if options.drop_label_flips and agrees is not None and agrees[i] is False:
            count.label_flips += 1
            keep.append(False)
            continue
        verdict = dedupe.check(text, spans[i])
        if verdict == "exact":
            count.exact_duplicates += 1
        elif verdict == "near":
            count.near_duplicates += 1
        keep.append(verdict == "")
    return keep


def _originals(meta: ComboMeta, schema: Any) -> Iterator[Any]:
    """The run's input rows, shaped like the variants (k 0, variant 0, no similarity, no combo): the originals a
    variant must differ from, and the rows `--include-originals` writes."""
    import pyarrow as pa

    from augshard.data import file_sha256, load_dataset

    src = meta.source
    if not Path(src.path).is_file() or file_sha256(src.path) != src.sha256:
        raise OutputError(f"the run's input {src.path} is missing or changed since the run; the export needs it")
    dataset = load_dataset(src.path, src.text_col, src.evidence_col, src.id_col)
    for start in range(0, len(dataset.rows), ROW_GROUP):
        rows = dataset.rows[start : start + ROW_GROUP]
        records = dataset.table.take([r.index for r in rows]).to_pylist()
        for record, row in zip(records, rows, strict=True):
            if src.evidence_col:
                record.update(evidence_original=row.evidence, evidence_match=row.match)
            else:
                record["text_original"] = row.text
            record.update(row_key=row.key, variant=0, similarity=None, combo_id=None, methods=None, k=0)
        yield pa.Table.from_pylist(records, schema=schema)


class Dedupe:
    """Which rows are duplicates of a row seen before: none; exact (the same normalised text); or near, also a
    MinHash estimate of the Jaccard similarity of their augmented spans' character 5-grams at or above the threshold
    (datasketch's LSH index). The span is the evidence when there is one: a variant of a long post differs from its
    original and from its siblings in one sentence, so whole texts would all look alike; the text otherwise."""

    def __init__(self, mode: str, threshold: float) -> None:
        self.mode = mode
        self.seen: set[int] = set()
        self.lsh: Any = None
        if mode == "near":
            from datasketch import MinHashLSH

            self.lsh = MinHashLSH(threshold=threshold, num_perm=NEAR_PERMUTATIONS)
        self._n = 0

    def remember(self, texts: list[str], spans: list[str]) -> None:
        """The originals: every variant must differ from them too."""
        for text, span in zip(texts, spans, strict=True):
            self.check(text, span)

    def check(self, text: str, span: str) -> str:
        """'' for a new text (now remembered), else 'exact' or 'near'."""
        if self.mode == "none":
            return ""
        digest = _digest(text)
        if digest in self.seen:
            return "exact"
        self.seen.add(digest)
        if self.lsh is None:
            return ""
        sketch = _minhash(normalise(span))
        if self.lsh.query(sketch):
            return "near"
        self.lsh.insert(self._n, sketch)
        self._n += 1
        return ""


def _minhash(text: str) -> Any:
    from datasketch import LeanMinHash, MinHash

    shingles = {text[i : i + SHINGLE] for i in range(max(1, len(text) - SHINGLE + 1))}
    sketch = MinHash(num_perm=NEAR_PERMUTATIONS, seed=1)
    sketch.update_batch(s.encode("utf-8", "surrogatepass") for s in sorted(shingles))
    return LeanMinHash(sketch)


class PartWriter:
    """Rows into `train-NNNNN-of-MMMMM.parquet` files of `shard_size` rows (MMMMM known once all are written),
    in row groups of ROW_GROUP rows."""

    def __init__(self, out: Path, schema: Any, shard_size: int) -> None:
        self.out, self.schema, self.shard_size = out, schema, shard_size
        self._writer: Any = None
        self._rows_in_part = 0
        self._parts: list[Path] = []
        self._pending: list[Any] = []
        self._pending_rows = 0

    def write(self, table: Any) -> None:
        while table.num_rows:
            room = self.shard_size - self._rows_in_part - self._pending_rows
            self._pending.append(table.slice(0, room))
            self._pending_rows += min(room, table.num_rows)
            table = table.slice(room)
            if self._pending_rows >= ROW_GROUP or self._rows_in_part + self._pending_rows >= self.shard_size:
                self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self._pending_rows:
            return
        if self._writer is None:
            path = self.out / f"part-{len(self._parts):05d}.parquet"
            self._parts.append(path)
            self._writer = pq.ParquetWriter(path, self.schema, compression="zstd")
        self._writer.write_table(pa.concat_tables(self._pending), row_group_size=ROW_GROUP)
        self._rows_in_part += self._pending_rows
        self._pending, self._pending_rows = [], 0
        if self._rows_in_part >= self.shard_size:
            self._writer.close()
            self._writer, self._rows_in_part = None, 0

    def close(self) -> list[str]:
        import pyarrow.parquet as pq

        self._flush()
        if self._writer is not None:
            self._writer.close()
        if not self._parts:  # nothing kept: one empty part, so the card's data_files still match a file
            path = self.out / "part-00000.parquet"
            pq.ParquetWriter(path, self.schema, compression="zstd").close()
            self._parts.append(path)
        names = []
        for n, path in enumerate(self._parts):
            name = f"train-{n:05d}-of-{len(self._parts):05d}.parquet"
            path.rename(self.out / name)
            names.append(f"data/{name}")
        return names
