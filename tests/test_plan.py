"""Tests for augshard.plan: shard assignment, fingerprints and unavailable methods."""

from __future__ import annotations

import dataclasses
import json

import pytest

from augshard.core.combos import Combo
from augshard.core.config import RunConfig
from augshard.core.planning import Plan, assign, combo_fingerprint, make_plan
from augshard.methods.spec import MethodSpec

INPUT_SHA = "ab" * 32


def _spec(method_id: str, cost: float, **args: object) -> MethodSpec:
    return MethodSpec(id=method_id, lib="nlpaug", kind="RandomCharAug", args_json=json.dumps(args), cost=cost)


SPECS = [_spec("m5", 5), _spec("m4", 4), _spec("m3a", 3), _spec("m3b", 3), _spec("m1", 1)]


def _cfg(**changes: object) -> RunConfig:
    base = RunConfig(input="in.csv", combo_mode="single", num_shards=2, seed=42)
    return dataclasses.replace(base, **changes)


def _loads(plan: Plan) -> list[float]:
    return [plan.shard_cost(i) for i in range(plan.num_shards)]


def test_longest_first_onto_least_loaded_by_hand() -> None:
    plan = make_plan(_cfg(), SPECS, INPUT_SHA)
    # Sorted by cost (ties by combo id): 5, 4, 3, 3, 1.
    # 5 -> shard 0 (0 < 0 tie: lower index), 4 -> shard 1, 3 -> shard 1 (4 < 5), 3 -> shard 0 (5 < 7),
    # 1 -> shard 1 (7 < 8): loads 8 and 8.
    threes = sorted(["m3a", "m3b"], key=lambda m: Combo((m,)).combo_id)
    assert [[pc.combo.methods[0] for pc in shard] for shard in plan.shards] == [
        ["m5", threes[1]],
        ["m4", threes[0], "m1"],
    ]
    assert [[pc.cost for pc in shard] for shard in plan.shards] == [[5, 3], [4, 3, 1]]
    assert _loads(plan) == [8.0, 8.0]
    assert plan.num_shards == 2
    assert len(plan.combos) == 5


def test_assign_three_shards_by_hand() -> None:
    combos = [(Combo((f"c{cost}",)), float(cost)) for cost in (7, 6, 5, 4, 3, 2, 1)]
    shards = assign(combos, 3)
    # 7->s0, 6->s1, 5->s2, 4->s2 (load 5), 3->s1 (load 6), 2->s0 (load 7), 1->s0 (all at 9: lowest index)
    costs = [[c for _, c in shard] for shard in shards]
    assert costs == [[7, 2, 1], [6, 3], [5, 4]]
    assert [sum(c) for c in costs] == [10, 9, 9]


def test_assign_is_deterministic_whatever_the_input_order() -> None:
    combos = [(Combo((f"m{i}",)), float(i % 4 + 1)) for i in range(12)]
    first = assign(combos, 3)
    assert assign(list(reversed(combos)), 3) == first
    assert assign(combos[5:] + combos[:5], 3) == first


def test_more_shards_than_combos() -> None:
    plan = make_plan(_cfg(num_shards=7), SPECS[:2], INPUT_SHA)
    assert len(plan.shards) == 7
    assert sum(len(s) for s in plan.shards) == 2
    assert _loads(plan) == [5.0, 4.0, 0, 0, 0, 0, 0]


def test_make_plan_is_deterministic() -> None:
    a = make_plan(_cfg(), SPECS, INPUT_SHA)
    b = make_plan(_cfg(), list(reversed(SPECS)), INPUT_SHA)
    assert a == b


def test_bounded_k_costs_sum_over_methods() -> None:
    plan = make_plan(_cfg(combo_mode="bounded_k", max_combo_size=2), SPECS[:3], INPUT_SHA)
    costs = {pc.combo.methods: pc.cost for pc in plan.combos}
    assert costs == {
        ("m3a",): 3,
        ("m4",): 4,
        ("m5",): 5,
        ("m3a", "m4"): 7,
        ("m3a", "m5"): 8,
        ("m4", "m5"): 9,
    }


