"""One shard: its log, capped threads, lazily built methods, its combos through pipeline and store, its events."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from augshard.config import RunConfig
from augshard.gpu import GpuSlot, cuda_available
from augshard.methods.catalogue import MethodSpec
from augshard.plan import PlannedCombo


@dataclass(frozen=True)
class ShardJob:
    cfg: RunConfig
    index: int
    num_shards: int
    combos: tuple[PlannedCombo, ...]
    specs: tuple[MethodSpec, ...]
    plan_fingerprint: str
    input_sha: str
    torch_threads: int = 1
    # Written into this shard's manifest so a merge lists them; only shard 0 carries them.
    unavailable: tuple[dict[str, Any], ...] = ()
    # Work stealing (a run of every shard at once): the other shards' (index, combo list), and the folder where a
    # shard claims a combo before starting it. A shard that runs out of work takes the tails of the others' lists.
    others: tuple[tuple[int, tuple[PlannedCombo, ...]], ...] = ()
    claims_dir: str = ""


@dataclass
class ShardResult:
    index: int
    entries: list[dict[str, Any]] = field(default_factory=list)
    log_path: str = ""
    manifest_path: str = ""
    duration_s: float = 0.0

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [e for e in self.entries if e["status"] in ("failed", "interrupted")]


def cap_threads(n: int) -> None:
    """N shards on C cores get C/N threads each. torch and the BLAS libraries read these variables when they
    start their pools, so nothing heavy is imported here; a torch that is already loaded is told directly."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ[var] = str(n)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)


def peak_rss_mb() -> int:
    """This process's peak resident memory so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak / (1 << 20 if sys.platform == "darwin" else 1 << 10))


def _setup_log(path: Path, index: int) -> logging.Logger:
    path.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger("augshard")
    logger.handlers.clear()
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s shard {index}: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def manifest_entry(
    job: ShardJob, pc: PlannedCombo, status: str = "failed", error: str = "", meta: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One manifest row; with a complete combo's meta.json its counts come from there."""
    combo = pc.combo
    return {
        "combo_id": combo.combo_id,
        "combo_dir": combo.dir_name,
        "methods": combo.name,
        "k": combo.k,
        "rows": meta["rows"] if meta else 0,
        "rows_skipped": meta["rows_skipped"] if meta else 0,
        "rows_rejected": meta["rows_rejected"] if meta else 0,
        "status": status,
        "dataset_path": f"{combo.dir_name}/dataset.parquet",
        "duration_s": meta["timing"]["duration_seconds"] if meta else 0.0,
        "shard": job.index,
        "resumed": False,
        "plan_fingerprint": job.plan_fingerprint,
        "error": error[:300],
    }


class ShardInterrupted(BaseException):
    """Raised between chunks once the shard was asked to stop (a BaseException, so no combo handler eats it)."""


_STOP = threading.Event()


def install_stop_handlers() -> None:
    """SIGTERM from the supervisor, or SIGINT from the terminal, asks the shard to stop after its current chunk."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: _STOP.set())


_STOP_FILE: Path | None = None


def stop_file_path(log_dir: str | Path, plan_fingerprint: str) -> Path:
    """A Dask run's supervisor creates this file to stop the shards of its plan, which it cannot signal."""
    return Path(log_dir) / f".augshard-stop-{plan_fingerprint}"


def check_stop() -> None:
    if _STOP.is_set() or (_STOP_FILE is not None and _STOP_FILE.exists()):
        _STOP.set()
        raise ShardInterrupted()


def claim(claims_dir: str, combo_id: str, index: int) -> bool:
    """Take a combo for shard `index` (an exclusive create); a claim of this shard's earlier attempt is its own."""
    path = Path(claims_dir) / combo_id
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        try:
            return path.read_text(encoding="utf-8").strip() == str(index)
        except OSError:
            return False
    try:
        os.write(fd, str(index).encode())
    finally:
        os.close(fd)
    return True


def claimed_by(claims_dir: str, index: int) -> set[str]:
    """Combo ids that shard `index` claimed in this run."""
    out = set()
    folder = Path(claims_dir)
    if claims_dir and folder.is_dir():
        for path in folder.iterdir():
            try:
                if path.read_text(encoding="utf-8").strip() == str(index):
                    out.add(path.name)
            except OSError:
                continue
    return out


