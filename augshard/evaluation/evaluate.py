"""`augshard evaluate`: which combos make a classifier better, measured without leakage.

Folds are drawn over the run's originals (stratified by label, grouped by original, by `--group-col` and by
identical text). In each split a baseline classifier is trained on the training originals, and for each combo the
same classifier on those originals plus that combo's variants of them; every model is scored on the test
originals only, so no variant of a test original ever reaches training. Same splits, seeds and hyper-parameters
for every combo: the differences are paired (see gains.py for how they are judged)."""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from augshard.core.errors import ConfigError, OutputError
from augshard.core.fingerprint import sha
from augshard.evaluation.classifiers import BINDING, FALLBACK
from augshard.evaluation.findings import build_document, write_document
from augshard.evaluation.options import EvaluateOptions
from augshard.evaluation.pool import run_tasks
from augshard.evaluation.scoring import Candidate, Split, WorkerSetup, encode_with_cache, make_encoder
from augshard.exporting.export import normalise, select_combos
from augshard.exporting.model import FACTS, ExportFacts, ExportOptions, load_json
from augshard.runner.interrupts import unwinding_on_signals
from augshard.runner.lock import ReadLock, TargetLock
from augshard.shard.encoders import resolve_backend
from augshard.storage.data import file_sha256, read_table, row_keys
from augshard.storage.meta import ComboMeta, read_meta
from augshard.storage.outcome import ComboOutcome
from augshard.storage.outputs import check_evaluation_out
from augshard.storage.store import META
from augshard.storage.vectors import usable_vectors

__all__ = ["EvaluateOptions", "Originals", "evaluate", "make_splits"]  # EvaluateOptions: evaluation_options.py


@dataclass
class Originals:
    """The labelled originals, sorted by row key (so the input's row order changes nothing)."""

    keys: list[str]
    texts: list[str]
    labels: list[str]
    groups: list[int]
    dropped: Counter = field(default_factory=Counter)
    dropped_classes: dict[str, int] = field(default_factory=dict)
    blank_groups: int = 0  # rows whose `--group-col` value is blank: each its own group (see `blank`)

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.labels))


@dataclass
class Source:
    """Where the originals and candidates came from, for the document."""

    kind: str  # run | export
    path: str
    input_path: str
    input_sha256: str
    text_col: str
    evidence_col: str | None
    id_col: str | None
    plan_fingerprints: list[str]


# --- originals and candidates -----------------------------------------------------------------------------------


def _metas(options: EvaluateOptions) -> tuple[list[ComboOutcome], list[ComboMeta]]:
    """The combos to evaluate and their meta.json, chosen as `export` chooses them (export's refusals: a run with
    failed, stopped or half-written combos, combos on disk from more than one plan unless `--plan` chooses one),
    in combo id order."""
    choice = ExportOptions(
        to=options.output_root,  # not read: export's selection knows nothing of its target
        output_root=options.output_root, output_name=options.output_name, combos=options.combos,
        allow_incomplete=options.allow_incomplete, plan=options.plan,
    )  # fmt: skip
    ok, _, metas = select_combos(choice, verb="evaluate")
    chosen = sorted(zip(ok, metas, strict=True), key=lambda pair: pair[0].combo_id)
    return [e for e, _ in chosen], [m for _, m in chosen]


def _column(field_name: str, text_col: str, evidence_col: str | None) -> str:
    if field_name == "evidence":
        if evidence_col is None:
            raise ConfigError("--field evidence: the run had no evidence column (it augmented the whole text)")
        return evidence_col
    return text_col


def load_run(options: EvaluateOptions) -> tuple[Source, list[Candidate]]:
    outcomes, metas = _metas(options)
    first = metas[0].source
    inputs = {(m.source.path, m.source.sha256) for m in metas}
    if len(inputs) > 1:
        raise OutputError(f"{options.output_root}: its combos were made from {len(inputs)} different inputs; "
                          "rerun `augshard run` so that every combo comes from one")  # fmt: skip
    col = _column(options.field, first.text_col, first.evidence_col)
    candidates = []
    for outcome, meta in zip(outcomes, metas, strict=True):
        folder = options.output_root / outcome.combo_dir
        candidates.append(Candidate(
            outcome.methods, meta.combo_id, outcome.combo_dir, meta.k, tuple(meta.methods), meta.combo_fingerprint,
            (str(folder / "dataset.parquet"),), ("row_key", col), str(folder) if meta.vectors is not None else None,
        ))  # fmt: skip
    plans = sorted({m.plan_fingerprint for m in metas})
    source = Source("run", str(options.output_root), first.path, first.sha256, first.text_col, first.evidence_col,
                    first.id_col, plans)  # fmt: skip
    return source, candidates


