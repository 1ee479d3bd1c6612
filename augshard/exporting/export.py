"""`augshard export`: one training set from a finished run: every kept variant with its provenance, deduplicated
(exactly, or also near-duplicates by MinHash LSH), label flips dropped on request, in the Hugging Face datasets
layout, with a dataset card and export.json; written to a temporary folder and renamed into place, never over
anything it did not make, from one plan's combos only."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from augshard.core import columns as col
from augshard.core.errors import ConfigError, OutputError
from augshard.core.text import NEAR_PERMUTATIONS, minhash, normalise
from augshard.exporting.card import write_card
from augshard.exporting.model import ComboCount, Export, ExportFacts, ExportOptions
from augshard.runner.interrupts import Interrupted, unwinding_on_signals
from augshard.runner.lock import ReadLock, TargetLock
from augshard.storage import parquet_files
from augshard.storage.data import input_sha256, load_dataset
from augshard.storage.manifest import find_shard_manifests, read_manifest
from augshard.storage.meta import ComboMeta, read_meta
from augshard.storage.outcome import ComboOutcome, Status
from augshard.storage.outputs import Protected, check_output, run_inputs
from augshard.storage.store import META
from augshard.storage.temporaries import aside_path, move_folder_into_place, staging_folder, sweep

ROW_GROUP = 10_000
PART = re.compile(r"^train-(\d{5})-of-(\d{5})\.parquet$")


class ExportInterrupted(Interrupted):
    """SIGTERM or SIGHUP during an export (SLURM, `timeout`, a closed terminal): unwinds like Ctrl-C, so the
    staging folder is removed; the command exits 128 + the signal."""


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(normalise(text).encode("utf-8", "surrogatepass"), digest_size=8).digest())


def _methods_key(methods: str) -> str:
    """Methods joined by '+' in any order, as the combo names them (sorted)."""
    return "+".join(sorted(m.strip() for m in methods.split("+")))


def combo_names(entries: list[ComboOutcome]) -> dict[str, str]:
    """Every name `--combos` takes for a combo, to its id: the id, the folder name, and its methods as the card,
    the report and the manifest show them (`nlp_keyboard+nlp_ocr`, in any order)."""
    names: dict[str, str] = {}
    for e in entries:
        names.update({e.combo_id: e.combo_id, e.combo_dir: e.combo_id, _methods_key(e.methods): e.combo_id})
    return names


def select_combos(
    options: ExportOptions, verb: str = "export"
) -> tuple[list[ComboOutcome], list[ComboOutcome], list[ComboMeta]]:
    """The combos to export (sorted by k, then combo id: the order that decides which twin is kept) with their
    meta.json, and the ones left out. A run with failed, interrupted or half-written combos is refused unless
    allowed; combos on disk from more than one plan are refused unless `--plan` chooses one. `evaluate` chooses
    its combos here too (`verb` names the command in its refusals)."""
    root = options.output_root
    manifest, entries = _plan_entries(options)
    names = combo_names(entries)
    unknown = sorted(c for c in set(options.combos) if c not in names and _methods_key(c) not in names)
    if unknown:
        raise ConfigError(
            f"--combos: {', '.join(unknown)} not in {manifest} (give combo ids, folder names or methods joined by '+')"
        )
    wanted = {names.get(c) or names[_methods_key(c)] for c in options.combos}
    chosen = [e for e in entries if (not wanted or e.combo_id in wanted) and (not options.k or e.k in options.k)]
    metas = {e.combo_id: meta for e in chosen if e.ok and (meta := _meta(root, e)) is not None}
    bad = [e for e in chosen if e.status in (Status.FAILED, Status.INTERRUPTED) or (e.ok and e.combo_id not in metas)]
    if bad and not options.allow_incomplete:
        raise OutputError(
            f"{manifest}: {len(bad)} combo(s) failed, stopped or half-written ({_names(bad)}); rerun `augshard run` "
            f"to finish them, or pass --allow-incomplete to {verb} the others"
        )
    ok = [e for e in chosen if e.ok and e not in bad]
    foreign = _foreign(ok, metas)
    if foreign and not options.plan:
        plan_fingerprint = ok[0].plan_fingerprint
        others = sorted({metas[e.combo_id].plan_fingerprint for e in foreign})
        raise OutputError(
            f"{manifest}: the combos on disk come from more than one plan: {plan_fingerprint} (this manifest's, "
            f"{len(ok) - len(foreign)} combo(s)) and {', '.join(others)} ({len(foreign)} combo(s): {_names(foreign)}, "
            f"written by a later run that did not finish); rerun `augshard run` to finish one plan, or pass "
            f"--plan {plan_fingerprint} to {verb} this manifest's combos only"
        )
    # With --plan, a combo another plan wrote over is left out, and said so.
    gone = [dataclasses.replace(e, error=f"overwritten by plan {metas[e.combo_id].plan_fingerprint}") for e in foreign]
    ok = sorted((e for e in ok if e not in foreign), key=lambda e: (e.k, e.combo_id))
    if not ok:
        raise OutputError(f"{manifest}: no complete combo to {verb}")
    skipped = [e for e in chosen if e not in ok and e not in foreign and e.status is not Status.UNAVAILABLE]
    return ok, skipped + gone, [metas[e.combo_id] for e in ok]


def unavailable_combos(options: ExportOptions, plan_fingerprint: str) -> list[ComboOutcome]:
    """The combos of the exported plan that never ran (a method could not be built), for the card: those chosen
    by `--combos` / `--k`, or all."""
    _, entries = _plan_entries(options)
    names = combo_names(entries)
    wanted = {names.get(c) or names.get(_methods_key(c)) for c in options.combos}
    return [
        e
        for e in entries
        if e.status is Status.UNAVAILABLE
        and e.plan_fingerprint == plan_fingerprint
        and (not wanted or e.combo_id in wanted)
        and (not options.k or e.k in options.k)
    ]


def _names(entries: list[ComboOutcome]) -> str:
    return ", ".join(e.combo_dir for e in entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")


def _plan_entries(options: ExportOptions) -> tuple[Path, list[ComboOutcome]]:
    """The manifest to export from and its rows: the merged manifest, which must hold one plan; with `--plan`, the
    rows of that plan from the merged manifest or, for a run that stopped before merging, its shard manifests."""
    root = options.output_root
    final = root / options.output_name
    if not options.plan:
        if not final.is_file():
            raise OutputError(f"no finished run in {root}: {final} is missing (run `augshard run`, or `merge`)")
        entries = read_manifest(final)
        plans = sorted({e.plan_fingerprint for e in entries})
        if len(plans) > 1:
            raise OutputError(
                f"{final} mixes plans {', '.join(plans)}; rerun `augshard run`, or pass --plan with one of them"
            )
        return final, entries
    sources = [final] if final.is_file() else []
    sources += [path for _, shards in sorted(find_shard_manifests(root).items()) for _, path in sorted(shards.items())]
    if not sources:
        raise OutputError(f"no finished run in {root}: {final} is missing (run `augshard run`, or `merge`)")
    found: dict[str, list[str]] = {}
    merged: dict[str, ComboOutcome] = {}
    for path in sources:
        for e in read_manifest(path):
            found.setdefault(e.plan_fingerprint, []).append(path.name)
            prev = merged.get(e.combo_id)
            if e.plan_fingerprint == options.plan and (prev is None or (not prev.ok and e.ok)):
                merged[e.combo_id] = e
    if not merged:
        here = "; ".join(f"{fp} ({', '.join(sorted(set(names)))})" for fp, names in sorted(found.items()))
        raise ConfigError(f"--plan {options.plan}: no manifest in {root} lists that plan (plans here: {here})")
    where = final if final.is_file() and options.plan in {e.plan_fingerprint for e in read_manifest(final)} else root
    return where, list(merged.values())


def _meta(root: Path, e: ComboOutcome) -> ComboMeta | None:
    """The combo's meta.json when its folder is whole, else None (half-written)."""
    folder = root / e.combo_dir
    if not (folder / "dataset.parquet").is_file():
        return None
    try:
        return read_meta(folder / META)
    except (OSError, ValueError):
        return None


