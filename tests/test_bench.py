"""`methods --bench` measures real methods and writes a costs file; `run --calibrate` plans with it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from helpers import REPO, run_cli, sample_rows, tree, write_csv

from augshard.config import DEFAULT_COSTS_PATH, load_config
from augshard.errors import ConfigError
from augshard.methods import load_catalogue
from augshard.methods.bench import load_costs
from augshard.plan import make_plan

CHEAP = ("nlp_keyboard", "nlp_randword_delete", "nlp_spelling")
BOGUS = {"id": "ta_bogus", "lib": "textattack", "kind": "WordSwapNoSuchClass", "args": {"pct_words_to_swap": 0.1}}


@pytest.fixture(scope="module")
def benched(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """Three real catalogue entries plus one TextAttack class that does not exist, timed on 10 sample texts."""
    cwd = tmp_path_factory.mktemp("bench")
    entries = yaml.safe_load((REPO / "conf" / "augment_methods.yaml").read_text(encoding="utf-8"))["methods"]
    chosen = [e for e in entries if e["id"] in CHEAP] + [BOGUS]
    (cwd / "methods.yaml").write_text(yaml.safe_dump({"methods": chosen}), encoding="utf-8")
    write_csv(cwd / "in.csv", sample_rows(8))
    proc = run_cli("methods", "--methods-config", "methods.yaml", "--bench", "--rows", "10", "--out", "out/costs.json",
                   cwd=cwd)  # fmt: skip
    return cwd, proc


@pytest.mark.slow
def test_bench_writes_positive_costs_for_available_methods_only(benched) -> None:
    cwd, proc = benched
    assert proc.returncode == 0, proc.stderr + proc.stdout
    doc = json.loads((cwd / "out/costs.json").read_text(encoding="utf-8"))
    costs = doc["method_costs"]
    assert set(costs) == set(CHEAP)
    assert all(c > 0 for c in costs.values())
    assert min(costs.values()) == 1.0
    assert set(doc["rows_per_second"]) == set(CHEAP) and all(r > 0 for r in doc["rows_per_second"].values())
    # The relative cost is the ratio of seconds per row, so the fastest has the most rows per second.
    fastest = max(doc["rows_per_second"], key=doc["rows_per_second"].get)
    assert costs[fastest] == 1.0
    assert doc["rows"] == 10 and doc["machine"]["cpu_count"] >= 1 and doc["measured_at"].startswith("20")
    assert "ta_bogus" in doc["skipped"]
    assert sorted(p.name for p in (cwd / "out").iterdir()) == ["costs.json"]  # no temp file left behind
    for method in CHEAP:
        assert any(line.split("│")[1].strip() == method for line in proc.stdout.splitlines() if "│" in line)
    assert "skipped (unavailable): ta_bogus" in proc.stdout
    assert "3 methods timed, 1 skipped" in proc.stdout


def _plan_costs(stdout: str) -> dict[str, float]:
    """combo folder -> est. cost, from the dry-run plan (aligned columns off a terminal: shard, combo, k, cost)."""
    out = {}
    for line in stdout.splitlines():
        cells = line.split()
        if len(cells) > 4 and cells[1].startswith("combo_"):
            out[cells[1]] = float(cells[3])
    return out


def _dry_run(cwd: Path, *extra: str) -> subprocess.CompletedProcess:
    args = ["run", "--input", "in.csv", "--text-col", "text", "--evidence-col", "evidence", "--id-col", "id",
            "--methods-config", "methods.yaml", "--methods", ",".join(CHEAP), "--quality-metric", "none",
            "--num-shards", "2", "--dry-run", *extra]  # fmt: skip
    return run_cli(*args, cwd=cwd)


@pytest.mark.slow
def test_calibrated_dry_run_plans_with_the_measured_costs_and_writes_nothing(benched) -> None:
    cwd, _ = benched
    costs = json.loads((cwd / "out/costs.json").read_text(encoding="utf-8"))["method_costs"]
    before = tree(cwd)
    plain = _dry_run(cwd)
    calibrated = _dry_run(cwd, "--calibrate", "out/costs.json")
    assert plain.returncode == 0 and calibrated.returncode == 0, plain.stderr + calibrated.stderr
    assert tree(cwd) == before
    catalogue = load_catalogue(cwd / "methods.yaml")
    plain_costs, measured = _plan_costs(plain.stdout), _plan_costs(calibrated.stdout)
    assert set(plain_costs) == set(measured) and len(measured) == 6  # 3 singles + 3 pairs
    for combo, cost in measured.items():
        ids = combo.split("_", 2)[2].split("+")
        assert cost == pytest.approx(sum(costs[m] for m in ids), rel=1e-4), combo
        assert plain_costs[combo] == pytest.approx(sum(catalogue[m].cost for m in ids)), combo
    assert measured != plain_costs
    assert "costs: measured for 3 of 3 methods (out/costs.json)" in calibrated.stdout
    # The costs are part of the plan's identity (the plan table's title carries its fingerprint).
    title = next(line for line in calibrated.stdout.splitlines() if "augshard plan" in line)
    assert title not in plain.stdout


@pytest.mark.slow
def test_calibrated_flag_reads_the_default_file_and_missing_methods_keep_catalogue_costs(benched) -> None:
    cwd, _ = benched
    default = cwd / DEFAULT_COSTS_PATH
    default.parent.mkdir(parents=True, exist_ok=True)
    default.write_text(json.dumps({"method_costs": {"nlp_keyboard": 3.5}}), encoding="utf-8")
    try:
        proc = _dry_run(cwd, "--calibrated")
    finally:
        default.unlink()
    assert proc.returncode == 0, proc.stderr
    costs = _plan_costs(proc.stdout)
    assert costs["combo_1_nlp_keyboard"] == 3.5
    assert costs["combo_1_nlp_randword_delete"] == 1.0  # the catalogue's cost
    assert costs["combo_1_nlp_spelling"] == 1.2  # the catalogue's cost
    assert costs["combo_2_nlp_keyboard+nlp_spelling"] == 4.7


@pytest.mark.slow
@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "not a readable method costs file"),
        (None, "method costs file not found"),
    ],
)
def test_a_malformed_costs_file_is_one_line_and_exit_2(benched, content: str | None, expected: str) -> None:
    cwd, _ = benched
    bad = cwd / "bad_costs.json"
    if content is not None:
        bad.write_text(content, encoding="utf-8")
    try:
        proc = _dry_run(cwd, "--calibrate", "bad_costs.json")
    finally:
        bad.unlink(missing_ok=True)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad_costs.json" in lines[0] and expected in lines[0], proc.stderr


def test_load_costs_rejects_malformed_costs(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"rows_per_second": {}}', encoding="utf-8")
    with pytest.raises(ConfigError, match="expected an object with 'method_costs'"):
        load_costs(path)
    path.write_text('{"method_costs": {"nlp_keyboard": -1}}', encoding="utf-8")
    with pytest.raises(ConfigError, match="cost of 'nlp_keyboard' must be a positive number"):
        load_costs(path)
    path.write_text('{"method_costs": {"a": 2, "b": 0.5}}', encoding="utf-8")
    assert load_costs(path) == {"a": 2.0, "b": 0.5}


def test_costs_change_the_assignment_and_the_plan_fingerprint_but_not_combo_fingerprints(tmp_path: Path) -> None:
    specs = [s for s in load_catalogue(REPO / "conf" / "augment_methods.yaml").values() if s.id in CHEAP]
    cfg = load_config(overrides={"input": "x.csv", "num_shards": 2, "combo_mode": "single"})
    plain = make_plan(cfg, specs, "ab" * 32)
    heavy = make_plan(cfg, specs, "ab" * 32, costs={"nlp_keyboard": 10.0})
    assert {pc.combo.methods: pc.cost for pc in heavy.combos}[("nlp_keyboard",)] == 10.0
    # The expensive combo gets a shard to itself.
    assert sorted(len(s) for s in heavy.shards) == [1, 2]
    assert [pc.combo.methods for pc in heavy.shards[0]] == [("nlp_keyboard",)]
    assert heavy.fingerprint != plain.fingerprint
    assert make_plan(cfg, specs, "ab" * 32, costs={"nlp_keyboard": 9.0}).fingerprint != heavy.fingerprint
    assert make_plan(cfg, specs, "ab" * 32, costs=None).fingerprint == plain.fingerprint
    # Costs never change what a combo produces: its output fingerprint is the same.
    assert {pc.combo.combo_id: pc.fingerprint for pc in heavy.combos} == {
        pc.combo.combo_id: pc.fingerprint for pc in plain.combos
    }


def test_calibrate_is_a_run_setting_outside_the_output_fingerprint(tmp_path: Path) -> None:
    base = load_config(overrides={"input": "x.csv"})
    calibrated = load_config(overrides={"input": "x.csv", "calibrate": "c.json"})
    assert base.calibrate is None and calibrated.calibrate == "c.json"
    assert calibrated.fingerprint() == base.fingerprint()
    conf = tmp_path / "augshard.yaml"
    conf.write_text("input: x.csv\ncalibrate: true\n", encoding="utf-8")
    assert load_config(str(conf)).calibrate == DEFAULT_COSTS_PATH
    conf.write_text("input: x.csv\ncalibrate: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="--calibrate"):
        load_config(str(conf))
