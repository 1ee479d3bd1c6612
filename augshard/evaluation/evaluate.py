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
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from augshard.core.errors import ConfigError, OutputError
from augshard.evaluation.classifiers import BINDING, FALLBACK, ModelSpec, load_model
from augshard.evaluation.document import (
    CONFIRM,
    SCREEN,
    SINGLE,
    TEST_SPLIT,
    ConfirmDesign,
    EvaluationDocument,
    InputRef,
    Protocol,
    Scope,
    Source,
    UserSplit,
    write_document,
)
from augshard.evaluation.findings import CONFIRM_TOP, Stage, build_document, section
from augshard.evaluation.options import EvaluateOptions
from augshard.evaluation.originals import (
    Origin,
    Originals,
    chosen_combos,
    export_quality,
    load_export,
    load_originals,
    load_run,
    run_quality,
    source_split,
    text_column,
)
from augshard.evaluation.pool import run_tasks
from augshard.evaluation.scoring import Candidate, Split, WorkerSetup, encode_with_cache, make_encoder
from augshard.runner.interrupts import unwinding_on_signals
from augshard.runner.lock import ReadLock, TargetLock
from augshard.shard.encoders import resolve_backend
from augshard.storage.meta import QualityMeta, read_meta
from augshard.storage.outputs import check_evaluation_out
from augshard.storage.store import META
from augshard.storage.vectors import usable_vectors

__all__ = ["EvaluateOptions", "Originals", "evaluate", "make_splits"]  # EvaluateOptions: evaluation_options.py


# --- splits -----------------------------------------------------------------------------------------------------


def make_splits(
    originals: Originals,
    options: EvaluateOptions,
    sizes: tuple[float, ...] | None = None,
    repeats: int | None = None,
    confirm: bool = False,
) -> list[Split]:
    """folds x repeats stratified group splits; each smaller train size takes a stratified, nested subset of the
    split's training originals (the same originals at every size they fit in). The confirm stage's splits are
    fresh: seeds (and subsets) of their own, drawn from the evaluation's seed (`confirm_seeds`)."""
    import numpy as np
    from sklearn.model_selection import StratifiedGroupKFold

    n = len(originals.keys)
    repeats = options.repeats if repeats is None else repeats
    seeds = confirm_seeds(options.seed, repeats) if confirm else [options.seed + r for r in range(repeats)]
    splits = []
    for repeat, seed in enumerate(seeds):
        folds = StratifiedGroupKFold(options.folds, shuffle=True, random_state=seed)
        salt = f"confirm|{seed}" if confirm else str(options.seed)
        for fold, (train, test) in enumerate(folds.split(np.zeros(n), originals.labels, originals.groups)):
            for size in sizes or options.train_sizes:
                subset = _subsample(sorted(train.tolist()), size, originals, f"{salt}|{repeat}|{fold}")
                splits.append(Split(repeat, fold, size, subset, sorted(test.tolist())))
    return splits


RESAMPLES = 1000  # bootstrap resamples of the test originals of `--test-split`


def user_splits(originals: Originals, options: EvaluateOptions, augmented: tuple[str, ...]) -> list[Split]:
    """`--test-split`: one split, the user's, at each train size (the training originals are the augmented split's,
    or every other split's when the run had none), then RESAMPLES paired bootstrap resamples of its test originals
    (the same for the baseline and every combo: the gains are paired)."""
    import numpy as np

    values, test_value = originals.splits, options.test_split
    test = [i for i, v in enumerate(values) if v == test_value]
    train = [i for i, v in enumerate(values) if (v in augmented if augmented else v != test_value)]
    for what, rows in (("test", test), ("training", train)):
        if not rows:
            raise ConfigError(f"--test-split {test_value}: no labelled original for the {what} set")
    rng = np.random.default_rng(options.seed)
    samples = [sorted(rng.integers(0, len(test), len(test)).tolist()) for _ in range(RESAMPLES)]
    splits = []
    for size in options.train_sizes:
        subset = _subsample(train, size, originals, f"{options.seed}|test-split")
        splits.append(Split(0, 0, size, subset, test))
        splits += [Split(b, 0, size, subset, test, sample) for b, sample in enumerate(samples, 1)]
    return splits


def confirm_seeds(seed: int, repeats: int) -> list[int]:
    """The confirm stage's fold seeds: hashed from the evaluation's seed, so none is a screen's (seed + r)."""
    return [
        int.from_bytes(hashlib.blake2b(f"augshard confirm|{seed}|{r}".encode(), digest_size=4).digest(), "big")
        for r in range(repeats)
    ]


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


