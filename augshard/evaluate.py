"""`augshard evaluate`: which combos make a classifier better, measured without leakage.

Folds are drawn over the run's originals (stratified by label, grouped by original, by `--group-col` and by
identical text). In each split a baseline classifier is trained on the training originals, and for each combo the
same classifier on those originals plus that combo's variants of them; every model is scored on the test
originals only, so no variant of a test original ever reaches training. Same splits, seeds and hyper-parameters
for every combo: the differences are paired (see gains.py for how they are judged)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from augshard.classifiers import (
    FEATURES,
    EmbeddingSettings,
    TfidfSettings,
    TfidfSpace,
    fit_predict_embedding,
    fit_predict_tfidf,
    settings_document,
)
from augshard.data import file_sha256, read_table, row_keys
from augshard.errors import ConfigError, OutputError
from augshard.export import normalise
from augshard.gains import Gain, holm, mean_std, paired_gain, verdict
from augshard.manifest import read_manifest
from augshard.outcome import ComboOutcome, Status
from augshard.store import META, ComboMeta, read_meta, read_vectors

EVALUATION = "evaluation.json"
SCHEMA_VERSION = 1
FIELDS = ("text", "evidence")


@dataclass(frozen=True)
class EvaluateOptions:
    label_col: str
    output_root: Path = Path("data/processed/augsets")
    output_name: str = "manifest_final.csv"
    group_col: str | None = None
    folds: int = 5
    repeats: int = 1
    features: tuple[str, ...] = ("tfidf",)
    train_sizes: tuple[float, ...] = (1.0,)
    combos: tuple[str, ...] = ()
    export_dir: Path | None = None  # evaluate an `augshard export` as a whole instead of the run's combos
    field: str = "text"  # what the classifier reads: the text column, or the evidence span
    seed: int = 0
    num_shards: int | None = None  # worker processes; None: one per CPU core
    allow_incomplete: bool = False
    drop_rare_classes: bool = False
    cache_dir: Path = Path("data/cache")
    embedding_model: str | None = None  # a sentence-transformers directory; None: the bundled MiniLM
    out: Path | None = None  # None: evaluation.json in the output root (or the export folder)

    def check(self) -> None:
        if self.folds < 2:
            raise ConfigError(f"--folds must be at least 2, got {self.folds}")
        if self.repeats < 1:
            raise ConfigError(f"--repeats must be at least 1, got {self.repeats}")
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown or not self.features:
            raise ConfigError(f"--features must be tfidf, embedding or both, got '{','.join(self.features)}'")
        if not self.train_sizes or any(not 0.0 < s <= 1.0 for s in self.train_sizes):
            raise ConfigError(f"--train-sizes are fractions in (0, 1], got {list(self.train_sizes)}")
        if self.field not in FIELDS:
            raise ConfigError(f"--field must be text or evidence, got '{self.field}'")
        if self.num_shards is not None and self.num_shards < 1:
            raise ConfigError(f"--num-shards must be at least 1 (or 'auto'), got {self.num_shards}")

    @property
    def destination(self) -> Path:
        return self.out or (self.export_dir or self.output_root) / EVALUATION


@dataclass(frozen=True)
class Candidate:
    """What is compared with the baseline: one combo of the run, or a whole export."""

    name: str  # methods joined by '+', or `export`
    combo_id: str
    combo_dir: str
    k: int
    methods: tuple[str, ...]
    fingerprint: str
    files: tuple[str, ...]  # its Parquet files
    columns: tuple[str, str]  # (row key column, the classified text's column)
    vectors: str | None = None  # a vectors.parquet folder usable for --features embedding


@dataclass
class Originals:
    """The labelled originals, sorted by row key (so the input's row order changes nothing)."""

    keys: list[str]
    texts: list[str]
    labels: list[str]
    groups: list[int]
    dropped: Counter = field(default_factory=Counter)
    dropped_classes: dict[str, int] = field(default_factory=dict)

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.labels))


