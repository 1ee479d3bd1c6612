"""One combo over the rows, chunk by chunk: seeded candidates through the methods in order, filtered, recorded."""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from augshard.core import columns as col
from augshard.core.combos import Combo
from augshard.core.config import RunConfig
from augshard.events.stream import SCORING, WRITING
from augshard.methods import Augmenter
from augshard.shard.cache import Cache, cache_key
from augshard.shard.labels import Labeler
from augshard.shard.progress import SCORING_SHARE, ChunkProgress, ProgressFn
from augshard.shard.quality import Scorer
from augshard.storage.balance import Allocation
from augshard.storage.data import Dataset, Row, splice

CALL_SLICE = 16  # a per-text method is called on this many candidates at a time, so progress can be told between


def call_seed(seed: int, prefix: tuple[str, ...], row_key: str, attempt: int) -> int:
    """The seed of one method call: from the run seed, the methods applied so far, the row and the attempt.

    Keyed on the *prefix* of the combo rather than the whole combo, so a pair's first step is the very
    same call as the single method's, whichever shard runs them; the cache turns that into a free hit.
    """
    blob = f"{seed}\x1f{'+'.join(prefix)}\x1f{row_key}\x1f{attempt}"
    return int.from_bytes(hashlib.sha256(blob.encode()).digest()[:4], "big")


def dedupe_key(text: str) -> str:
    """Two texts are the same variant when they differ only in letter case or surrounding space (the original
    tool's rule): a variant must differ from its original, and from the row's other variants, beyond that."""
    return text.casefold().strip()


@dataclass
class ComboStats:
    """What happened to a combo's candidates: each drawn candidate is accepted, or rejected for one reason."""

    candidates: int = 0
    unchanged: int = 0  # empty, or the original itself (ignoring case and surrounding space)
    duplicates: int = 0  # another variant of the same row (ignoring case and surrounding space)
    below_min_sim: int = 0
    above_max_sim: int = 0
    call_errors: int = 0  # a method raised on the candidate's text
    step_rejected: int = 0  # `--quality-scope each-step`: a step that made no change, or one out of the range
    rows_short: int = 0  # input rows that got fewer variants than asked for
    first_error: str = ""
    labelled: int = 0  # variants given a label prediction (--label-col)
    label_flips: int = 0  # ... whose prediction differs from their original's
    kept_by_class: Counter = field(default_factory=Counter)  # variants kept per class (--balance, --variants-per-class)
    calls_s: float = 0.0  # seconds inside the methods' own calls (those the cache did not answer), building aside

    @property
    def rejected_unchanged(self) -> int:
        return self.unchanged + self.duplicates

    @property
    def rejected_similarity(self) -> int:
        return self.below_min_sim + self.above_max_sim

    @property
    def candidates_rejected(self) -> int:
        """Candidates rejected: unchanged, duplicate, empty, out of the similarity range, or at a step."""
        return self.rejected_unchanged + self.rejected_similarity + self.step_rejected

    def explain(self, asked: int, kept: int, min_sim: float, max_sim: float) -> str:
        """Why a combo kept fewer than half the variants it asked for, in numbers, with the bound to move; "" when
        it kept at least half."""
        if asked <= 0 or kept * 2 >= asked:
            return ""
        reasons = {
            "above": (self.above_max_sim, f"{self.above_max_sim:,} above max_sim {max_sim:g}"),
            "below": (self.below_min_sim, f"{self.below_min_sim:,} below min_sim {min_sim:g}"),
            "same": (self.rejected_unchanged, f"{self.unchanged:,} unchanged, {self.duplicates:,} duplicates"),
            "errors": (self.call_errors, f"{self.call_errors:,} call errors"),
            "step": (self.step_rejected, f"{self.step_rejected:,} stopped at an intermediate step"),
        }
        counts = "; ".join(text for n, text in reasons.values() if n)
        main = max(reasons, key=lambda r: reasons[r][0])
        advice = {
            "above": f"Most changes are too small for the range: raise --quality-max-sim (now {max_sim:g})",
            "below": f"Most changes are too large for the range: lower --quality-min-sim (now {min_sim:g})",
            "same": "The method rarely changes these texts: check its args (aug_p, pct_words_to_swap)",
            "errors": f"The method fails on these texts: {self.first_error}",
            "step": "With --quality-scope each-step every method of the combo must itself make an in-range change; "
            "--quality-scope final judges only the result",
        }[main]
        rows = f"; {self.rows_short:,} rows ran out of attempts" if self.rows_short else ""
        head = f"kept {kept:,} of {asked:,} variants ({kept / asked * 100:.0f}%) from {self.candidates:,} candidates"
        return f"{head}: {counts}{rows}. {advice}"