def _work(job: ShardJob, events: Any, log: logging.Logger, gpu_methods: set[str]):  # noqa: ANN202 - a generator
    """(position in the shard's own list or -1, combo, the shard whose list it is on): the shard's own combos,
    minus those another shard took, then - with work stealing on - combos from the tails of the others' lists."""
    from augshard.store import read_complete

    for n, pc in enumerate(job.combos):
        if job.claims_dir and not _STOP.is_set() and not claim(job.claims_dir, pc.combo.combo_id, job.index):
            log.info("combo %s: taken over by another shard", pc.combo.dir_name)
            events.emit("combo_moved", combo_id=pc.combo.combo_id, methods=pc.combo.name)
            continue
        yield n, pc, job.index
    if not job.claims_dir:
        return
    # Interleave the others' lists from their ends: what is left there is the smallest work of each shard.
    tails = [[(home, pc) for pc in reversed(lst)] for home, lst in job.others]
    order = [t[i] for i in range(max(map(len, tails), default=0)) for t in tails if i < len(t)]
    mine = claimed_by(job.claims_dir, job.index)  # a retried shard first finishes what it had taken
    order.sort(key=lambda hp: hp[1].combo.combo_id not in mine)
    for home, pc in order:
        if _STOP.is_set():
            return
        if gpu_methods & set(pc.combo.methods):
            continue  # GPU slots are planned per shard: those combos stay where the plan put them
        if not job.cfg.force and read_complete(job.cfg.output_root, pc.combo, pc.fingerprint) is not None:
            continue
        if claim(job.claims_dir, pc.combo.combo_id, job.index):
            log.info("combo %s: taken from another shard's list", pc.combo.dir_name)
            events.emit("combo_stolen", combo_id=pc.combo.combo_id, methods=pc.combo.name)
            yield -1, pc, home


def _filter_counters(scorers: list[Any]) -> dict[str, float]:
    """The filter's counters over the shard's cached scorers (they share one model, counted once)."""
    if not scorers:
        return {}
    parts = [s.counters() for s in scorers]
    out = dict(parts[0])
    out["score_hits"] = sum(p["score_hits"] for p in parts)
    out["score_misses"] = sum(p["score_misses"] for p in parts)
    out["filter_s"] = round(sum(p["filter_s"] for p in parts), 3)
    return out


def library_versions() -> dict[str, str]:
    from augshard import __version__
    from augshard.methods.base import library_version

    libs = ("nlpaug", "textattack", "sentence-transformers", "transformers", "torch", "pyarrow", "nltk")
    return {"augshard": __version__, **{lib: library_version(lib) for lib in libs}}