def _foreign(ok: list[ComboOutcome], metas: dict[str, ComboMeta]) -> list[ComboOutcome]:
    """Combos whose folder another plan wrote after the manifest's run: a combo the run computed carries its plan;
    one it resumed carries an earlier plan's, but the same settings (config fingerprint) as the run's own."""
    own = {metas[e.combo_id].config_fingerprint for e in ok if metas[e.combo_id].plan_fingerprint == e.plan_fingerprint}
    return [
        e
        for e in ok
        if metas[e.combo_id].plan_fingerprint != e.plan_fingerprint
        and not (e.resumed and (not own or metas[e.combo_id].config_fingerprint in own))
    ]


def check_target(options: ExportOptions, inputs: tuple[str, ...] = ()) -> None:
    """`--to` through the one output-path rule (`outputs.check_output`): it may not be, contain or sit inside the
    output root, the cache or the log folder, nor be a link or hold the run's input (`inputs`, and the inputs its
    meta.json files name); an existing one is replaced (`--force`) only when an earlier export made it."""
    folders = (("output root", options.output_root), ("cache folder", options.cache_dir),
               ("log folder", options.log_dir))  # fmt: skip
    found = (*(Path(p) for p in inputs), *run_inputs(options.output_root))
    check_output(options.to, "--to", Protected(found, folders), "export", force=options.force, folder=True)