@dataclass
class _RowState:
    row: Row
    original_key: str
    wanted: int  # the variants this row asks for
    accepted: list[tuple[str, float | None]] = field(default_factory=list)
    vectors: list[Any] = field(default_factory=list)  # the filter's vector of each accepted variant, if it made one
    seen: set[str] = field(default_factory=set)  # dedupe keys of the accepted variants
    next_attempt: int = 0
    labels: list[tuple[str, bool]] = field(default_factory=list)  # (prediction, agrees with the original's)

    def budget(self, cfg: RunConfig) -> int:
        """The candidates it may draw: `max_candidates_per_variant` for each variant it asks for."""
        return self.wanted * cfg.max_candidates_per_variant


def output_schema(input_schema: Any, has_evidence: bool, labels: bool = False) -> Any:
    """Input columns (text and evidence columns hold the augmented values) plus augshard's columns."""
    import pyarrow as pa

    extra = [
        pa.field(col.ROW_KEY, pa.string()),
        pa.field(col.VARIANT, pa.int32()),
        pa.field(col.original_column(has_evidence), pa.string()),
    ]
    if has_evidence:
        extra.append(pa.field(col.EVIDENCE_MATCH, pa.string()))
    extra += [pa.field(col.SIMILARITY, pa.float64()), pa.field(col.COMBO_ID, pa.string()),
              pa.field(col.METHODS, pa.string())]  # fmt: skip
    if labels:
        extra += [pa.field(col.LABEL_PRED, pa.string()), pa.field(col.LABEL_AGREES, pa.bool_())]
    return pa.schema(list(input_schema) + extra)


def run_combo(
    combo: Combo,
    dataset: Dataset,
    methods: dict[str, Augmenter],
    scorer: Scorer,
    cache: Cache,
    cfg: RunConfig,
    sink: Callable[[list[dict[str, Any]]], None],
    on_progress: Callable[[int, int], None] | None = None,
    check_stop: Callable[[], None] | None = None,
    labeler: Labeler | None = None,
    vector_sink: Callable[[list[tuple[str, int]], Any], None] | None = None,
    on_work: ProgressFn | None = None,
    asks: Allocation | None = None,
) -> ComboStats:
    """Make up to `variants_per_sample` accepted variants per row (with `asks`, its count for each row: --balance);
    hand each chunk's records to `sink`.

    Only the chunk's input rows become Python objects (and only its records exist): memory does not grow
    with the input. With a `labeler` every variant gets the label check's prediction. With a `vector_sink`
    (--keep-vectors) it gets each chunk's `(row_key, variant)` keys and vectors, row for row with the records.
    `on_progress(rows_done, rows_total)` hears of each chunk written; `on_work(rows_done, rows_total, phase)` where
    the combo stands inside a chunk (`ChunkProgress`). The chunking and the order of every call are the same with
    them or without them.
    """
    stats = ComboStats()
    rows = dataset.rows
    asks = asks or Allocation(cfg.variants_per_sample)
    progress = ChunkProgress(on_work, len(rows), on_progress)
    with _scoring_told(scorer, progress, on_work is not None):
        for start in range(0, len(rows), cfg.chunk_size):
            chunk = rows[start : start + cfg.chunk_size]
            progress.chunk(start, len(chunk), asks.asked(chunk) * cfg.max_candidates_per_variant)
            states = _variants_for_chunk(combo, chunk, methods, scorer, cache, cfg, stats, check_stop, progress, asks)
            progress.settled(0, WRITING)
            if vector_sink is not None:
                _fill_vectors(states, scorer)
            if labeler is not None:
                _label(states, labeler, stats)
            wanted = [st.row.index for st in states if st.accepted]
            input_rows = dict(zip(wanted, dataset.table.take(wanted).to_pylist(), strict=True)) if wanted else {}
            sink(_records(combo, states, input_rows, cfg))
            if vector_sink is not None:
                vector_sink(*_vector_rows(states))
            progress.chunk_done()
    if stats.candidates and stats.call_errors == stats.candidates:
        raise RuntimeError(f"every call failed in combo {combo.name}; first error: {stats.first_error}")
    return stats