@dataclass(frozen=True)
class Split:
    repeat: int
    fold: int
    size: float
    train: list[int]
    test: list[int]


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
    root = options.output_root
    manifest = root / options.output_name
    if not manifest.is_file():
        raise OutputError(f"no finished run in {root}: {manifest} is missing (run `augshard run`, or `merge`)")
    entries = read_manifest(manifest)
    wanted = set(options.combos)
    known = {name for e in entries for name in (e.combo_id, e.combo_dir, e.methods)}
    unknown = sorted(wanted - known)
    if unknown:
        raise ConfigError(f"--combos: {', '.join(unknown)} not in {manifest}")
    chosen = [e for e in entries if not wanted or wanted & {e.combo_id, e.combo_dir, e.methods}]
    bad = [e for e in chosen if e.status in (Status.FAILED, Status.INTERRUPTED) or (e.ok and not _whole(root, e))]
    if bad and not options.allow_incomplete:
        names = ", ".join(e.combo_dir for e in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise OutputError(
            f"{manifest}: the run is incomplete: {len(bad)} combo(s) failed, stopped or half-written ({names}); "
            "rerun `augshard run` to finish them, or pass --allow-incomplete to evaluate the others"
        )
    ok = sorted((e for e in chosen if e.ok and e not in bad), key=lambda e: e.combo_id)
    if not ok:
        raise OutputError(f"{manifest}: no complete combo to evaluate")
    return ok, [read_meta(root / e.combo_dir / META) for e in ok]


def _whole(root: Path, e: ComboOutcome) -> bool:
    return (root / e.combo_dir / "dataset.parquet").is_file() and (root / e.combo_dir / META).is_file()


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
    facts_path = folder / "export.json"
    try:
        facts = json.loads(facts_path.read_text(encoding="utf-8"))
        src = facts["source"]
        files = tuple(str(folder / f) for f in facts["files"])
    except (OSError, ValueError, KeyError, TypeError):
        raise OutputError(f"--export {folder}: not an `augshard export` folder ({facts_path} missing or unreadable)") \
            from None  # fmt: skip
    col = _column(options.field, src["text_col"], src.get("evidence_col"))
    fingerprint = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]
    methods = tuple(sorted(facts.get("methods", {})))
    candidate = Candidate("export", "export", folder.name, 0, methods, fingerprint, files, ("row_key", col))
    plans = facts.get("plan_fingerprints") or []
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
    return Originals([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], _groups(rows), dropped, rare)


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
        for token in (("text", normalise(text)), ("group", str(group)) if group is not None else None):
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


# --- the work: one candidate over every split, in a worker process ------------------------------------------------


@dataclass(frozen=True)
class WorkerSetup:
    texts: list[str]
    labels: list[str]
    keys: list[str]
    splits: list[Split]
    features: tuple[str, ...]
    vectors: Any  # the originals' sentence vectors (--features embedding), else None
    encoder: dict[str, Any] | None  # how to encode what is missing: model path, backend, device
    cache_path: str | None


_STATE: dict[str, Any] = {}


def _init_worker(setup: WorkerSetup) -> None:
    from augshard.procs import cap_threads

    cap_threads(1)
    _STATE.clear()
    _STATE["setup"] = setup
    _STATE["position"] = {k: i for i, k in enumerate(setup.keys)}
    if "tfidf" in setup.features:
        t0 = time.perf_counter()
        space = TfidfSpace()
        counts = space.counts(setup.texts)
        weighed = {}
        for n, split in enumerate(setup.splits):
            idf = space.idf(counts[split.train])
            weighed[n] = (idf, space.weigh(counts, idf))
        _STATE.update(space=space, weighed=weighed, setup_s=time.perf_counter() - t0)


def _read_variants(candidate: Candidate, position: dict[str, int]) -> tuple[list[int], list[str], list[tuple]]:
    """(original position, text, (row key, variant)) of the candidate's variants of known originals, in a fixed
    order (original, then the file's order), whatever order the files hold them in."""
    import pyarrow.parquet as pq

    key_col, text_col = candidate.columns
    rows = []
    for path in candidate.files:
        names = pq.read_schema(path).names
        cols = [key_col, text_col] + [c for c in ("variant", "combo_id", "k") if c in names]
        table = pq.read_table(path, columns=cols)
        data = {c: table.column(c).to_pylist() for c in cols}
        for n, key in enumerate(data[key_col]):
            if "k" in data and data["k"][n] == 0:
                continue  # an export's copy of an original (--include-originals): not a variant
            at = position.get(key)
            text = data[text_col][n]
            if at is None or text is None:
                continue
            tag = (key, data.get("variant", [0] * (n + 1))[n], (data.get("combo_id") or [""] * (n + 1))[n] or "")
            rows.append((at, tag, text))
    rows.sort(key=lambda r: (r[0], r[1]))
    return [r[0] for r in rows], [r[2] for r in rows], [r[1] for r in rows]


def evaluate_candidate(index: int, candidate: Candidate | None) -> dict[str, Any]:
    """Every split's scores for the baseline (candidate None) or one candidate, per feature set."""
    import numpy as np

    setup: WorkerSetup = _STATE["setup"]
    timing = Counter()
    t0 = time.perf_counter()
    owners: list[int] = []
    texts: list[str] = []
    tags: list[tuple] = []
    if candidate is not None:
        owners, texts, tags = _read_variants(candidate, _STATE["position"])
    timing["read_s"] += time.perf_counter() - t0
    owner_array = np.asarray(owners, dtype=np.int64)
    labels = np.asarray(setup.labels)
    out: dict[str, Any] = {"index": index, "variants": len(texts), "scores": {}, "vectors": Counter()}
    for feature in setup.features:
        t0 = time.perf_counter()
        if feature == "tfidf":
            counts = _STATE["space"].counts(texts)
        else:
            counts = _variant_vectors(candidate, texts, tags, out["vectors"])
        timing["vectorise_s" if feature == "tfidf" else "encode_s"] += time.perf_counter() - t0
        scores = []
        for n, split in enumerate(setup.splits):
            t0 = time.perf_counter()
            in_train = np.zeros(len(setup.texts), dtype=bool)
            in_train[split.train] = True
            chosen = np.flatnonzero(in_train[owner_array]) if len(owners) else np.zeros(0, dtype=np.int64)
            y_train = list(labels[split.train]) + list(labels[owner_array[chosen]])
            if feature == "tfidf":
                import scipy.sparse as sp

                idf, originals = _STATE["weighed"][n]
                variants = _STATE["space"].weigh(counts[chosen], idf)
                x_train = sp.vstack([originals[split.train], variants], format="csr")
                predicted = fit_predict_tfidf(x_train, y_train, originals[split.test], TfidfSettings())
            else:
                x_train = np.vstack([setup.vectors[split.train], counts[chosen]])
                predicted = fit_predict_embedding(x_train, y_train, setup.vectors[split.test], EmbeddingSettings())
            f1, acc = _scores(list(labels[split.test]), predicted)
            scores.append((f1, acc, int(len(chosen))))
            timing["fit_s"] += time.perf_counter() - t0
        out["scores"][feature] = scores
    out["timing"] = dict(timing)
    return out


def _variant_vectors(candidate: Candidate | None, texts: list[str], tags: list[tuple], tally: Counter) -> Any:
    """The variants' sentence vectors: the run's own (vectors.parquet) where it kept them, the cache's, or encoded."""
    import numpy as np

    setup: WorkerSetup = _STATE["setup"]
    dim = setup.vectors.shape[1]
    out = np.zeros((len(texts), dim), dtype=np.float32)
    missing = list(range(len(texts)))
    if candidate is not None and candidate.vectors and texts:
        stored = read_vectors(Path(candidate.vectors))
        if stored is not None:
            where = {key: n for n, key in enumerate(stored[0])}
            still = []
            for i in missing:
                n = where.get(tags[i][:2])
                if n is None:
                    still.append(i)
                else:
                    out[i] = stored[1][n]
            tally["stored"] += len(missing) - len(still)
            missing = still
    if missing:
        vectors, from_cache = encode_with_cache([texts[i] for i in missing], setup.encoder, setup.cache_path)
        out[missing] = vectors
        tally["from_cache"] += from_cache
        tally["encoded"] += len(missing) - from_cache
    return out


def _scores(truth: list[str], predicted: list[str]) -> tuple[float, float]:
    """Macro-F1 over the classes of the test originals (the same classes for the baseline and every combo of the
    split), and accuracy."""
    from sklearn.metrics import f1_score

    present = sorted(set(truth))
    f1 = float(f1_score(truth, predicted, labels=present, average="macro", zero_division=0))
    acc = sum(t == p for t, p in zip(truth, predicted, strict=True)) / len(truth)
    return f1, acc


# --- encoding (the embedding features) -------------------------------------------------------------------------

_ENCODER: dict[str, Any] = {}


def make_encoder(spec: dict[str, Any]) -> Any:
    from augshard.encoders import Encoder

    key = json.dumps(spec, sort_keys=True)
    if key not in _ENCODER:
        _ENCODER[key] = Encoder(spec["model"], 64, spec["backend"], spec["device"])
    return _ENCODER[key]


