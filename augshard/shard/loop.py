"""One shard: open its log and events, build its context, run each combo of its work order, finish."""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from pathlib import Path

from augshard.core.config import RunConfig
from augshard.core.planning import PlannedCombo
from augshard.events.stream import (
    AUGMENTING,
    ComboDone,
    ComboFailed,
    ComboMoved,
    ComboStart,
    ComboStolen,
    ComboStopped,
    EventWriter,
    Progress,
    ShardDone,
    events_path,
    log_path,
    next_log_line,
)
from augshard.runner.job import ShardJob, ShardResult
from augshard.runner.procs import peak_rss_mb
from augshard.runner.stopping import ShardInterrupted, StopFlag, stop_file_path
from augshard.shard.claims import WorkItem, work_order
from augshard.shard.context import ShardContext
from augshard.shard.pipeline import ComboStats, run_combo
from augshard.shard.quality import CHAR_RATIO_EXACT_MAX
from augshard.storage.balance import Allocation
from augshard.storage.manifest import write_shard_manifest
from augshard.storage.meta import (
    BalanceMeta,
    ClassYield,
    ComboMeta,
    LabelMeta,
    QualityMeta,
    SourceMeta,
    SplitMeta,
    TimingMeta,
    YieldMeta,
)
from augshard.storage.outcome import ComboOutcome, Status
from augshard.storage.store import ComboWriter, read_complete
from augshard.storage.vectors import VECTORS, VectorsMeta

STOLEN = "taken from another shard's list"


def run_shard(job: ShardJob, install_signals: bool = True) -> ShardResult:
    """Run every combo of the shard; a failing combo is logged and recorded, the others go on.

    In a worker process, SIGTERM/SIGINT set its stop flag; the supervisor, settling a shard with nothing left to
    compute in its own process, keeps its own handlers (`install_signals=False`)."""
    started = time.time()
    stop = StopFlag(stop_file_path(job.cfg.log_dir, job.plan_fingerprint))
    if install_signals:
        stop.install_signal_handlers()
    log = _setup_log(log_path(job.cfg.log_dir, job.index, job.num_shards), job.index)
    events = EventWriter(events_path(job.cfg.log_dir, job.index, job.num_shards), job.index)
    events.shard_start(combos=len(job.combos), plan_fingerprint=job.plan_fingerprint, num_shards=job.num_shards)
    events.start_heartbeat()
    log.info(
        "shard %d of %d: %d combos, plan %s, pid %d, torch threads %d",
        job.index,
        job.num_shards,
        len(job.combos),
        job.plan_fingerprint,
        os.getpid(),
        job.torch_threads,
    )
    ctx = ShardContext(job, log)
    outcomes = list(job.unavailable)

    def notify(what: str, pc: PlannedCombo) -> None:
        log.info("combo %s: %s", pc.combo.dir_name, "taken over by another shard" if what == "moved" else STOLEN)
        if what == "moved":
            events.emit(ComboMoved(combo_id=pc.combo.combo_id, methods=pc.combo.name))
            return
        home = next(
            (h for h, lst in job.others if any(o.combo.combo_id == pc.combo.combo_id for o in lst)), -1
        )  # whose list it was on: its total drops now
        events.emit(ComboStolen(combo_id=pc.combo.combo_id, methods=pc.combo.name, from_shard=home))

    try:
        for item in work_order(job.index, job.combos, job.others, job.claims_dir, stop, ctx.may_steal, notify):
            outcomes.append(_run_item(job, ctx, item, events, stop))
            ctx.after_combo(item)
    finally:
        ctx.close()
    return _finish(job, ctx, outcomes, events, time.time() - started)