@contextlib.contextmanager
def _scoring_told(scorer: Scorer, progress: ChunkProgress, wanted: bool) -> Iterator[None]:
    """While a combo runs, a scorer that can tell how its scoring goes (the ONNX encoder, batch by batch) moves
    the rows counter through a round's scoring too, not only through its calls."""
    watch = getattr(scorer, "watch", None) if wanted and getattr(scorer, "watchable", False) else None
    if watch is None:
        yield
        return
    progress.scoring_share = SCORING_SHARE
    watch(progress.scored)
    try:
        yield
    finally:
        watch(None)


def _variants_for_chunk(
    combo: Combo,
    chunk: list[Row],
    methods: dict[str, Augmenter],
    scorer: Scorer,
    cache: Cache,
    cfg: RunConfig,
    stats: ComboStats,
    check_stop: Callable[[], None] | None = None,
    progress: ChunkProgress | None = None,
    asks: Allocation | None = None,
) -> list[_RowState]:
    progress = progress or ChunkProgress(None, 0)
    asks = asks or Allocation(cfg.variants_per_sample)
    states = [_RowState(row, dedupe_key(row.evidence), asks.of(row)) for row in chunk]
    progress.calls(0.0, SCORING)  # the originals are encoded first
    scorer.prime([row.evidence for row in chunk])
    pending = states
    while pending:
        if check_stop is not None:  # a stop is honoured between rounds, not only between chunks
            check_stop()
        # Each row draws exactly the attempts it still needs; attempt numbers depend on that row alone.
        jobs: list[tuple[_RowState, int]] = []
        left = sum(st.budget(cfg) - st.next_attempt for st in pending)
        for st in pending:
            n = min(st.wanted - len(st.accepted), st.budget(cfg) - st.next_attempt)
            jobs += [(st, a) for a in range(st.next_attempt, st.next_attempt + n)]
            st.next_attempt += n
        if not jobs:
            break
        progress.round(left, len(jobs))
        outputs = _apply_chain(combo, jobs, methods, cache, cfg, stats, scorer, progress)
        progress.calls(1.0, SCORING)
        _judge([(st, text) for (st, _), text in zip(jobs, outputs, strict=True)], scorer, cfg, stats)
        pending = [st for st in pending if len(st.accepted) < st.wanted and st.next_attempt < st.budget(cfg)]
        progress.settled(sum(st.budget(cfg) - st.next_attempt for st in pending))
    stats.rows_short += sum(1 for st in states if len(st.accepted) < st.wanted)
    if not asks.uniform:
        for st in states:
            stats.kept_by_class[asks.label(st.row)] += len(st.accepted)
    return states


def _judge(candidates: list[tuple[_RowState, str | None]], scorer: Scorer, cfg: RunConfig, stats: ComboStats) -> None:
    """Accept each candidate of a round that is new for its row and within the similarity range, in order."""
    to_score = []
    for st, text in candidates:
        if text is None:  # the call failed (counted where it failed)
            continue
        key = dedupe_key(text)
        if not key or key == st.original_key:
            stats.unchanged += 1
        elif key in st.seen:
            stats.duplicates += 1
        else:
            to_score.append((st, text, key))
    sims = scorer.score([st.row.evidence for st, _, _ in to_score], [text for _, text, _ in to_score])
    for (st, text, key), sim in zip(to_score, sims, strict=True):
        if key in st.seen:  # the same candidate twice in one round
            stats.duplicates += 1
        elif sim is not None and sim < cfg.quality_min_sim:
            stats.below_min_sim += 1
        elif sim is not None and sim > cfg.quality_max_sim:
            stats.above_max_sim += 1
        else:
            st.seen.add(key)
            st.accepted.append((text, sim))
            st.vectors.append(getattr(scorer, "last", {}).get(text))