def encode_with_cache(texts: list[str], spec: dict[str, Any] | None, cache_path: str | None) -> tuple[Any, int]:
    """Vectors of `texts` (float32, normalised) with the run's encoder, read from or added to the cache; and how
    many came from the cache."""
    import numpy as np

    from augshard.cache import Cache
    from augshard.quality import score_key

    assert spec is not None
    encoder = make_encoder(spec)
    cache = Cache(cache_path) if cache_path else None
    try:
        keys = ["text|" + score_key(encoder.identity, t, "") for t in texts]
        found = cache.get_vectors(keys) if cache is not None else {}
        out = np.zeros((len(texts), 0), dtype=np.float32)
        todo = [i for i, k in enumerate(keys) if k not in found]
        fresh = encoder.encode([texts[i] for i in todo]).astype(np.float32) if todo else None
        dim = fresh.shape[1] if fresh is not None else len(np.frombuffer(next(iter(found.values())), np.float32))
        out = np.zeros((len(texts), dim), dtype=np.float32)
        for i, k in enumerate(keys):
            if k in found:
                out[i] = np.frombuffer(found[k], dtype=np.float32)
        if fresh is not None:
            out[todo] = fresh
            if cache is not None:
                cache.put_vectors((keys[i], fresh[n].tobytes()) for n, i in enumerate(todo))
        return out, len(texts) - len(todo)
    finally:
        if cache is not None:
            cache.close()


# --- the whole evaluation ---------------------------------------------------------------------------------------


def encoder_spec(quality: dict[str, Any], model: str | None) -> dict[str, Any]:
    """The sentence encoder: `--embedding-model` (default: the bundled MiniLM) on the run's backend and device when
    it filtered by embedding, else on this machine's default CPU backend. Stored vectors are used only when their
    encoder's identity is this one's."""
    from augshard.encoders import resolve_backend

    if quality.get("metric") == "embedding" and quality.get("backend"):
        return {"model": model, "backend": quality["backend"], "device": quality.get("device") or "cpu"}
    return {"model": model, "backend": resolve_backend("auto", "cpu"), "device": "cpu"}