def encoder_spec(quality: QualityMeta | None, model: str | None) -> dict[str, Any]:
    """The sentence encoder: `--embedding-model` (default: the bundled MiniLM) on the run's backend and device when
    it filtered by embedding, else on this machine's default CPU backend. Stored vectors are used only when their
    encoder's identity is this one's."""
    if quality is not None and quality.metric == "embedding" and quality.backend:
        return {"model": model, "backend": quality.backend, "device": quality.device or "cpu"}
    return {"model": model, "backend": resolve_backend("auto", "cpu"), "device": "cpu"}


def evaluate(options: EvaluateOptions, progress: Callable[[int, int], None] | None = None) -> EvaluationDocument:
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


def _evaluate(options: EvaluateOptions, progress: Callable[[int, int], None] | None) -> EvaluationDocument:
    started = time.perf_counter()
    seconds: Counter = Counter()
    t0 = time.perf_counter()
    if options.export_dir is not None:
        source, candidates, quality = (*load_export(options), export_quality(options.export_dir))
    else:
        source, candidates = load_run(options)
        quality = run_quality(options, candidates)
    split_col, augmented = source_split(options, candidates) if options.test_split else (None, ())
    originals = load_originals(source, options, split_col)
    top = 0 if options.test_split else confirm_top(options.confirm_top, len(candidates))
    seconds["load"] = time.perf_counter() - t0
    spec, vectors, tally = None, None, Counter()
    if "embedding" in options.features:
        t0 = time.perf_counter()
        spec = encoder_spec(quality, options.embedding_model)
        identity = make_encoder(spec).identity
        candidates = [_with_usable_vectors(c, identity, options.field, source) for c in candidates]
        vectors, from_cache = encode_with_cache(originals.texts, spec, str(options.cache_dir / "evaluate.db"))
        tally.update(originals_from_cache=from_cache, originals_encoded=len(originals.texts) - from_cache)
        seconds["encode_originals"] = time.perf_counter() - t0
    workers = min(options.workers or os.cpu_count() or 1, len(candidates) + 1)
    model = load_model(options.model, workers) if options.model is not None else None
    tasks = Tasks(len(candidates) + 1 + (top + 1 if top else 0), progress)
    fits: Counter = Counter()
    # Stage 1: every combo (a screen at the largest train size when a confirm stage decides; else every size).
    sizes = (max(options.train_sizes),) if top else options.train_sizes
    first = user_splits(originals, options, augmented) if split_col else make_splits(originals, options, sizes)
    stages = [_stage(SCREEN if top else SINGLE, first, candidates, originals, options, (vectors, spec), workers,
                     tasks, (seconds, tally, fits), model)]  # fmt: skip
    if split_col:  # the user's one test set: bootstrap intervals over its originals
        stages[0] = replace(stages[0], bootstrap=True)
    if top:  # stage 2: the screen's best K and the baseline on fresh splits, at every train size
        chosen, ranks = _top(stages[0], top, options.features[0])
        splits = make_splits(originals, options, options.train_sizes, options.confirm_repeats, confirm=True)
        stages.append(_stage(CONFIRM, splits, chosen, originals, options, (vectors, spec), workers, tasks,
                             (seconds, tally, fits), model, ranks))  # fmt: skip
    if spec is not None:  # every count named, zeros included: "0 encoded" is the claim a stored run makes
        tally.update({k: 0 for k in ("stored", "from_cache", "encoded")})
    seconds["total"] = time.perf_counter() - started
    scope = None
    if options.export_dir is None:
        # The plan's complete combos: the candidates themselves, unless --combos chose some (then read them all once).
        every = len(chosen_combos(options, every=True)[0]) if options.subset else len(candidates)
        scope = Scope(options.subset, [c.combo_id for c in candidates], every)
    protocol = replace(_protocol(options, originals, top), model=model.describe() if model else None)
    if split_col:
        split = first[0]
        protocol = replace(
            protocol,
            design=TEST_SPLIT,
            test_split=UserSplit(
                split_col, str(options.test_split), list(augmented), len(split.train), len(split.test), RESAMPLES
            ),
        )
    doc = build_document(_source(source), protocol, stages, top, scope)
    run_info: dict[str, Any] = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "workers": workers,
        "seconds": {k: round(v, 2) for k, v in sorted(seconds.items())},
        "vectors": dict(sorted(tally.items())),
    }
    if "tfidf" in options.features:  # which path fitted the TF-IDF models (classifiers.fit_ovr_logistic)
        run_info["tfidf_fits"] = {path: fits[path] for path in (BINDING, FALLBACK)}
    doc = replace(doc, run_info=run_info)
    write_document(options.destination, doc)
    return doc


