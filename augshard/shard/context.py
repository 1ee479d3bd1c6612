"""A shard's context: what it builds once, lazily, for its combos (input, output schema, methods, one cache and
scorer per plan shard, a GPU slot), its counters, and closing it all."""

from __future__ import annotations

import functools
import logging
from typing import Any

from augshard.core.combos import Combo
from augshard.core.environment import library_version
from augshard.core.gpu import GpuSlot, cuda_available
from augshard.core.planning import PlannedCombo
from augshard.core.version import __version__
from augshard.methods import LazyMethod
from augshard.methods.offline import apply_offline_env
from augshard.methods.registry import LIBRARIES as METHOD_LIBRARIES
from augshard.runner.job import ShardJob
from augshard.runner.procs import cap_threads
from augshard.shard.cache import Cache, method_cache_path
from augshard.shard.claims import WorkItem
from augshard.shard.encoders import Encoder, resolve_device
from augshard.shard.labels import Labeler, LabelModel
from augshard.shard.pipeline import output_schema
from augshard.shard.quality import CachedScorer, make_scorer
from augshard.storage.balance import Allocation, allocate
from augshard.storage.data import Dataset, Split, load_dataset
from augshard.storage.store import read_complete

# Recorded in every meta.json: the method libraries (the registry's) and those of the filter and the output.
LIBRARIES = (*METHOD_LIBRARIES, "sentence-transformers", "pyarrow")