def export(options: ExportOptions) -> ExportFacts:
    """Write the training set into a temporary folder beside `options.to` and rename it into place; returns its
    facts (export.json, typed: what the API returns)."""
    options.check()
    root = options.output_root
    try:
        check_target(options)
        if not root.is_dir():
            raise OutputError(
                f"no finished run in {root}: {root / options.output_name} is missing (run `augshard run`)"
            )
        with ReadLock(root), _leaving_no_trace():
            target = Path(os.path.abspath(options.to))  # `--to .` has no name to put a staging folder beside
            target.parent.mkdir(parents=True, exist_ok=True)
            with TargetLock(target):
                return _export_locked(options, target)
    except OSError as exc:
        # Nothing was written (the staging folder is gone): a user's to fix, as every export error (docs/cli.md).
        where = f" ({exc.filename})" if exc.filename else ""
        raise OutputError(f"export failed, nothing written: {exc.strerror or exc}{where}") from None


def _export_locked(options: ExportOptions, target: Path) -> ExportFacts:
    combos, skipped, metas = select_combos(options)
    check_target(options, tuple(sorted({m.source.path for m in metas})))
    result = Export(options, skipped=skipped, plan_fingerprint=combos[0].plan_fingerprint)
    result.unavailable = unavailable_combos(options, combos[0].plan_fingerprint)
    result.metas = metas
    if options.drop_label_flips and not any(m.label_check for m in result.metas):
        raise ConfigError("--drop-label-flips: this run has no label check; run it with --label-col COL first")
    sweep_leftovers(target)
    staging = staging_folder(target)  # an exclusive mkdir under a random name: nothing planted there is followed
    try:
        (staging / "data").mkdir()
        _write_rows(result, combos, staging / "data")

        done = write_card(result, staging)
        _swap_into_place(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return done


def _leaving_no_trace() -> contextlib.AbstractContextManager[None]:
    """SIGTERM and SIGHUP unwind the export as SIGINT does (ExportInterrupted), so every `finally` runs."""
    return unwinding_on_signals(ExportInterrupted)


def sweep_leftovers(target: Path) -> list[Path]:
    """Staging and replaced folders of exports to `target` whose process (on this host) is gone, in this version's
    names and the older `.<to>.augshard-export|old-<pid>~<host>` (`temporaries.sweep`: links removed, never
    followed)."""
    return sweep(target.parent, "folder", "export", base=target.name)


def _swap_into_place(staging: Path, target: Path) -> None:
    """An empty folder is replaced; an earlier export is moved aside, the new one renamed in, the old removed."""
    if target.is_dir() and not any(target.iterdir()):
        target.rmdir()
    move_folder_into_place(staging, target, aside_path(target))


def _write_rows(result: Export, combos: list[ComboOutcome], out: Path) -> None:
    """Stream every row group of every combo through the dedupe and the label filter into part files."""
    import pyarrow as pa

    options = result.options
    first = parquet_files.read_schema(options.output_root / combos[0].dataset_path)
    schema = first.insert(first.get_field_index(col.COMBO_ID) + 1, pa.field(col.K, pa.int32()))
    result.features = [(f.name, str(f.type)) for f in schema]
    dedupe = Dedupe(options.dedupe, options.near_threshold)
    label_col = next((m.label_check.label_col for m in result.metas if m.label_check), None)
    writer = PartWriter(out, schema, options.rows_per_file)
    text_col = result.metas[0].source.text_col
    span_col = result.metas[0].source.evidence_col or text_col  # what the near check compares (see Dedupe)
    dataset = _input(result.metas[0])
    result.input_rows, result.skipped_rows = dataset.table.num_rows, list(dataset.skipped_rows)
    if label_col:  # the labels of the whole file, rows no combo could augment included
        result.labels_before.update(dataset.table.column(label_col).to_pylist())
    for batch in _originals(dataset, result.metas[0], schema):
        dedupe.remember(batch.column(text_col).to_pylist(), batch.column(span_col).to_pylist())
        if options.include_originals:
            writer.write(batch)
            result.originals += batch.num_rows
            if label_col:
                result.labels_after.update(batch.column(label_col).to_pylist())
    for combo in combos:
        count = ComboCount(combo.combo_dir, combo.methods, combo.k)
        for batch in parquet_files.iter_batches(options.output_root / combo.dataset_path, ROW_GROUP):
            dataset.refuse_held_out(batch.column(col.ROW_KEY).to_pylist(), combo.combo_dir)
            keep = _keep(batch, dedupe, count, options, (text_col, span_col))
            table = pa.Table.from_batches([batch]).filter(pa.array(keep, pa.bool_()))
            table = table.add_column(schema.get_field_index("k"), "k", pa.array([combo.k] * table.num_rows, pa.int32()))
            writer.write(table.cast(schema))
            if label_col:
                result.labels_after.update(table.column(label_col).to_pylist())
        result.counts.append(count.done())
    result.files = writer.close()


def _keep(batch: Any, dedupe: Dedupe, count: ComboCount, options: ExportOptions, cols: tuple[str, str]) -> list[bool]:
    texts, spans = batch.column(cols[0]).to_pylist(), batch.column(cols[1]).to_pylist()
    agrees = batch.column(col.LABEL_AGREES).to_pylist() if col.LABEL_AGREES in batch.schema.names else None
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


def _input(meta: ComboMeta) -> Any:
    """The run's input, read again: it must be where the run read it, unchanged."""
    src = meta.source
    if not Path(src.path).is_file() or input_sha256(src.path) != src.sha256:
        raise OutputError(f"the run's input {src.path} is missing or changed since the run; the export needs it")
    return load_dataset(src.path, src.text_col, src.evidence_col, src.id_col, meta.split.rule if meta.split else None)


def _originals(dataset: Any, meta: ComboMeta, schema: Any) -> Iterator[Any]:
    """The run's usable input rows, shaped like the variants (k 0, variant 0, no similarity, no combo): the
    originals a variant must differ from, and the rows `--include-originals` writes (held-out rows of other splits
    too: originals only). A row no combo could augment (empty, or its evidence not found) is not one: the card lists
    each with its reason."""
    import pyarrow as pa

    src = meta.source
    usable = sorted([*dataset.rows, *dataset.held_out], key=lambda r: r.index) if dataset.held_out else dataset.rows
    for start in range(0, len(usable), ROW_GROUP):
        rows = usable[start : start + ROW_GROUP]
        records = dataset.table.take([r.index for r in rows]).to_pylist()
        for record, row in zip(records, rows, strict=True):
            if src.evidence_col:
                record[col.EVIDENCE_ORIGINAL], record[col.EVIDENCE_MATCH] = row.evidence, row.match
            else:
                record[col.TEXT_ORIGINAL] = row.text
            record |= {col.ROW_KEY: row.key, col.VARIANT: 0, col.SIMILARITY: None, col.COMBO_ID: None,
                       col.METHODS: None, col.K: 0}  # fmt: skip
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
        sketch = minhash(normalise(span))
        if self.lsh.query(sketch):
            return "near"
        self.lsh.insert(self._n, sketch)
        self._n += 1
        return ""


class PartWriter:
    """Rows into `train-NNNNN-of-MMMMM.parquet` files of `rows_per_file` rows (MMMMM known once all are written),
    in row groups of ROW_GROUP rows."""

    def __init__(self, out: Path, schema: Any, rows_per_file: int) -> None:
        self.out, self.schema, self.rows_per_file = out, schema, rows_per_file
        self._writer: Any = None
        self._rows_in_part = 0
        self._parts: list[Path] = []
        self._pending: list[Any] = []
        self._pending_rows = 0

    def write(self, table: Any) -> None:
        while table.num_rows:
            room = self.rows_per_file - self._rows_in_part - self._pending_rows
            self._pending.append(table.slice(0, room))
            self._pending_rows += min(room, table.num_rows)
            table = table.slice(room)
            if self._pending_rows >= ROW_GROUP or self._rows_in_part + self._pending_rows >= self.rows_per_file:
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
        if self._rows_in_part >= self.rows_per_file:
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
