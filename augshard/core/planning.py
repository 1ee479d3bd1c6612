"""The deterministic plan: combos with costs and fingerprints, assigned longest-first to the least-loaded shard."""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from augshard.core.combos import Combo, enumerate_combos
from augshard.core.config import RunConfig
from augshard.core.environment import library_version
from augshard.core.fingerprint import sha
from augshard.methods.spec import MethodSpec


@dataclass(frozen=True)
class PlannedCombo:
    combo: Combo
    cost: float
    fingerprint: str  # of everything that decides this combo's dataset


@dataclass(frozen=True)
class Plan:
    num_shards: int
    shards: tuple[tuple[PlannedCombo, ...], ...]
    plan_fingerprint: str
    config_fingerprint: str
    methods: tuple[str, ...]
    # Combos that use a method which cannot run here, with the reason; listed, never started.
    unavailable: tuple[tuple[Combo, str], ...] = ()

    @property
    def combos(self) -> list[PlannedCombo]:
        return [pc for shard in self.shards for pc in shard]

    def shard_cost(self, index: int) -> float:
        return sum(pc.cost for pc in self.shards[index])


def combo_fingerprint(
    cfg_fp: str, input_sha: str, combo: Combo, specs: dict[str, MethodSpec], gpu: bool = False
) -> str:
    """What decides the combo's dataset; a model method run on a GPU (`gpu`) makes other data than on the CPU."""
    methods = [[m, specs[m].canonical(), library_version(specs[m].lib)] for m in combo.methods]
    for entry, m in zip(methods, combo.methods, strict=True):
        if gpu and specs[m].requires_gpu:
            entry.append("cuda")
    return sha([cfg_fp, input_sha, methods])


def assign(costs: list[tuple[Combo, float]], num_shards: int) -> list[list[tuple[Combo, float]]]:
    """Longest-first onto the least-loaded shard; ties broken by combo id and shard index, so it is stable."""
    shards: list[list[tuple[Combo, float]]] = [[] for _ in range(num_shards)]
    heap = [(0.0, i) for i in range(num_shards)]
    for combo, cost in sorted(costs, key=lambda cc: (-cc[1], cc[0].combo_id)):
        load, i = heapq.heappop(heap)
        shards[i].append((combo, cost))
        heapq.heappush(heap, (load + cost, i))
    return shards


def plan_combos(
    cfg: RunConfig, specs: list[MethodSpec], input_sha: str, costs: dict[str, float] | None = None
) -> list[PlannedCombo]:
    """Every combo of the selected methods with its cost and fingerprint (neither depends on the shard count).

    `costs` are measured per-method costs (`run --calibrate`); a method missing from them keeps its catalogue cost.
    """
    by_id = {s.id: s for s in specs}
    cfg_fp = cfg.fingerprint()
    method_cost = {m: (costs or {}).get(m, spec.cost) for m, spec in by_id.items()}
    gpu = cfg.device.startswith("cuda")
    return [
        PlannedCombo(c, sum(method_cost[m] for m in c.methods), combo_fingerprint(cfg_fp, input_sha, c, by_id, gpu))
        for c in enumerate_combos(by_id, cfg.combo_mode, cfg.max_combo_size)
    ]


def make_plan(
    cfg: RunConfig,
    specs: list[MethodSpec],
    input_sha: str,
    unavailable: dict[str, str] | None = None,
    costs: dict[str, float] | None = None,
    combos: list[PlannedCombo] | None = None,
) -> Plan:
    """Assign the combos (`plan_combos`, made here unless given) to `cfg.num_shards` shards; those using an
    unavailable method are set aside with the reason."""
    unavailable = unavailable or {}
    if combos is None:
        combos = plan_combos(cfg, specs, input_sha, costs)
    runnable, blocked = [], []
    for pc in combos:
        bad = [m for m in pc.combo.methods if m in unavailable]
        if bad:
            blocked.append((pc.combo, "; ".join(f"{m}: {unavailable[m]}" for m in bad)))
        else:
            runnable.append(pc)
    by_combo = {pc.combo: pc for pc in runnable}
    shards = tuple(
        tuple(by_combo[c] for c, _ in shard)
        for shard in assign([(pc.combo, pc.cost) for pc in runnable], cfg.num_shards)
    )
    layout = [[pc.combo.combo_id + ":" + pc.fingerprint for pc in shard] for shard in shards]
    cfg_fp = cfg.fingerprint()
    identity = [cfg_fp, input_sha, cfg.num_shards, cfg.combo_mode, cfg.max_combo_size, layout, sorted(unavailable)]
    if costs is not None:
        # The layout already differs when measured costs move a combo; recording the costs themselves also tells
        # apart two calibrations that happen to give the same layout (uncalibrated plans keep their fingerprint).
        identity.append(sorted((s.id, costs.get(s.id, s.cost)) for s in specs))
    return Plan(
        num_shards=cfg.num_shards,
        shards=shards,
        plan_fingerprint=sha(identity),
        config_fingerprint=cfg_fp,
        methods=tuple(sorted(s.id for s in specs if s.id not in unavailable)),
        unavailable=tuple(blocked),
    )