def confirm_top(asked: int | None, combos: int) -> int:
    """How many combos the confirm stage re-evaluates: `--confirm-top` (0: none), by default 10 when there are
    more than 10 combos to choose from, else none (every combo is then judged in one stage)."""
    if asked is None:
        return CONFIRM_TOP if combos > CONFIRM_TOP else 0
    return min(asked, combos)


@dataclass
class Tasks:
    """Progress over both stages: `progress(done, total)` with the total known from the start."""

    total: int
    progress: Callable[[int, int], None] | None
    done: int = 0

    def advance(self, done: int, _total: int) -> None:
        if self.progress:
            self.progress(self.done + done, self.total)

    def finish(self, n: int) -> None:
        self.done += n


def _stage(
    name: str, splits: list[Split], candidates: list[Candidate], originals: Originals, options: EvaluateOptions,
    encoded: tuple[Any, Any], workers: int, tasks: Tasks, counters: tuple[Counter, Counter, Counter],
    model: ModelSpec | None, ranks: dict[str, int] | None = None,
) -> Stage:  # fmt: skip
    """Every task of one stage (the baseline, then each candidate) scored over the stage's splits."""
    seconds, tally, fits = counters
    t0 = time.perf_counter()
    vectors, spec = encoded
    setup = WorkerSetup(originals.texts, originals.labels, originals.keys, splits, options.features, vectors, spec,
                        str(options.cache_dir / "evaluate.db") if spec else None, tuple(originals.classes),
                        model)  # fmt: skip
    results = run_tasks(setup, [None, *candidates], min(workers, len(candidates) + 1), tasks.advance)
    tasks.finish(len(candidates) + 1)
    for r in results:
        tally.update(r["vectors"])
        fits.update(r["fits"])
        seconds.update({f"workers_{k}": v for k, v in r["timing"].items()})
    seconds[f"{name}_s"] += time.perf_counter() - t0
    return Stage(name, splits, candidates, [r["scores"] for r in results], ranks or {})


def _top(screen: Stage, top: int, features: str) -> tuple[list[Candidate], dict[str, int]]:
    """The screen's `top` best candidates by mean macro-F1 gain (of the first features set, at the largest train
    size), and every candidate's screen rank."""
    size = max(s.size for s in screen.splits)
    ranked = section(screen, features, size, [], top).combos
    ranks = {r.combo_id: r.screen_rank or 0 for r in ranked}
    by_id = {c.combo_id: c for c in screen.candidates}
    return [by_id[r.combo_id] for r in ranked[:top]], ranks


def _source(origin: Origin) -> Source:
    return Source(origin.kind, origin.path, InputRef(origin.input_path, origin.input_sha256), origin.plan_fingerprints)


def _protocol(options: EvaluateOptions, originals: Originals, top: int) -> Protocol:
    design = None
    if top:
        design = ConfirmDesign(top, options.confirm_repeats, options.folds,
                               confirm_seeds(options.seed, options.confirm_repeats),
                               {"features": options.features[0], "train_size": max(options.train_sizes)})  # fmt: skip
    return Protocol(
        label_col=options.label_col, group_col=options.group_col, field=options.field, folds=options.folds,
        repeats=options.repeats, seed=options.seed, train_sizes=list(options.train_sizes),
        features=list(options.features), classes=originals.classes, originals=len(originals.keys),
        groups=len(set(originals.groups)), blank_group_rows=originals.blank_groups,
        dropped_rows=dict(sorted(originals.dropped.items())), dropped_classes=originals.dropped_classes,
        class_counts=dict(sorted(Counter(originals.labels).items())), group_near=options.group_near,
        joined=dict(originals.joined), model=None, design="screen-then-confirm" if top else SINGLE,
        confirm=design,
    )  # fmt: skip


def _with_usable_vectors(candidate: Candidate, identity: str, field_name: str, source: Origin) -> Candidate:
    """Keep a combo's stored vectors only if they are this encoder's, of the text the classifier reads."""

    if candidate.vectors is None:
        return candidate
    meta = read_meta(Path(candidate.vectors) / META).vectors
    column = text_column(field_name, source.text_col, source.evidence_col)
    encoded = source.evidence_col if meta is not None and meta.field == "evidence" else source.text_col
    if meta is None or meta.encoder != identity or encoded != column:
        return replace(candidate, vectors=None)
    usable = usable_vectors(Path(candidate.vectors), meta, candidate.combo_dir)  # whole, else one warning
    return candidate if usable else replace(candidate, vectors=None)