def _run_item(job: ShardJob, ctx: ShardContext, item: WorkItem, events: EventWriter, stop: StopFlag) -> ComboOutcome:
    combo, fp = item.combo.combo, job.plan_fingerprint
    if stop.is_set():
        return ComboOutcome.interrupted(combo, job.index, fp, "interrupted before it started")
    meta = None if job.cfg.force else read_complete(job.cfg.output_root, combo, item.combo.fingerprint)
    if meta is None:
        return _compute(job, ctx, item, events, stop)
    ctx.log.info("combo %s already complete (%d rows): skipped", combo.dir_name, meta.rows)
    events.emit(_done_event(meta, resumed=True))
    return ComboOutcome.complete(combo, meta, job.index, fp, resumed=True)


def _compute(job: ShardJob, ctx: ShardContext, item: WorkItem, events: EventWriter, stop: StopFlag) -> ComboOutcome:
    """Run one combo through the pipeline into an atomic combo folder; its outcome, whatever happens."""

    combo, log, t0 = item.combo.combo, ctx.log, time.time()
    events.emit(ComboStart(combo_id=combo.combo_id, methods=combo.name, k=combo.k))
    log.info("combo %s: start", combo.dir_name)
    writer = None
    try:
        ctx.before_combo(item)
        cfg = job.cfg
        writer = ComboWriter(cfg.output_root, combo, ctx.schema, csv=cfg.save_format == "csv", vectors=cfg.keep_vectors)

        computed_before = ctx.calls[1]  # the shard's computed calls so far: the combo's own are counted from here

        def progress(done: int, total: int, phase: str = "") -> None:
            computed = ctx.calls[1] - computed_before
            events.emit(Progress(combo_id=combo.combo_id, rows_done=done, rows_total=total, phase=phase,
                                 calls_computed=computed))  # fmt: skip
            stop.check()

        progress(0, len(ctx.dataset.rows), AUGMENTING)
        scorer, cache = ctx.scorer_for(item.home), ctx.cache_for(item.home)
        methods = ctx.methods_for(combo)
        keep = writer.write_vectors if cfg.keep_vectors else None
        bounded = _bounded(scorer)
        stats = run_combo(
            combo, ctx.dataset, methods, scorer, cache, cfg, writer.write, progress, stop.check, ctx.labeler, keep,
            on_work=progress, asks=ctx.asks,
        )  # fmt: skip
        bounded = _bounded(scorer) - bounded
        if bounded:
            log.info("combo %s: %d char_ratio score(s) of a text over %s characters bounded in time (%s)",
                     combo.dir_name, bounded, f"{CHAR_RATIO_EXACT_MAX:,}", BOUNDED_HOW)  # fmt: skip
        vectors = _vectors_meta(ctx, writer, scorer.identity) if cfg.keep_vectors else None
        meta = _combo_meta(job, ctx, item.combo, stats, writer.rows, time.time() - t0, vectors)
        writer.commit(meta)
        ctx.calls_s += stats.calls_s
        ctx.write_s += writer.seconds
        writer = None
        log.info(
            "combo %s: %d rows, %d rejected, %d call errors in %.1fs",
            combo.dir_name,
            meta.rows,
            stats.candidates_rejected,
            stats.call_errors,
            meta.timing.duration_seconds,
        )
        events.emit(_done_event(meta))
        return ComboOutcome.complete(combo, meta, job.index, job.plan_fingerprint)
    except ShardInterrupted:
        log.warning("combo %s: interrupted; its partial output was removed", combo.dir_name)
        events.emit(ComboStopped(combo_id=combo.combo_id, methods=combo.name))
        return ComboOutcome.interrupted(combo, job.index, job.plan_fingerprint, duration_s=round(time.time() - t0, 3))
    except Exception as exc:  # noqa: BLE001 - one combo's failure must not stop the others
        summary = f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:300]
        lpath = log_path(job.cfg.log_dir, job.index, job.num_shards)
        failed_at = f"{lpath}:{next_log_line(lpath)}"
        # A full disk or a vanished folder is no bug: its one line says all, a traceback would only bury it.
        trace = "" if isinstance(exc, OSError) else "\n" + traceback.format_exc()
        log.error("combo %s FAILED: %s%s", combo.dir_name, summary, trace)
        events.emit(ComboFailed(combo_id=combo.combo_id, methods=combo.name, error=summary, log=failed_at))
        return ComboOutcome.failed(combo, job.index, job.plan_fingerprint, summary, round(time.time() - t0, 3))
    finally:
        if writer is not None:
            writer.abort()