def test_plan_fingerprint_changes_with_num_shards_and_seed() -> None:
    base = make_plan(_cfg(), SPECS, INPUT_SHA)
    assert make_plan(_cfg(num_shards=3), SPECS, INPUT_SHA).plan_fingerprint != base.plan_fingerprint
    assert make_plan(_cfg(seed=43), SPECS, INPUT_SHA).plan_fingerprint != base.plan_fingerprint
    assert make_plan(_cfg(), SPECS, "cd" * 32).plan_fingerprint != base.plan_fingerprint
    assert make_plan(_cfg(), SPECS, INPUT_SHA).plan_fingerprint == base.plan_fingerprint


def test_combo_fingerprints_do_not_depend_on_num_shards() -> None:
    fps = {}
    for n in (1, 2, 3, 7):
        plan = make_plan(_cfg(num_shards=n), SPECS, INPUT_SHA)
        fps[n] = {pc.combo.combo_id: pc.fingerprint for pc in plan.combos}
    assert fps[1] == fps[2] == fps[3] == fps[7]
    assert len(set(fps[1].values())) == 5


def test_combo_fingerprints_change_with_seed_args_and_input() -> None:
    base = {pc.combo.combo_id: pc.fingerprint for pc in make_plan(_cfg(), SPECS, INPUT_SHA).combos}
    seeded = {pc.combo.combo_id: pc.fingerprint for pc in make_plan(_cfg(seed=1), SPECS, INPUT_SHA).combos}
    assert all(seeded[c] != base[c] for c in base)
    other_input = {pc.combo.combo_id: pc.fingerprint for pc in make_plan(_cfg(), SPECS, "0" * 64).combos}
    assert all(other_input[c] != base[c] for c in base)
    combo = Combo(("m1",))
    fp = combo_fingerprint("cfg", INPUT_SHA, combo, {"m1": _spec("m1", 1)})
    assert combo_fingerprint("cfg", INPUT_SHA, combo, {"m1": _spec("m1", 1, aug_char_p=0.2)}) != fp
    # The cost only balances shards; it does not change what a combo produces.
    assert combo_fingerprint("cfg", INPUT_SHA, combo, {"m1": _spec("m1", 9)}) == fp


def test_plan_records_config_fingerprint_and_methods() -> None:
    cfg = _cfg()
    plan = make_plan(cfg, SPECS, INPUT_SHA)
    assert plan.config_fingerprint == cfg.fingerprint()
    assert plan.methods == ("m1", "m3a", "m3b", "m4", "m5")
    assert plan.unavailable == ()


def test_unavailable_method_combos_are_set_aside_with_reason() -> None:
    cfg = _cfg(combo_mode="bounded_k", max_combo_size=2)
    specs = [_spec("a", 1), _spec("b", 1), _spec("c", 1)]
    plan = make_plan(cfg, specs, INPUT_SHA, unavailable={"b": "NLTK resource corpora/wordnet not found"})
    assert sorted(pc.combo.methods for pc in plan.combos) == [("a",), ("a", "c"), ("c",)]
    blocked = dict(plan.unavailable)
    assert set(blocked) == {Combo(("b",)), Combo(("a", "b")), Combo(("b", "c"))}
    for reason in blocked.values():
        assert reason == "b: NLTK resource corpora/wordnet not found"
    assert plan.methods == ("a", "c")
    assert plan.plan_fingerprint != make_plan(cfg, specs, INPUT_SHA).plan_fingerprint


def test_combo_with_two_unavailable_methods_lists_both_reasons() -> None:
    cfg = _cfg(combo_mode="bounded_k", max_combo_size=2)
    specs = [_spec("a", 1), _spec("b", 1)]
    plan = make_plan(cfg, specs, INPUT_SHA, unavailable={"a": "needs a GPU", "b": "no model"})
    assert plan.combos == []
    assert dict(plan.unavailable)[Combo(("a", "b"))] == "a: needs a GPU; b: no model"


@pytest.mark.parametrize("num_shards", [1, 2, 4])
def test_every_combo_assigned_exactly_once(num_shards: int) -> None:
    plan = make_plan(_cfg(num_shards=num_shards, combo_mode="all"), SPECS, INPUT_SHA)
    ids = [pc.combo.combo_id for pc in plan.combos]
    assert len(ids) == len(set(ids)) == 2**5 - 1
    assert sum(_loads(plan)) == sum(pc.cost for pc in plan.combos)