def run_shard(job: ShardJob) -> ShardResult:
    """Run every combo of the shard; a failing combo is logged and recorded, the others go on."""
    from augshard.cache import Cache
    from augshard.data import load_dataset
    from augshard.events import EventWriter, events_path, log_path, next_log_line
    from augshard.manifest import write_shard_manifest
    from augshard.methods import LazyMethod
    from augshard.methods.offline import apply_offline_env
    from augshard.pipeline import output_schema, run_combo
    from augshard.quality import CachedScorer, make_scorer
    from augshard.store import ComboWriter, read_complete

    started = time.time()
    cfg = job.cfg
    install_stop_handlers()
    global _STOP_FILE
    _STOP_FILE = stop_file_path(cfg.log_dir, job.plan_fingerprint)
    lpath = log_path(cfg.log_dir, job.index, job.num_shards)
    log = _setup_log(lpath, job.index)
    events = EventWriter(events_path(cfg.log_dir, job.index, job.num_shards), job.index)
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
    result = ShardResult(job.index, entries=list(job.unavailable), log_path=str(lpath))
    specs = {s.id: s for s in job.specs}
    versions = library_versions()
    dataset = schema = inner = None
    # One cache per plan shard: a combo taken from another shard's list reads and writes that shard's cache, so
    # the next run finds its calls where the plan puts the combo, whichever shard ran it this time.
    caches: dict[int, Any] = {}
    scorers: dict[int, Any] = {}
    methods: dict[str, Any] = {}
    gpu_methods = {s.id for s in job.specs if s.requires_gpu}
    gpu_combos = [n for n, pc in enumerate(job.combos) if gpu_methods & set(pc.combo.methods)]
    gpu = GpuSlot(cfg.cache_dir, cfg.gpu_slots)
    interrupted = False
    for n, pc, home in _work(job, events, log, gpu_methods):
        combo = pc.combo
        if interrupted or _STOP.is_set():
            interrupted = True
            result.entries.append(manifest_entry(job, pc, status="interrupted", error="interrupted before it started"))
            continue
        entry = manifest_entry(job, pc)
        meta = None if cfg.force else read_complete(cfg.output_root, combo, pc.fingerprint)
        if meta is not None:
            entry.update(
                rows=meta["rows"],
                rows_skipped=meta["rows_skipped"],
                rows_rejected=meta["rows_rejected"],
                status="ok",
                duration_s=meta["timing"]["duration_seconds"],
                resumed=True,
            )
            log.info("combo %s already complete (%d rows): skipped", combo.dir_name, meta["rows"])
            events.emit(
                "combo_done",
                combo_id=combo.combo_id,
                methods=combo.name,
                rows=meta["rows"],
                rejected=meta["rows_rejected"],
                skipped=meta["rows_skipped"],
                duration=meta["timing"]["duration_seconds"],
                rows_input=meta.get("rows_input", 0),
                resumed=True,
            )
            result.entries.append(entry)
            continue
        t0 = time.time()
        events.emit("combo_start", combo_id=combo.combo_id, methods=combo.name, k=combo.k)
        log.info("combo %s: start", combo.dir_name)
        writer = None
        try:
            if dataset is None:
                # Heavy set-up only once there is work: a shard whose combos are all complete stays light.
                apply_offline_env()
                cap_threads(job.torch_threads)
                dataset = load_dataset(cfg.input, cfg.text_col, cfg.evidence_col, cfg.id_col)
                if dataset.sha256 != job.input_sha:
                    raise RuntimeError(f"input {cfg.input} changed since the plan was made; rerun")
                schema = output_schema(dataset.table.schema, cfg.evidence_col is not None)
                log.info(
                    "input: %d rows usable, %d skipped %s",
                    len(dataset.rows),
                    dataset.rows_skipped,
                    dict(dataset.skipped),
                )
            if n in gpu_combos and not gpu.held and cuda_available():
                gpu.acquire(lambda: log.info("waiting for one of %d GPU slots", gpu.slots))
                log.info("holding GPU slot %d", gpu.index)
            for method_id in combo.methods:
                if method_id not in methods:
                    methods[method_id] = LazyMethod(specs[method_id])  # built on its first cache miss
            if home not in caches:
                caches[home] = Cache(Path(cfg.cache_dir) / f"augment_shard{home}.db")
            cache = caches[home]
            if inner is None:
                inner = make_scorer(
                    cfg.quality_metric, cfg.embedding_model, cfg.embedding_batch_size, cache, cfg.embedding_backend
                )
            if hasattr(inner, "cache"):
                inner.cache = cache  # the originals' vectors, too, live in the combo's plan shard's cache
            if home not in scorers:
                scorers[home] = CachedScorer(inner, cache)
            scorer = scorers[home]
            writer = ComboWriter(cfg.output_root, combo, schema)

            def progress(done: int, total: int, _combo=combo) -> None:
                events.emit("progress", combo_id=_combo.combo_id, rows_done=done, rows_total=total)
                check_stop()

            progress(0, len(dataset.rows))
            stats = run_combo(combo, dataset, methods, scorer, cache, cfg, writer.write, progress, check_stop)
            duration = time.time() - t0
            meta = {
                "combo_id": combo.combo_id,
                "combo_dir": combo.dir_name,
                "methods": list(combo.methods),
                "k": combo.k,
                "method_args": {m: specs[m].args for m in combo.methods},
                "method_specs": {m: specs[m].canonical() for m in combo.methods},
                "seed": cfg.seed,
                "variants_per_sample": cfg.variants_per_sample,
                "max_candidates_per_variant": cfg.max_candidates_per_variant,
                "quality": {
                    "metric": cfg.quality_metric,
                    "min_sim": cfg.quality_min_sim,
                    "max_sim": cfg.quality_max_sim,
                    "model": (cfg.embedding_model or "all-MiniLM-L6-v2") if cfg.quality_metric == "embedding" else None,
                    "backend": cfg.embedding_backend if cfg.quality_metric == "embedding" else None,
                },
                "rows": writer.rows,
                "rows_input": len(dataset.rows),
                "rows_skipped": dataset.rows_skipped,
                "rows_skipped_by_reason": dict(dataset.skipped),
                "rows_rejected": stats.rows_rejected,
                "rejected_similarity": stats.rejected_similarity,
                "rejected_unchanged": stats.rejected_unchanged,
                "rows_short": stats.rows_short,
                "candidates": stats.candidates,
                "candidate_errors": stats.candidate_errors,
                "first_candidate_error": stats.first_error,
                "source": {
                    "path": str(Path(cfg.input).resolve()),
                    "sha256": dataset.sha256,
                    "text_col": cfg.text_col,
                    "evidence_col": cfg.evidence_col,
                    "id_col": cfg.id_col,
                },
                "library_versions": versions,
                "timing": {
                    "duration_seconds": round(duration, 3),
                    "rows_per_second": round(writer.rows / duration, 2) if duration > 0 else None,
                    "input_rows_per_second": round(len(dataset.rows) / duration, 2) if duration > 0 else None,
                },
                "plan_fingerprint": job.plan_fingerprint,
                "config_fingerprint": cfg.fingerprint(),
                "combo_fingerprint": pc.fingerprint,
                "shard": job.index,
            }
            writer.commit(meta)
            writer = None
            entry.update(
                rows=meta["rows"],
                rows_skipped=dataset.rows_skipped,
                rows_rejected=stats.rows_rejected,
                status="ok",
                duration_s=round(duration, 3),
            )
            log.info(
                "combo %s: %d rows, %d rejected, %d call errors in %.1fs",
                combo.dir_name,
                meta["rows"],
                stats.rows_rejected,
                stats.candidate_errors,
                duration,
            )
            events.emit(
                "combo_done",
                combo_id=combo.combo_id,
                methods=combo.name,
                rows=meta["rows"],
                rejected=stats.rows_rejected,
                skipped=dataset.rows_skipped,
                duration=round(duration, 3),
                rows_input=len(dataset.rows),
            )
        except ShardInterrupted:
            if writer is not None:
                writer.abort()
            interrupted = True
            log.warning("combo %s: interrupted; its partial output was removed", combo.dir_name)
            entry.update(status="interrupted", error="interrupted", duration_s=round(time.time() - t0, 3))
            events.emit("combo_failed", combo_id=combo.combo_id, methods=combo.name, error="interrupted")
        except Exception as exc:  # noqa: BLE001 - one combo's failure must not stop the others
            if writer is not None:
                writer.abort()
            summary = f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:300]
            failed_at = f"{lpath}:{next_log_line(lpath)}"
            log.error("combo %s FAILED: %s\n%s", combo.dir_name, summary, traceback.format_exc())
            entry.update(error=summary, duration_s=round(time.time() - t0, 3))
            events.emit("combo_failed", combo_id=combo.combo_id, methods=combo.name, error=summary, log=failed_at)
        result.entries.append(entry)
        if gpu.held and n == gpu_combos[-1]:
            # The shard's last GPU combo is done: free the models and the slot for the other shards.
            for method_id in gpu_methods & set(methods):
                del methods[method_id]
            import torch

            torch.cuda.empty_cache()
            gpu.release()
    gpu.release()
    counters = _filter_counters(list(scorers.values()))
    if counters:
        log.info("filter %s: %s", cfg.quality_metric, ", ".join(f"{k} {v}" for k, v in counters.items()))
    calls_cached, calls_computed = sum(c.hits for c in caches.values()), sum(c.misses for c in caches.values())
    if caches:
        log.info("method calls: %d from the cache, %d computed", calls_cached, calls_computed)
    for cache in caches.values():
        cache.close()
    result.manifest_path = str(write_shard_manifest(cfg.output_root, job.index, job.num_shards, result.entries))
    result.duration_s = round(time.time() - started, 3)
    events.emit(
        "shard_done",
        combos_failed=len(result.failed),
        duration=result.duration_s,
        interrupted=interrupted,
        filter=counters,
        calls_cached=calls_cached,
        calls_computed=calls_computed,
        peak_rss_mb=peak_rss_mb(),
    )
    events.close()
    log.info(
        "shard done in %.1fs: %d combos, %d failed, peak RSS %d MB",
        result.duration_s,
        len(result.entries),
        len(result.failed),
        peak_rss_mb(),
    )
    return result