def _done_event(meta: ComboMeta, resumed: bool = False) -> ComboDone:
    return ComboDone(
        combo_id=meta.combo_id,
        methods="+".join(meta.methods),
        rows=meta.rows,
        rejected=meta.candidates_rejected,
        skipped=meta.rows_skipped,
        duration=meta.timing.duration_seconds,
        rows_input=meta.rows_input,
        resumed=resumed,
    )


BOUNDED_HOW = "common prefix and suffix exact, the rest by difflib or character counts; docs/cli.md#long-texts"


def _bounded(scorer: object) -> int:
    """How many char_ratio scores so far were `bounded_char_ratio`'s (0 for the other metrics)."""
    return getattr(getattr(scorer, "inner", scorer), "bounded", 0)


def _vectors_meta(ctx: ShardContext, writer: ComboWriter, encoder: str) -> VectorsMeta:
    """What the combo's vectors.parquet holds; a combo without rows asks the encoder its dimension. The writer adds
    the file's dtype and sha256 when it closes it (`ComboWriter.commit`)."""
    return VectorsMeta(
        file=VECTORS,
        dim=writer.vector_dim or ctx.encoder.dim,
        rows=writer.vector_rows,
        encoder=encoder,
        field="evidence" if ctx.job.cfg.evidence_col else "text",
    )


def _combo_meta(
    job: ShardJob,
    ctx: ShardContext,
    pc: PlannedCombo,
    stats: ComboStats,
    rows: int,
    duration: float,
    vectors: VectorsMeta | None = None,
) -> ComboMeta:
    """The meta.json of a combo just computed."""
    cfg, combo, dataset, specs = job.cfg, pc.combo, ctx.dataset, ctx.specs
    embedding = cfg.quality_metric == "embedding"
    return ComboMeta(
        combo_id=combo.combo_id,
        combo_dir=combo.dir_name,
        methods=list(combo.methods),
        k=combo.k,
        method_args={m: specs[m].args for m in combo.methods},
        method_specs={m: specs[m].canonical() for m in combo.methods},
        seed=cfg.seed,
        variants_per_sample=cfg.variants_per_sample,
        max_candidates_per_variant=cfg.max_candidates_per_variant,
        quality=QualityMeta(
            metric=cfg.quality_metric,
            min_sim=cfg.quality_min_sim,
            max_sim=cfg.quality_max_sim,
            model=(cfg.embedding_model or "all-MiniLM-L6-v2") if embedding else None,
            backend=cfg.embedding_backend if embedding else None,
            scope=cfg.quality_scope,
            device=cfg.device if embedding else None,
        ),
        rows=rows,
        columns=list(ctx.schema.names),
        rows_input=len(dataset.rows),
        rows_skipped=dataset.rows_skipped,
        rows_skipped_by_reason=dict(dataset.skipped),
        variants=_yield(stats, ctx.asks.asked(dataset.rows), rows, cfg),
        first_candidate_error=stats.first_error,
        source=SourceMeta(
            path=str(Path(cfg.input).resolve()),
            sha256=dataset.sha256,
            text_col=cfg.text_col,
            evidence_col=cfg.evidence_col,
            id_col=cfg.id_col,
            origin=dataset.origin,
            row_keys=dataset.key_rule,
        ),
        split=SplitMeta(cfg.split_col, list(cfg.augment_split), len(dataset.held_out)) if cfg.split_col else None,
        balance=_balance_meta(ctx.asks, stats),
        library_versions=ctx.library_versions,
        timing=TimingMeta(
            duration_seconds=round(duration, 3),
            rows_per_second=round(rows / duration, 2) if duration > 0 else None,
            input_rows_per_second=round(len(dataset.rows) / duration, 2) if duration > 0 else None,
        ),
        plan_fingerprint=job.plan_fingerprint,
        config_fingerprint=cfg.fingerprint(),
        combo_fingerprint=pc.fingerprint,
        shard=job.index,
        label_check=_label_meta(ctx, stats),
        vectors=vectors,
    )