def evaluate(options: EvaluateOptions, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Run the protocol, write evaluation.json (atomically) and return its document."""
    options.check()
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
    workers = min(options.num_shards or os.cpu_count() or 1, len(candidates) + 1)
    results = _run_tasks(setup, [None, *candidates], workers, progress)
    for r in results:
        tally.update(r["vectors"])
    if spec is not None:  # every count named, zeros included: "0 encoded" is the claim a stored run makes
        tally.update({k: 0 for k in ("stored", "from_cache", "encoded")})
        seconds.update({f"workers_{k}": v for k, v in r["timing"].items()})
    seconds["total"] = time.perf_counter() - started
    doc = build_document(options, source, originals, splits, candidates, results)
    doc["run_info"] = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "workers": workers,
        "seconds": {k: round(v, 2) for k, v in sorted(seconds.items())},
        "vectors": dict(sorted(tally.items())),
    }
    write_document(options.destination, doc)
    return doc


def _run_quality(options: EvaluateOptions, candidates: list[Candidate]) -> dict[str, Any]:
    meta = read_meta(options.output_root / candidates[0].combo_dir / META)
    return {"metric": meta.quality.metric, "model": meta.quality.model, "backend": meta.quality.backend,
            "device": meta.quality.device}  # fmt: skip


def _export_quality(folder: Path) -> dict[str, Any]:
    facts = json.loads((folder / "export.json").read_text(encoding="utf-8"))
    return dict(facts.get("quality") or {})


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
    return candidate


def _run_tasks(
    setup: WorkerSetup, tasks: list[Candidate | None], workers: int, progress: Callable[[int, int], None] | None
) -> list[dict[str, Any]]:
    """Every task's scores, in task order, from `workers` processes (or this one). The results do not depend on
    which worker ran what: each task is computed alone from the same setup."""
    results: list[dict[str, Any] | None] = [None] * len(tasks)
    done = 0
    if workers == 1:
        _init_worker(setup)
        for i, task in enumerate(tasks):
            results[i] = evaluate_candidate(i, task)
            done += 1
            if progress:
                progress(done, len(tasks))
        return results  # type: ignore[return-value]
    import multiprocessing

    # Largest first, so no worker is left with a big combo at the end.
    order = sorted(range(len(tasks)), key=lambda i: -_size(tasks[i]))
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(setup,))
    try:
        futures = [pool.submit(evaluate_candidate, i, tasks[i]) for i in order]
        for future in as_completed(futures):
            result = future.result()
            results[result["index"]] = result
            done += 1
            if progress:
                progress(done, len(tasks))
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    return results  # type: ignore[return-value]


def _size(task: Candidate | None) -> int:
    if task is None:
        return 0
    return sum(os.path.getsize(f) for f in task.files if os.path.exists(f))


def build_document(
    options: EvaluateOptions,
    source: Source,
    originals: Originals,
    splits: list[Split],
    candidates: list[Candidate],
    results: list[dict[str, Any]],
) -> dict[str, Any]:
    """evaluation.json's deterministic part (docs/cli.md has its schema): everything but `run_info`."""
    import sklearn

    from augshard import __version__

    sections = []
    for feature in options.features:
        for size in options.train_sizes:
            sections.append(_section(feature, size, splits, candidates, results))
    return {
        "schema": SCHEMA_VERSION,
        "source": {
            "kind": source.kind,
            "path": source.path,
            "input": {"path": source.input_path, "sha256": source.input_sha256},
            "plan_fingerprints": source.plan_fingerprints,
        },
        "protocol": {
            "label_col": options.label_col,
            "group_col": options.group_col,
            "field": options.field,
            "folds": options.folds,
            "repeats": options.repeats,
            "seed": options.seed,
            "train_sizes": list(options.train_sizes),
            "features": list(options.features),
            "classes": originals.classes,
            "originals": len(originals.keys),
            "groups": len(set(originals.groups)),
            "dropped_rows": dict(sorted(originals.dropped.items())),
            "dropped_classes": originals.dropped_classes,
            "interval": "95%, corrected resampled t (Nadeau-Bengio) over folds x repeats",
            "adjustment": "Holm over the combos of each section",
        },
        "classifiers": {k: v for k, v in settings_document().items() if k in options.features},
        "libraries": {"augshard": __version__, "scikit-learn": sklearn.__version__},
        "results": sections,
    }


def _section(
    feature: str, size: float, splits: list[Split], candidates: list[Candidate], results: list[dict[str, Any]]
) -> dict[str, Any]:
    idx = [n for n, s in enumerate(splits) if s.size == size]
    ratio = math.fsum(len(splits[n].test) / len(splits[n].train) for n in idx) / len(idx)
    base = [results[0]["scores"][feature][n] for n in idx]
    base_f1, base_acc = [b[0] for b in base], [b[1] for b in base]
    rows, diffs_by_combo = [], []
    for candidate, result in zip(candidates, results[1:], strict=True):
        scores = [result["scores"][feature][n] for n in idx]
        f1, acc = [s[0] for s in scores], [s[1] for s in scores]
        diffs = [a - b for a, b in zip(f1, base_f1, strict=True)]
        diffs_by_combo.append(diffs)
        gain = paired_gain(diffs, ratio)
        acc_gain = paired_gain([a - b for a, b in zip(acc, base_acc, strict=True)], ratio)
        rows.append({
            "combo_id": candidate.combo_id, "combo_dir": candidate.combo_dir, "name": candidate.name,
            "methods": list(candidate.methods), "k": candidate.k, "combo_fingerprint": candidate.fingerprint,
            "variants_used": round(math.fsum(s[2] for s in scores) / len(scores), 1),
            "macro_f1": _summary(f1), "accuracy": _summary(acc),
            "gain": gain.as_dict(), "accuracy_gain": acc_gain.as_dict(),
            "macro_f1_splits": [round(v, 6) for v in f1],
        })  # fmt: skip
    for row, p in zip(rows, holm([r["gain"]["p_value"] for r in rows]), strict=True):
        row["gain"]["p_holm"] = round(p, 6)
        g = row["gain"]
        row["verdict"] = verdict(Gain(g["mean"], g["ci_low"], g["ci_high"], g["p_value"], g["splits"]), p)
    order = sorted(range(len(rows)), key=lambda i: (-rows[i]["gain"]["mean"], rows[i]["combo_id"]))
    return {
        "features": feature,
        "train_size": size,
        "splits": len(idx),
        "baseline": {
            "macro_f1": _summary(base_f1),
            "accuracy": _summary(base_acc),
            "train_originals": round(math.fsum(len(splits[n].train) for n in idx) / len(idx), 1),
            "macro_f1_splits": [round(v, 6) for v in base_f1],
        },
        "combos": [rows[i] for i in order],
        "methods": _marginals(candidates, diffs_by_combo, ratio),
    }


def _summary(values: list[float]) -> dict[str, float]:
    mean, std = mean_std(values)
    return {"mean": round(mean, 6), "std": round(std, 6)}


def _marginals(candidates: list[Candidate], diffs: list[list[float]], ratio: float) -> list[dict[str, Any]]:
    """Each method's marginal effect: per split, the mean gain of the combos that contain it minus the mean gain
    of those that do not; then the same corrected interval over the splits."""
    methods = sorted({m for c in candidates for m in c.methods})
    out = []
    for method in methods:
        with_m = [d for c, d in zip(candidates, diffs, strict=True) if method in c.methods]
        without = [d for c, d in zip(candidates, diffs, strict=True) if method not in c.methods]
        if not with_m or not without:
            continue
        per_split = [
            math.fsum(d[n] for d in with_m) / len(with_m) - math.fsum(d[n] for d in without) / len(without)
            for n in range(len(with_m[0]))
        ]
        mean_with = math.fsum(math.fsum(d) / len(d) for d in with_m) / len(with_m)
        mean_without = math.fsum(math.fsum(d) / len(d) for d in without) / len(without)
        out.append({
            "method": method, "combos_with": len(with_m), "combos_without": len(without),
            "mean_gain_with": round(mean_with, 6), "mean_gain_without": round(mean_without, 6),
            "marginal": paired_gain(per_split, ratio).as_dict(),
        })  # fmt: skip
    out.sort(key=lambda m: (-m["marginal"]["mean"], m["method"]))
    return out


def write_document(path: Path, doc: dict[str, Any]) -> None:
    """Written to a temporary file in the same folder, fsynced and renamed: never half a document."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(doc, indent=2, allow_nan=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_document(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OutputError(f"{path} not found: run `augshard evaluate --label-col COL` first") from None
    except (OSError, ValueError) as exc:
        raise OutputError(f"{path}: not a readable evaluation ({exc})") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA_VERSION or not doc.get("results"):
        raise OutputError(f"{path}: not an evaluation.json this augshard reads (schema {SCHEMA_VERSION})")
    return doc


def main_section(doc: dict[str, Any], features: str | None = None) -> dict[str, Any]:
    """The section a choice is made from: the given (or first) features, at the largest train size."""
    sections = [s for s in doc["results"] if features is None or s["features"] == features]
    if not sections:
        raise ConfigError(f"the evaluation has no '{features}' results (it has: "
                          f"{', '.join(sorted({s['features'] for s in doc['results']}))})")  # fmt: skip
    first = sections[0]["features"]
    return max((s for s in sections if s["features"] == first), key=lambda s: s["train_size"])


def choose_combos(
    output_root: Path, best: int | None, min_gain: float | None, features: str | None = None
) -> tuple[list[str], str]:
    """Combo ids picked from the run's evaluation.json (`export --best N` / `--min-gain X`), and a sentence for
    the dataset card saying how. Refused when the evaluation is older than the combos it ranks."""
    doc = read_document(output_root / EVALUATION)
    if doc["source"]["kind"] != "run":
        raise ConfigError(f"{output_root / EVALUATION} evaluates an export, not this run's combos")
    section = main_section(doc, features)
    for row in section["combos"]:
        try:
            meta = read_meta(output_root / row["combo_dir"] / META)
        except (OSError, ValueError):
            meta = None
        if meta is None or meta.combo_fingerprint != row["combo_fingerprint"]:
            raise OutputError(f"{output_root / EVALUATION} is older than combo {row['combo_dir']} (remade since, or "
                              "gone): run `augshard evaluate` again before choosing by it")  # fmt: skip
    rows = section["combos"]  # sorted by mean gain, best first
    rule = []
    if min_gain is not None:
        rows = [r for r in rows if r["gain"]["mean"] >= min_gain]
        rule.append(f"mean macro-F1 gain >= {min_gain:+.4f}")
    if best is not None:
        rows = rows[:best]
        rule.append(f"the {best} best by mean macro-F1 gain")
    if not rows:
        raise OutputError(f"no combo of {output_root / EVALUATION} has a mean gain >= {min_gain}")
    p = doc["protocol"]
    how = (
        f"chosen by `augshard evaluate` ({section['features']}, train size {section['train_size']}, "
        f"{p['folds']} folds x {p['repeats']} repeat(s), label '{p['label_col']}'): {' and '.join(rule)}; "
        "gains: " + ", ".join(f"{r['name']} {r['gain']['mean']:+.4f} [{r['gain']['ci_low']:+.4f}, "
                              f"{r['gain']['ci_high']:+.4f}] ({r['verdict']})" for r in rows)
    )  # fmt: skip
    return [r["combo_id"] for r in rows], how