def load_export(options: EvaluateOptions) -> tuple[Source, list[Candidate]]:
    folder = options.export_dir
    assert folder is not None
    facts_path = folder / FACTS
    try:
        raw = load_json(facts_path)
        facts = ExportFacts.from_json(raw)
        src = facts.source
        files = tuple(str(p) for p in facts.data_files(folder))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise OutputError(f"--export {folder}: not an `augshard export` folder ({facts_path} missing or unreadable: "
                          f"{exc})") from None  # fmt: skip
    col = _column(options.field, src["text_col"], src.get("evidence_col"))
    fingerprint = sha(raw)  # of the file's every key, as before ExportFacts
    methods = tuple(sorted(facts.methods or {}))
    candidate = Candidate("export", "export", folder.name, 0, methods, fingerprint, files, ("row_key", col))
    # This read `plan_fingerprints`, a key export.json never had (it writes `combo_plans`), so an export's source
    # has always listed no plans; kept as it was so evaluation.json does not change (see the i18-C report).
    plans: list[str] = []
    source = Source("export", str(folder), src["path"], src["sha256"], src["text_col"], src.get("evidence_col"),
                    src.get("id_col"), list(plans))  # fmt: skip
    return source, [candidate]


def load_originals(source: Source, options: EvaluateOptions) -> Originals:
    """Every input row with a text to classify and a label; rows of one original text, one `--group-col` value or
    one id share a group, and a group never straddles training and test."""
    path = source.input_path
    if not Path(path).is_file() or file_sha256(path) != source.input_sha256:
        raise OutputError(f"the run's input {path} is missing or changed since the run; evaluate needs it as it was")
    table = read_table(path)
    for name, flag in ((options.label_col, "--label-col"), (options.group_col, "--group-col")):
        if name is not None and name not in table.column_names:
            columns = ", ".join(table.column_names)
            raise ConfigError(f"{path}: column '{name}' ({flag}) not found; columns are: {columns}")
    col = _column(options.field, source.text_col, source.evidence_col)
    keys = row_keys(table, source.id_col, path)  # the run's own row keys: variants join back to them
    texts = table.column(col).to_pylist()
    labels = table.column(options.label_col).to_pylist()
    group_values = table.column(options.group_col).to_pylist() if options.group_col else [None] * len(texts)
    dropped: Counter = Counter()
    rows = []
    for i, (text, label) in enumerate(zip(texts, labels, strict=True)):
        if text is None or not str(text).strip():
            dropped["empty_text"] += 1
        elif label is None or str(label).strip() == "" or (isinstance(label, float) and math.isnan(label)):
            dropped["no_label"] += 1
        else:
            rows.append((keys[i], str(text), str(label), group_values[i]))
    rows.sort(key=lambda r: r[0])
    if not rows:
        raise ConfigError(f"{path}: no row has both a text and a '{options.label_col}' label")
    counts = Counter(r[2] for r in rows)
    rare = {c: n for c, n in sorted(counts.items()) if n < options.folds}
    if rare and not options.drop_rare_classes:
        shown = ", ".join(f"{c} ({n})" for c, n in list(rare.items())[:5])
        raise ConfigError(
            f"{path}: {len(rare)} class(es) of '{options.label_col}' have fewer rows than --folds {options.folds}: "
            f"{shown}; pass --drop-rare-classes to leave them out, or fewer --folds"
        )
    if rare:
        rows = [r for r in rows if r[2] not in rare]
        dropped["rare_class"] += sum(rare.values())
    if len({r[2] for r in rows}) < 2:
        only = rows[0][2] if rows else "none"
        raise ConfigError(f"{path}: '{options.label_col}' has one class ({only}); a classifier needs at least two")
    groups = _groups(rows)
    if len(set(groups)) < options.folds:
        by = f"'{options.group_col}' (--group-col) and identical texts" if options.group_col else "identical texts"
        raise ConfigError(
            f"{path}: the {len(rows)} originals form {len(set(groups))} group(s) by {by}, fewer than --folds "
            f"{options.folds}: every fold needs a group of its own; pass fewer --folds or another --group-col"
        )
    blanks = sum(blank(r[3]) for r in rows) if options.group_col else 0
    return Originals([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], groups, dropped, rare, blanks)