def _label_meta(ctx: ShardContext, stats: ComboStats) -> LabelMeta | None:
    if ctx.labeler is None:
        return None
    return LabelMeta.of(ctx.labeler.check, stats.labelled, stats.label_flips)


def _balance_meta(asks: Allocation, stats: ComboStats) -> BalanceMeta | None:
    """Each class's originals, variants per row, asked and kept, with --balance or --variants-per-class."""
    if asks.uniform:
        return None
    classes = [ClassYield(c.label, c.originals, c.per_row, c.asked, stats.kept_by_class[c.label]) for c in asks.classes]
    return BalanceMeta(asks.target, asks.cap, classes)


def _yield(stats: ComboStats, asked: int, kept: int, cfg: RunConfig) -> YieldMeta:
    return YieldMeta(
        asked=asked,
        kept=kept,
        candidates=stats.candidates,
        unchanged=stats.unchanged,
        duplicates=stats.duplicates,
        below_min_sim=stats.below_min_sim,
        above_max_sim=stats.above_max_sim,
        call_errors=stats.call_errors,
        step_rejected=stats.step_rejected,
        rows_short=stats.rows_short,
        explanation=stats.explain(asked, kept, cfg.quality_min_sim, cfg.quality_max_sim),
    )


def _finish(
    job: ShardJob, ctx: ShardContext, outcomes: list[ComboOutcome], events: EventWriter, duration: float
) -> ShardResult:
    """Write the shard manifest, say what the shard did (log and `ShardDone`), close its events."""

    log = ctx.log
    counters = ctx.filter_counters()
    if counters:
        log.info("filter %s: %s", job.cfg.quality_metric, ", ".join(f"{k} {v}" for k, v in counters.items()))
    cached, computed = ctx.calls
    if ctx.has_caches:
        log.info("method calls: %d from the cache, %d computed in %.1fs; building methods took %.1fs, writing %.1fs",
                 cached, computed, ctx.calls_s, ctx.build_s, ctx.write_s)  # fmt: skip
    manifest = write_shard_manifest(job.cfg.output_root, job.index, job.num_shards, outcomes)
    lpath = log_path(job.cfg.log_dir, job.index, job.num_shards)
    result = ShardResult(job.index, outcomes, str(lpath), str(manifest), round(duration, 3))
    events.emit(
        ShardDone(
            combos_failed=sum(1 for o in outcomes if o.status is Status.FAILED),
            duration=result.duration_s,
            interrupted=any(o.status is Status.INTERRUPTED for o in outcomes),
            filter=counters,
            calls_cached=cached,
            calls_computed=computed,
            peak_rss_mb=peak_rss_mb(),
            build_s=round(ctx.build_s, 3),
            calls_s=round(ctx.calls_s, 3),
            write_s=round(ctx.write_s, 3),
        )
    )
    events.close()
    log.info(
        "shard done in %.1fs: %d combos, %d failed, peak RSS %d MB",
        result.duration_s,
        len(outcomes),
        len(result.failed),
        peak_rss_mb(),
    )
    return result


class QuietFileHandler(logging.FileHandler):
    """A shard log that cannot be written (a full disk) says so once on stderr, not with a traceback per line."""

    failed = False

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        exc = sys.exc_info()[1]
        if not isinstance(exc, OSError):
            super().handleError(record)
            return
        if not self.failed:
            self.failed = True
            sys.stderr.write(f"augshard: cannot write the shard log {self.baseFilename}: {exc.strerror or exc}\n")


def _setup_log(path: Path, index: int) -> logging.Logger:
    path.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger("augshard")
    logger.handlers.clear()
    handler = QuietFileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s shard {index}: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger
