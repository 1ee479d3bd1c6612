"""How long a run will take, in seconds, before it starts: the dry run's and `plan()`'s estimate.

Measured here, not guessed: every combo to run goes through the run's own pipeline (`run_combo`: its methods,
seeds, filter and cache, a cache of its own in a temporary folder) on a probe of a few input rows spread over the
input, and the worker's imports, the methods' builds and the filter's model are timed on this machine. A combo's
time on the probe, scaled by the variants the run asks for over those the probe asked for, is its estimate; the
shards share the combos (work stealing). What was measured lands in a per-machine cache beside the probe cache, so
a second dry run of the same input measures nothing.

Not counted: the label check (--label-col), --keep-vectors, and a warm method cache (a rerun of calls already
made); the plan says so when they apply."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from augshard.core.combos import Combo
from augshard.core.config import RunConfig
from augshard.core.fingerprint import sha
from augshard.methods import PROBE, LazyMethod
from augshard.methods.probes import machine_context, probe_cache_path, probe_key, read_cache, write_cache
from augshard.methods.registry import family
from augshard.methods.spec import MethodSpec
from augshard.runner.procs import cap_threads, environ_kept
from augshard.shard.cache import Cache, method_caches
from augshard.shard.encoders import Encoder, onnx_export_dir
from augshard.shard.pipeline import run_combo
from augshard.shard.quality import CachedScorer, make_scorer, resolve_embedding_model
from augshard.storage.data import Dataset, Row

ESTIMATE_CACHE_ENV = "AUGSHARD_ESTIMATE_CACHE"
PROBE_ROWS = 16  # rows of the input a small plan is probed on, spread evenly over it
PROBE_CANDIDATES = 2000  # a big plan probes fewer rows, down to MIN_PROBE_ROWS, to draw about this many in all
MIN_PROBE_ROWS = 2
ATTEMPTS = 2  # candidates a variant draws, about, for sizing the probe


def estimate_cache_path() -> Path:
    """`$AUGSHARD_ESTIMATE_CACHE` if set; else estimates.json beside the probe cache."""
    override = os.environ.get(ESTIMATE_CACHE_ENV)
    return Path(override).expanduser().absolute() if override else probe_cache_path().with_name("estimates.json")


@dataclass(frozen=True)
class ComboTime:
    """One combo's share of the estimate: its probe's time scaled to the run's variants."""

    combo_id: str
    seconds: float  # all of it: calls, filter, the pipeline's own work
    calls_s: float  # in its methods' calls
    filter_s: float  # in the similarity filter


@dataclass(frozen=True)
class Estimate:
    """The time a run would take on this machine: `seconds` from launch to the merged manifest."""

    seconds: float
    start_s: float  # launch to the first combo: the CLI, its checks, the workers' imports and builds
    calls_s: float  # every combo's method calls, all shards together
    filter_s: float  # every combo's similarity filter, all shards together
    other_s: float  # every combo's pipeline work besides (caches, records), all shards together
    shards: int  # shards sharing the combos
    parallel: int  # of which run at once on this machine's cores
    probe_rows: int
    from_cache: bool  # everything was measured before (the estimate cache)
    combos: tuple[ComboTime, ...] = field(default=(), repr=False)
    not_counted: tuple[str, ...] = ()

    def line(self) -> str:
        """The dry run's line."""
        if not self.combos:
            return "estimated time: nothing to run"
        where = f"{self.shards} {'shard' if self.shards == 1 else 'shards'}"
        if self.parallel < self.shards:
            where += f", {self.parallel} at a time on this machine's cores"
        parts = (
            f"start {duration(self.start_s)}; all shards together: method calls {duration(self.calls_s)}, "
            f"similarity filter {duration(self.filter_s)}, the rest {duration(self.other_s)}"
        )
        probe = f"measured on {self.probe_rows} rows" + (" (cached)" if self.from_cache else "")
        tail = f"; not counted: {', '.join(self.not_counted)}" if self.not_counted else ""
        return f"estimated time: {duration(self.seconds)} on {where} ({parts}; {probe}{tail})"

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {k: round(getattr(self, k), 1) for k in ESTIMATE_SECONDS}
        doc |= {"shards": self.shards, "parallel": self.parallel, "probe_rows": self.probe_rows,
                "from_cache": self.from_cache, "not_counted": list(self.not_counted)}  # fmt: skip
        return doc

    def of(self, combo_id: str) -> float | None:
        """One combo's seconds, if it is to run."""
        return next((round(c.seconds, 1) for c in self.combos if c.combo_id == combo_id), None)


ESTIMATE_SECONDS = ("seconds", "start_s", "calls_s", "filter_s", "other_s")


def duration(seconds: float) -> str:
    """Seconds as a person reads them: 0.4 s, 42 s, 3.5 min, 2.1 h."""
    if seconds < 9.95:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def probe_rows(rows: list[Row], n: int = PROBE_ROWS) -> tuple[Row, ...]:
    """`n` rows spread evenly over the input (all of them when it has fewer)."""
    if len(rows) <= n:
        return tuple(rows)
    return tuple(rows[i * len(rows) // n] for i in range(n))


def probe_dataset(dataset: Dataset, n: int | None = None) -> Dataset:
    """The probe: `n` of the dataset's usable rows, spread over it, as a dataset of their own (by default
    PROBE_ROWS, at most an eighth of the rows)."""
    rows = probe_rows(dataset.rows, n or max(MIN_PROBE_ROWS, min(PROBE_ROWS, len(dataset.rows) // 8)))
    table = dataset.table.take([r.index for r in rows])
    return Dataset(dataset.path, dataset.sha256, table, [replace(r, index=j) for j, r in enumerate(rows)])


# --- measuring ------------------------------------------------------------------------------------------------


class _Measures:
    """The estimate cache: every measurement by a key naming all it depends on; written back once, if it grew."""

    def __init__(self) -> None:
        self.path = estimate_cache_path()
        self.entries = read_cache(self.path)
        self.grew = False

    def get(self, key: str, measure: Callable[[], tuple[float, ...]]) -> tuple[float, ...]:
        """The measurement's seconds, measured now unless cached (an entry of another shape is measured again)."""
        seconds = self.entries.get(key, {}).get("measured")
        if not isinstance(seconds, list) or not all(isinstance(s, (int, float)) for s in seconds):
            seconds = list(measure())
            self.entries[key] = {"measured": seconds, "ok": True, "probed_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
            self.grew = True
        return tuple(float(s) for s in seconds)

    def save(self) -> None:
        if self.grew:
            write_cache(self.path, self.entries)


@contextmanager
def _threads(n: int) -> Iterator[None]:
    """Time as a worker runs: with the torch threads it will have."""
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    with environ_kept(("OMP_NUM_THREADS", "MKL_NUM_THREADS")):
        cap_threads(n)
        try:
            yield
        finally:
            torch = sys.modules.get("torch")
            if torch is not None and before is not None:
                torch.set_num_threads(before)


class _Builds:
    """The methods as a shard builds them (its libraries imported first, as the worker's imports do), each timed."""

    def __init__(self, specs: dict[str, MethodSpec], device: str) -> None:
        self.specs, self.device = specs, device
        self.methods: dict[str, LazyMethod] = {}

    def __call__(self, method_id: str) -> float:
        """Seconds its build took (built now if need be)."""
        if method_id not in self.methods:
            spec = self.specs[method_id]
            fam = family(spec.lib, spec.kind)
            for module in fam.modules if fam else ():
                importlib.import_module(module)
            method = LazyMethod(spec, self.device)
            t0 = time.perf_counter()
            method.augment([PROBE], [0])  # a first call's lazy loading (WordNet, say) is a start cost, not a call's
            method.build_seconds = time.perf_counter() - t0
            self.methods[method_id] = method
        return self.methods[method_id].build_seconds


def _cold_imports(modules: list[str]) -> float:
    """Seconds a fresh interpreter takes to import what a worker imports before its first combo."""
    code = "import " + ", ".join(modules)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=600, check=False)
    return time.perf_counter() - t0 if done.returncode == 0 else 0.0


def process_age() -> float:
    """Seconds since this process started (Linux /proc); 0 where that cannot be read."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


# --- the estimate ---------------------------------------------------------------------------------------------


def estimate_plan(
    cfg: RunConfig,
    specs: list[MethodSpec],
    combos: list[list[Combo]],
    probe: Dataset,
    variants_asked: int,
    modules: list[str],
    launch_s: float,
) -> Estimate:
    """The run's time: `combos` are each shard's combos still to run; `probe` the probe rows (`probe_dataset`);
    `variants_asked` what each combo asks for in all; `modules` what a worker imports (`shard_imports`);
    `launch_s` what the launch took before the probe, which the run does not make (the CLI's: `process_age()`)."""
    work = [c for shard in combos for c in shard]
    busy = sum(1 for shard in combos if shard)
    by_id = {s.id: s for s in specs}
    threads = max(1, (os.cpu_count() or 1) // max(1, busy))
    parallel = max(1, min(busy, os.cpu_count() or 1))
    # Singles first, as a shard's longest-first order mostly has them after the pairs: a pair's first step is then
    # found in the probe's cache as often as not, as in the run's.
    work.sort(key=lambda c: (c.k, c.combo_id))
    n = max(MIN_PROBE_ROWS, PROBE_CANDIDATES // max(1, ATTEMPTS * cfg.variants_per_sample * len(work)))
    rows = probe_dataset(probe, n) if work else probe
    asked = len(rows.rows) * cfg.variants_per_sample
    measures = _Measures()
    context = machine_context()
    keys = {m: probe_key(by_id[m], context) for m in {m for c in work for m in c.methods}}
    rows_id = sha([[r.key, r.evidence] for r in rows.rows], length=24)
    scorer_id = [cfg.quality_metric, cfg.embedding_model, cfg.embedding_backend, cfg.device, cfg.quality_min_sim,
                 cfg.quality_max_sim, cfg.quality_scope, cfg.max_candidates_per_variant]  # fmt: skip
    builds = _Builds(by_id, cfg.device)
    with _threads(threads), tempfile.TemporaryDirectory(prefix="augshard-estimate-") as tmp:
        cache = Cache(Path(tmp) / "cache.db")
        loaded: list[tuple[Any, float]] = []  # the run's filter over the probe's cache, built on first need

        def filter_() -> tuple[Any, float]:
            if not loaded:
                loaded.append(_load_filter(cfg, cache))
            return loaded[0]

        per_combo = {}
        for combo in work:
            key = "combo|" + sha([[keys[m] for m in combo.methods], combo.methods, rows_id, cfg.seed, scorer_id])
            per_combo[combo.combo_id] = measures.get(key, lambda c=combo: _probe_combo(c, rows, builds, filter_, cfg))
        build = {m: measures.get("build|" + keys[m], lambda m=m: (builds(m),))[0] for m in keys}
        (load_s,) = measures.get("filter|" + sha([scorer_id, context, threads]), lambda: (filter_()[1],))
        cache.close()
    (imports_s,) = measures.get("imports|" + sha([modules, context]), lambda: (_cold_imports(modules),))
    measured = measures.grew
    measures.save()

    scale = variants_asked / max(1, asked)
    times = []
    for combo in work:
        wall_s, in_calls_s, in_filter_s = per_combo[combo.combo_id]
        times.append(ComboTime(combo.combo_id, wall_s * scale, in_calls_s * scale, in_filter_s * scale))
    shard_start = [sum(build[m] for m in {m for c in shard for m in c.methods}) for shard in combos if shard]
    start = launch_s + (imports_s + load_s + max(shard_start, default=0.0) if work else 0.0)
    total = sum(t.seconds for t in times)
    calls_s, filter_s = sum(t.calls_s for t in times), sum(t.filter_s for t in times)
    seconds = start + max(total / parallel, max((t.seconds for t in times), default=0.0))
    not_counted = tuple(
        what
        for what, applies in (
            ("the label check", bool(cfg.label_col)),
            ("--keep-vectors", cfg.keep_vectors),
            ("calls already in the method cache (a rerun is faster)", bool(method_caches(cfg.cache_dir,
                                                                                          cfg.disk_cache))),
        )
        if applies
    )  # fmt: skip
    other = max(0.0, total - calls_s - filter_s)
    return Estimate(seconds, start, calls_s, filter_s, other, busy, parallel, len(rows.rows), not measured,
                    tuple(times), not_counted)  # fmt: skip


def _probe_combo(
    combo: Combo, rows: Dataset, builds: _Builds, filter_: Callable[[], tuple[Any, float]], cfg: RunConfig
) -> tuple[float, float, float]:
    """One combo through the run's pipeline on the probe rows: its seconds, those in calls and those in the filter."""
    for m in combo.methods:
        builds(m)
    scorer = filter_()[0]
    before = scorer.seconds
    t0 = time.perf_counter()
    try:
        stats = run_combo(combo, rows, dict(builds.methods), scorer, scorer.cache, cfg, lambda records: None)
        calls_s = stats.calls_s
    except RuntimeError:  # every call failed: the run fails it as fast
        calls_s = 0.0
    return time.perf_counter() - t0, calls_s, scorer.seconds - before


def _load_filter(cfg: RunConfig, cache: Cache) -> tuple[Any, float]:
    """The run's filter over `cache`, as a shard builds it, its model loaded and warm: (scorer, seconds)."""
    t0 = time.perf_counter()
    encoder = None
    if cfg.quality_metric == "embedding":
        backend = cfg.embedding_backend
        if backend == "onnx" and not onnx_export_dir(resolve_embedding_model(cfg.embedding_model)).is_dir():
            backend = "torch"  # no export yet (the first run makes it): timed on torch, the slower
        encoder = Encoder(cfg.embedding_model, cfg.embedding_batch_size, backend, cfg.device)
        encoder.encode([PROBE])  # the first call pays for the runtime's lazy setup
    scorer = CachedScorer(make_scorer(cfg.quality_metric, cache=cache, encoder=encoder), cache)
    return scorer, time.perf_counter() - t0