def _apply_chain(
    combo: Combo,
    jobs: list[tuple[_RowState, int]],
    methods: dict[str, Augmenter],
    cache: Cache,
    cfg: RunConfig,
    stats: ComboStats,
    scorer: Scorer | None = None,
    progress: ChunkProgress | None = None,
) -> list[str | None]:
    """Run every job's evidence through the combo's methods in order; None marks a call that failed (or, with
    `--quality-scope each-step`, a step that made no change or one out of the similarity range).

    `progress` hears the share of the round's calls made after each slice of them; slicing a per-text method's
    calls changes no output (the same text and seed give the same output, whatever else is in the call)."""
    texts: list[str | None] = [st.row.evidence for st, _ in jobs]
    stats.candidates += len(jobs)
    steps = len(combo.methods)
    for step, method_id in enumerate(combo.methods):
        inputs = list(texts)
        method = methods[method_id]
        if progress is not None and not getattr(method, "built", True):
            progress.loading()  # the first call builds it: imports, models (seconds, for a model minutes)
        prefix = combo.methods[: step + 1]
        alive = [i for i, t in enumerate(texts) if t is not None]
        seeds = {i: call_seed(cfg.seed, prefix, jobs[i][0].row.key, jobs[i][1]) for i in alive}
        # A batch-dependent method (a model method drawing for a whole batch) is looked up and recomputed
        # batch by batch, with the batch in its cache key: a hit is then always the very output a fresh call gives.
        size = getattr(method, "batch_size", 0) if getattr(method, "batch_dependent", False) else 0
        groups = [alive[k : k + size] for k in range(0, len(alive), size)] if size else [alive]
        made = 0

        def tick(n: int, step: int = step, alive: int = len(alive)) -> None:
            nonlocal made
            made += n
            if progress is not None and alive:
                progress.calls((step + made / alive) / steps)

        for group in groups:
            context = ""
            if size:
                blob = "\x1e".join(f"{seeds[i]}\x1f{texts[i]}" for i in group)
                context = "|batch=" + hashlib.sha1(blob.encode("utf-8", "surrogatepass")).hexdigest()
            _call_group(method, method_id, group, texts, seeds, cache, stats, context, whole=bool(size), tick=tick)
        if cfg.quality_scope == "each-step" and combo.k > 1 and scorer is not None:
            _judge_step(inputs, texts, scorer, cfg, stats)
    return texts


def _judge_step(
    inputs: list[str | None], outputs: list[str | None], scorer: Scorer, cfg: RunConfig, stats: ComboStats
) -> None:
    """The original tool's per-step filter: a step's output must differ from its input (ignoring case and
    surrounding space) and be within the similarity range of it; otherwise the candidate stops here."""
    judged = []
    for i, (before, after) in enumerate(zip(inputs, outputs, strict=True)):
        if before is None or after is None:
            continue
        if dedupe_key(after) == dedupe_key(before):
            outputs[i] = None
            stats.step_rejected += 1
        else:
            judged.append(i)
    sims = scorer.score_pairs([inputs[i] for i in judged], [outputs[i] for i in judged])  # type: ignore[misc]
    for i, sim in zip(judged, sims, strict=True):
        if sim is not None and not cfg.quality_min_sim <= sim <= cfg.quality_max_sim:
            outputs[i] = None
            stats.step_rejected += 1


def _fill_vectors(states: list[_RowState], scorer: Scorer) -> None:
    """Give every accepted variant its vector: a score from the cache left none, so it is encoded now, by the
    filter's own encoder and exactly as the filter encodes a candidate (the variant's evidence span)."""
    missing = [(st, i) for st in states for i, vec in enumerate(st.vectors) if vec is None]
    if not missing:
        return
    encode = getattr(scorer, "candidate_vectors", None)
    if encode is None:
        raise TypeError(f"the {scorer.name} filter makes no vectors; --keep-vectors needs the embedding filter")
    fresh = encode([st.accepted[i][0] for st, i in missing])
    for (st, i), vec in zip(missing, fresh, strict=True):
        st.vectors[i] = vec


def _vector_rows(states: list[_RowState]) -> tuple[list[tuple[str, int]], Any]:
    """The `(row_key, variant)` keys and stacked vectors of a chunk, in the order `_records` writes its rows."""
    import numpy as np

    keys = [(st.row.key, variant) for st in states for variant in range(len(st.accepted))]
    vectors = [vec for st in states for vec in st.vectors]
    return keys, (np.stack(vectors) if vectors else np.zeros((0, 0), dtype=np.float32))


def _label(states: list[_RowState], labeler: Labeler, stats: ComboStats) -> None:
    """Each accepted variant's predicted label, and whether it is its original's: in one call for the chunk."""
    texts = [text for st in states for text, _ in st.accepted]
    vectors = [vec for st in states for vec in st.vectors]
    predictions = iter(labeler.predict(texts, vectors))
    for st in states:
        expected = labeler.original(st.row.evidence)
        st.labels = [(p, p == expected) for p in (next(predictions) for _ in st.accepted)]
        stats.labelled += len(st.labels)
        stats.label_flips += sum(1 for _, agrees in st.labels if not agrees)


def _call_group(
    method: Augmenter,
    method_id: str,
    group: list[int],
    texts: list[str | None],
    seeds: dict[int, int],
    cache: Cache,
    stats: ComboStats,
    context: str,
    whole: bool,
    tick: Callable[[int], None] | None = None,
) -> None:
    """One group's calls: found in the cache, or made (a per-text method's in slices of CALL_SLICE, each told to
    `tick`; a batch as one call)."""
    canonical = method.spec.canonical() + context
    keys = {i: cache_key(method_id, canonical, method.version, seeds[i], texts[i]) for i in group}
    found = cache.get_many(list(keys.values()))
    misses = [i for i in group if keys[i] not in found]
    if whole and misses:
        misses = group  # the batch is recomputed as a whole, so every output comes from the same call
    if tick is not None:
        tick(len(group) - len(misses))
    step = len(misses) if whole else CALL_SLICE
    results: list[str | Exception] = []
    for at in range(0, len(misses), step or 1):
        part = misses[at : at + step]
        t0, built = time.perf_counter(), getattr(method, "build_seconds", 0.0)
        results += method.augment([texts[i] for i in part], [seeds[i] for i in part])
        # A method is built on its first call; that time is the shard's build_s, not the calls'.
        stats.calls_s += time.perf_counter() - t0 - (getattr(method, "build_seconds", 0.0) - built)
        if tick is not None:
            tick(len(part))
    fresh = []
    for i in group:
        if keys[i] in found and i not in misses:
            texts[i] = found[keys[i]]
    for i, result in zip(misses, results, strict=True):
        if isinstance(result, Exception):
            stats.call_errors += 1
            if not stats.first_error:
                stats.first_error = f"{method_id}: {type(result).__name__}: {result}"
            texts[i] = None
        else:
            texts[i] = result
            fresh.append((keys[i], result))
    if fresh:
        cache.put_many(fresh)


def _records(
    combo: Combo, states: list[_RowState], input_rows: dict[int, dict[str, Any]], cfg: RunConfig
) -> list[dict]:
    records = []
    for st in states:
        row = st.row
        for variant, (text, sim) in enumerate(st.accepted):
            record = dict(input_rows[row.index])
            record[cfg.text_col] = splice(row.text, row.start, row.end, text)
            if cfg.evidence_col:
                record[cfg.evidence_col] = text
                record[col.EVIDENCE_ORIGINAL] = row.evidence
                record[col.EVIDENCE_MATCH] = row.match
            else:
                record[col.TEXT_ORIGINAL] = row.text
            record[col.ROW_KEY], record[col.VARIANT], record[col.SIMILARITY] = row.key, variant, sim
            record[col.COMBO_ID], record[col.METHODS] = combo.combo_id, combo.name
            if st.labels:
                record[col.LABEL_PRED], record[col.LABEL_AGREES] = st.labels[variant]
            records.append(record)
    return records