def blank(value: Any) -> bool:
    """A `--group-col` cell that names no group (missing, empty, white space, NaN): its row is a group of its own
    (or of its text's), never one group with every other blank row."""
    return (
        value is None
        or (isinstance(value, str) and not value.strip())
        or (isinstance(value, float) and math.isnan(value))
    )


def _groups(rows: list[tuple[str, str, str, Any]]) -> list[int]:
    """Connected rows (same normalised text, same group value) get one group number: union-find."""
    parent = list(range(len(rows)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple[str, str], int] = {}
    for i, (_, text, _, group) in enumerate(rows):
        for token in (("text", normalise(text)), ("group", str(group)) if not blank(group) else None):
            if token is None:
                continue
            j = first.setdefault(token, i)
            parent[find(i)] = find(j)
    roots: dict[int, int] = {}
    return [roots.setdefault(find(i), len(roots)) for i in range(len(rows))]


# --- splits -----------------------------------------------------------------------------------------------------


def make_splits(originals: Originals, options: EvaluateOptions) -> list[Split]:
    """folds x repeats stratified group splits; each smaller train size takes a stratified, nested subset of the
    split's training originals (the same originals at every size they fit in)."""
    import numpy as np
    from sklearn.model_selection import StratifiedGroupKFold

    n = len(originals.keys)
    splits = []
    for repeat in range(options.repeats):
        folds = StratifiedGroupKFold(options.folds, shuffle=True, random_state=options.seed + repeat)
        for fold, (train, test) in enumerate(folds.split(np.zeros(n), originals.labels, originals.groups)):
            for size in options.train_sizes:
                subset = _subsample(sorted(train.tolist()), size, originals, f"{options.seed}|{repeat}|{fold}")
                splits.append(Split(repeat, fold, size, subset, sorted(test.tolist())))
    return splits


def _subsample(train: list[int], size: float, originals: Originals, salt: str) -> list[int]:
    if size >= 1.0:
        return train
    by_class: dict[str, list[int]] = {}
    for i in train:
        by_class.setdefault(originals.labels[i], []).append(i)
    keep = []
    for members in by_class.values():
        members.sort(key=lambda i: hashlib.blake2b(f"{salt}|{originals.keys[i]}".encode()).digest())
        keep += members[: max(1, math.ceil(size * len(members)))]
    return sorted(keep)


# --- the whole evaluation ---------------------------------------------------------------------------------------


def encoder_spec(quality: dict[str, Any], model: str | None) -> dict[str, Any]:
    """The sentence encoder: `--embedding-model` (default: the bundled MiniLM) on the run's backend and device when
    it filtered by embedding, else on this machine's default CPU backend. Stored vectors are used only when their
    encoder's identity is this one's."""
    if quality.get("metric") == "embedding" and quality.get("backend"):
        return {"model": model, "backend": quality["backend"], "device": quality.get("device") or "cpu"}
    return {"model": model, "backend": resolve_backend("auto", "cpu"), "device": "cpu"}


def evaluate(options: EvaluateOptions, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Run the protocol, write evaluation.json (atomically) and return its document."""
    options.check()
    check_evaluation_out(options.destination, options.output_root, options.export_dir, options.cache_dir, options.force)
    # SIGTERM and SIGHUP unwind as Ctrl-C does: the workers end, the lock goes, the previous evaluation.json stays.
    with unwinding_on_signals():
        if options.export_dir is not None:
            with TargetLock(options.destination, "evaluate"):  # one evaluation writes an evaluation.json at a time
                return _evaluate(options, progress)
        _has_run(options)  # refused before any lock is taken in a folder that may not exist
        # No run, shard job or merge rewrites the combos meanwhile; one evaluation writes an evaluation.json at a time.
        with ReadLock(options.output_root, "evaluate"), TargetLock(options.destination, "evaluate"):
            return _evaluate(options, progress)


def _has_run(options: EvaluateOptions) -> None:
    """A merged manifest; or, with --plan, an output root (a run stopped before merging left shard manifests)."""
    manifest = options.output_root / options.output_name
    if not manifest.is_file() and not (options.plan and options.output_root.is_dir()):
        raise OutputError(
            f"no finished run in {options.output_root}: {manifest} is missing (run `augshard run`, or `merge`)"
        )


def _evaluate(options: EvaluateOptions, progress: Callable[[int, int], None] | None) -> dict[str, Any]:
    started = time.perf_counter()
    seconds: Counter = Counter()
    t0 = time.perf_counter()
    if options.export_dir is not None:
        source, candidates, quality = (*load_export(options), _export_quality(options.export_dir))
    else:
        source, candidates = load_run(options)
        quality = _run_quality(options, candidates)
    originals = load_originals(source, options)
    splits = make_splits(originals, options)
    seconds["load"] = time.perf_counter() - t0
    spec, vectors, tally = None, None, Counter()
    if "embedding" in options.features:
        t0 = time.perf_counter()
        spec = encoder_spec(quality, options.embedding_model)
        identity = make_encoder(spec).identity
        candidates = [_with_usable_vectors(c, identity, options.field, source) for c in candidates]
        cache_path = str(options.cache_dir / "evaluate.db")
        vectors, from_cache = encode_with_cache(originals.texts, spec, cache_path)
        tally.update(originals_from_cache=from_cache, originals_encoded=len(originals.texts) - from_cache)
        seconds["encode_originals"] = time.perf_counter() - t0
    setup = WorkerSetup(originals.texts, originals.labels, originals.keys, splits, options.features, vectors, spec,
                        str(options.cache_dir / "evaluate.db") if spec else None)  # fmt: skip
    workers = min(options.workers or os.cpu_count() or 1, len(candidates) + 1)
    results = run_tasks(setup, [None, *candidates], workers, progress)
    fits: Counter = Counter()
    for r in results:
        tally.update(r["vectors"])
        fits.update(r["fits"])
        seconds.update({f"workers_{k}": v for k, v in r["timing"].items()})
    if spec is not None:  # every count named, zeros included: "0 encoded" is the claim a stored run makes
        tally.update({k: 0 for k in ("stored", "from_cache", "encoded")})
    seconds["total"] = time.perf_counter() - started
    source_doc = {"kind": source.kind, "path": source.path,
                  "input": {"path": source.input_path, "sha256": source.input_sha256},
                  "plan_fingerprints": source.plan_fingerprints}  # fmt: skip
    protocol = {
        "label_col": options.label_col, "group_col": options.group_col, "field": options.field,
        "folds": options.folds, "repeats": options.repeats, "seed": options.seed,
        "train_sizes": list(options.train_sizes), "features": list(options.features), "classes": originals.classes,
        "originals": len(originals.keys), "groups": len(set(originals.groups)),
        "blank_group_rows": originals.blank_groups,
        "dropped_rows": dict(sorted(originals.dropped.items())), "dropped_classes": originals.dropped_classes,
    }  # fmt: skip
    doc = build_document(source_doc, protocol, splits, candidates, results)
    doc["run_info"] = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "workers": workers,
        "seconds": {k: round(v, 2) for k, v in sorted(seconds.items())},
        "vectors": dict(sorted(tally.items())),
    }
    if "tfidf" in options.features:  # which path fitted the TF-IDF models (classifiers.fit_ovr_logistic)
        doc["run_info"]["tfidf_fits"] = {path: fits[path] for path in (BINDING, FALLBACK)}
    write_document(options.destination, doc)
    return doc


def _run_quality(options: EvaluateOptions, candidates: list[Candidate]) -> dict[str, Any]:
    meta = read_meta(options.output_root / candidates[0].combo_dir / META)
    return {"metric": meta.quality.metric, "model": meta.quality.model, "backend": meta.quality.backend,
            "device": meta.quality.device}  # fmt: skip


def _export_quality(folder: Path) -> dict[str, Any]:
    return dict(ExportFacts.read(folder).quality or {})


def _with_usable_vectors(candidate: Candidate, identity: str, field_name: str, source: Source) -> Candidate:
    """Keep a combo's stored vectors only if they are this encoder's, of the text the classifier reads."""
    from dataclasses import replace

    if candidate.vectors is None:
        return candidate
    meta = read_meta(Path(candidate.vectors) / META).vectors
    column = _column(field_name, source.text_col, source.evidence_col)
    encoded = source.evidence_col if meta is not None and meta.field == "evidence" else source.text_col
    if meta is None or meta.encoder != identity or encoded != column:
        return replace(candidate, vectors=None)
    usable = usable_vectors(Path(candidate.vectors), meta, candidate.combo_dir)  # whole, else one warning
    return candidate if usable else replace(candidate, vectors=None)