class ShardContext:
    """Nothing heavy is built until a combo needs it: a shard whose combos are all complete stays light.

    One cache per plan shard: a combo taken from another shard's list reads and writes that shard's cache, so the
    next run finds its calls where the plan puts the combo, whichever shard ran it this time. The scorers of those
    caches share one encoder (one model in memory).
    """

    def __init__(self, job: ShardJob, log: logging.Logger) -> None:
        self.job = job
        self.log = log
        self.specs = {s.id: s for s in job.specs}
        self._dataset: Dataset | None = None
        self._schema: Any = None
        self._methods: dict[str, LazyMethod] = {}
        self._released_build_s = 0.0  # building the GPU methods freed after their last combo
        self.calls_s = 0.0  # inside the methods' computed calls, over the shard's completed combos
        self.write_s = 0.0  # writing their Parquet files and committing their folders
        self._caches: dict[int, Cache] = {}
        self._scorers: dict[int, CachedScorer] = {}
        self._encoder: Encoder | None = None
        self._labeler: Labeler | None = None
        self._versions: dict[str, str] | None = None
        self.gpu_methods = {s.id for s in job.specs if s.requires_gpu}
        self._gpu_positions = [n for n, pc in enumerate(job.combos) if self.gpu_methods & set(pc.combo.methods)]
        self.gpu = GpuSlot(job.cfg.cache_dir, job.cfg.gpu_slots)

    @property
    def dataset(self) -> Dataset:
        if self._dataset is None:
            cfg = self.job.cfg
            apply_offline_env()
            cap_threads(self.job.torch_threads)
            if cfg.device.startswith("cuda"):
                resolve_device(cfg.device)  # a worker without the GPU the plan was made for says so, per combo
            split = Split.of(cfg.split_col, cfg.augment_split)
            dataset = load_dataset(cfg.input, cfg.text_col, cfg.evidence_col, cfg.id_col, split)
            if dataset.sha256 != self.job.input_sha:
                raise RuntimeError(f"input {cfg.input} changed since the plan was made; rerun")
            self._schema = output_schema(dataset.table.schema, cfg.evidence_col is not None, bool(cfg.label_col))
            self.log.info(
                "input: %d rows usable, %d skipped %s", len(dataset.rows), dataset.rows_skipped, dict(dataset.skipped)
            )
            self._dataset = dataset
        return self._dataset

    @functools.cached_property
    def asks(self) -> Allocation:
        """The variants each usable row asks for (--balance, --variants-per-class), the same in every shard."""
        return allocate(self.dataset, self.job.cfg)

    @property
    def schema(self) -> Any:
        _ = self.dataset
        return self._schema

    @property
    def library_versions(self) -> dict[str, str]:
        if self._versions is None:
            self._versions = {"augshard": __version__, **{lib: library_version(lib) for lib in LIBRARIES}}
        return self._versions

    def may_steal(self, pc: PlannedCombo) -> bool:
        """GPU slots are planned per shard: those combos stay where the plan put them; complete ones need no one."""
        if self.gpu_methods & set(pc.combo.methods):
            return False
        cfg = self.job.cfg
        return cfg.force or read_complete(cfg.output_root, pc.combo, pc.fingerprint) is None

    def before_combo(self, item: WorkItem) -> None:
        """The input is loaded, and the shard's first GPU combo takes a GPU slot (waiting for one if need be)."""
        _ = self.dataset
        if item.position in self._gpu_positions and not self.gpu.held and cuda_available():
            self.gpu.acquire(lambda: self.log.info("waiting for one of %d GPU slots", self.gpu.slots))
            self.log.info("holding GPU slot %d", self.gpu.index)

    def after_combo(self, item: WorkItem) -> None:
        """After the shard's last GPU combo: free the models and the slot for the other shards."""
        if self.gpu.held and item.position == self._gpu_positions[-1]:
            for method_id in self.gpu_methods & set(self._methods):
                self._released_build_s += self._methods.pop(method_id).build_seconds
            import torch

            torch.cuda.empty_cache()
            self.gpu.release()

    def methods_for(self, combo: Combo) -> dict[str, LazyMethod]:
        """The combo's methods, each built on its first cache miss and kept for the shard's later combos."""
        for method_id in combo.methods:
            if method_id not in self._methods:
                self._methods[method_id] = LazyMethod(self.specs[method_id], self.job.cfg.device)
        return self._methods

    def cache_for(self, home: int) -> Cache:
        cfg = self.job.cfg
        if cfg.disk_cache:  # one file for every shard (the original tool's --disk-cache)
            home = -1
        if home not in self._caches:
            self._caches[home] = Cache(method_cache_path(cfg.cache_dir, cfg.disk_cache, home))
        return self._caches[home]

    def scorer_for(self, home: int) -> CachedScorer:
        """The quality filter behind plan shard `home`'s cache (the originals' vectors live there too)."""
        if self.job.cfg.disk_cache:
            home = -1
        if home not in self._scorers:
            cfg, cache = self.job.cfg, self.cache_for(home)
            encoder = self.encoder if cfg.quality_metric == "embedding" else None
            inner = make_scorer(cfg.quality_metric, cache=cache, encoder=encoder)
            self._scorers[home] = CachedScorer(inner, cache)
        return self._scorers[home]

    @property
    def encoder(self) -> Encoder:
        """The shard's one sentence model (the filter's, and the label check's)."""
        if self._encoder is None:
            cfg = self.job.cfg
            self._encoder = Encoder(cfg.embedding_model, cfg.embedding_batch_size, cfg.embedding_backend, cfg.device)
        return self._encoder

    @property
    def labeler(self) -> Labeler | None:
        """With --label-col: the classifier fitted on every original's vector and label (the same in every shard,
        which sees every original), built when the first combo needs it."""
        cfg = self.job.cfg
        if not cfg.label_col:
            return None
        if self._labeler is None:
            rows = self.dataset.rows
            texts = [row.evidence for row in rows]
            column = self.dataset.table.column(cfg.label_col).to_pylist()
            if cfg.quality_metric == "embedding":  # the filter's own vectors of the originals, cached
                vectors = self.scorer_for(self.job.index).inner.original_vectors(texts)
            else:
                vectors = self.encoder.encode(texts)
            model = LabelModel(vectors, [column[row.index] for row in rows], cfg.label_col, seed=cfg.seed)
            self._labeler = Labeler(model, texts, vectors, self.encoder.encode)
            check = model.check
            self.log.info(
                "label check on %s: %d originals, %d classes, cross-validated accuracy %s (majority %.3f)%s",
                cfg.label_col, check.originals, len(check.classes), check.cv_accuracy, check.majority_rate,
                " - weak" if check.weak else "",
            )  # fmt: skip
        return self._labeler

    def filter_counters(self) -> dict[str, float]:
        """The filter's counters over the shard's scorers (they share one encoder, counted once)."""
        parts = [s.counters() for s in self._scorers.values()]
        if not parts:
            return {}
        out = dict(parts[0])
        summed = ("originals_encoded", "originals_from_cache", "candidates_encoded", "candidates_reencoded")
        for key in ("score_hits", "score_misses", *summed):
            if key in out:
                out[key] = sum(p[key] for p in parts)
        for key in ("filter_s", "originals_encode_s"):  # seconds: per scorer, so summed
            if key in out:
                out[key] = round(sum(p[key] for p in parts), 3)
        return out

    @property
    def has_caches(self) -> bool:
        return bool(self._caches)

    @property
    def calls(self) -> tuple[int, int]:
        """Method calls answered from the caches, and computed."""
        return sum(c.hits for c in self._caches.values()), sum(c.misses for c in self._caches.values())

    @property
    def build_s(self) -> float:
        """Seconds spent building methods (imports, models): each shard builds the methods its combos use."""
        return self._released_build_s + sum(m.build_seconds for m in self._methods.values())

    def close(self) -> None:
        self.gpu.release()
        for cache in self._caches.values():
            cache.close()
