"""Issue 32, point 6: the dry run and `plan()` give the run's time in seconds before it runs, the similarity filter
included, measured on a probe of the input's rows through the run's own pipeline and cached per machine."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from helpers import API_METHODS, api_settings, run_cli, sample_rows, tree, write_csv

import augshard
from augshard.runner.estimate import Estimate, duration, probe_rows

ARGS = ["--input", "in.csv", "--text-col", "text", "--evidence-col", "evidence", "--id-col", "id",
        "--methods", ",".join(API_METHODS), "--quality-metric", "char_ratio", "--num-shards", "2"]  # fmt: skip
S = r"[\d.]+ s"
LINE = re.compile(rf"^estimated time: ({S}) on 2 shards \(start {S}; all shards together: method calls {S}, "
                  rf"similarity filter {S}, the rest {S}; measured on (\d+) rows( \(cached\))?\)$", re.M)  # fmt: skip


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    write_csv(tmp_path / "in.csv", sample_rows(80))
    return tmp_path


def own_cache(cwd: Path) -> dict[str, str]:
    """An estimate cache of the test's own, so its first dry run measures everything."""
    return {"AUGSHARD_ESTIMATE_CACHE": str(cwd / "estimates" / "estimates.json")}


def test_durations_read_as_seconds_minutes_and_hours() -> None:
    seconds = (0.04, 9.9, 42, 89.6, 210, 5399, 9000)
    assert [duration(s) for s in seconds] == ["0.0 s", "9.9 s", "42 s", "90 s", "3.5 min", "90.0 min", "2.5 h"]


def test_the_probe_is_rows_spread_over_the_input() -> None:
    rows = list(range(100))
    assert probe_rows(rows, 4) == (0, 25, 50, 75)  # type: ignore[arg-type]
    assert probe_rows(rows[:3], 4) == (0, 1, 2)  # type: ignore[arg-type]


def test_a_dry_run_gives_the_time_in_seconds_and_a_second_one_reads_it_from_the_cache(cwd: Path) -> None:
    env = own_cache(cwd)
    before = tree(cwd)
    first = run_cli("run", *ARGS, "--dry-run", cwd=cwd, env=env)
    assert first.returncode == 0, first.stderr
    line = LINE.search(first.stdout)
    assert line is not None, first.stdout
    assert line.group(2) == "10" and line.group(3) is None  # 80 rows: an eighth of them, measured now
    assert "est. time" in first.stdout and "est. cost" not in first.stdout
    assert tree(cwd) - before == {"estimates", "estimates/estimates.json"}  # the cache, where it was told; no output
    cached = json.loads((cwd / "estimates" / "estimates.json").read_text(encoding="utf-8"))["probes"]
    assert {key.split("|")[0] for key in cached} == {"combo", "build", "filter", "imports"}
    assert all(len(e["measured"]) == 3 for k, e in cached.items() if k.startswith("combo|"))

    t0 = time.perf_counter()
    doc = json.loads(run_cli("run", *ARGS, "--dry-run", "--format", "json", cwd=cwd, env=env).stdout)
    again_s = time.perf_counter() - t0
    est = doc["estimate"]
    assert est["from_cache"] is True and est["shards"] == 2 and est["probe_rows"] == 10 and est["not_counted"] == []
    assert est["seconds"] >= est["start_s"] > 0 and est["calls_s"] >= 0 and est["filter_s"] >= 0
    # The run's time: its start, then its combos over the cores, never less than its longest combo.
    combos = [c["seconds"] for c in doc["combos"]]
    assert len(combos) == 3 and all(s is not None and s >= 0 for s in combos)
    assert est["seconds"] >= est["start_s"] + max(combos) - 0.2
    assert again_s < 30  # nothing measured again: no probe, no model load


def test_the_embedding_filter_is_in_the_estimate(cwd: Path) -> None:
    args = [*ARGS[: ARGS.index("--quality-metric")], "--num-shards", "2"]  # the default filter: embedding
    proc = run_cli("run", *args, "--dry-run", "--format", "json", "--label-col", "label", cwd=cwd, env=own_cache(cwd))
    assert proc.returncode == 0, proc.stderr
    est = json.loads(proc.stdout)["estimate"]
    assert est["filter_s"] > 0 and est["from_cache"] is False
    assert est["start_s"] > 1  # the filter's model is loaded before the first combo
    assert est["not_counted"] == ["the label check"]


def test_no_estimate_plans_with_relative_costs_and_measures_nothing(cwd: Path) -> None:
    env = own_cache(cwd)
    table = run_cli("run", *ARGS, "--dry-run", "--no-estimate", cwd=cwd, env=env)
    doc = json.loads(run_cli("run", *ARGS, "--dry-run", "--no-estimate", "--format", "json", cwd=cwd, env=env).stdout)
    assert table.returncode == 0, table.stderr
    assert "est. cost" in table.stdout and "est. time" not in table.stdout and "estimated time" not in table.stdout
    assert doc["estimate"] is None and all(c["seconds"] is None for c in doc["combos"])
    assert not (cwd / "estimates").exists()


def test_plan_estimates_unless_told_not_to(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUGSHARD_ESTIMATE_CACHE", str(tmp_path / "estimates.json"))
    write_csv(tmp_path / "in.csv", sample_rows(40))
    plan = augshard.plan(**api_settings(tmp_path))
    assert isinstance(plan.estimate, Estimate) and plan.estimate.seconds > 0 and plan.estimate.probe_rows == 5
    assert plan.estimate.line().startswith("estimated time: ")
    assert sum(plan.shard_seconds) == pytest.approx(sum(c.seconds for c in plan.estimate.combos), abs=0.2)
    assert augshard.plan(**api_settings(tmp_path), estimate=False).estimate is None


def test_a_finished_run_has_nothing_left_to_time(cwd: Path) -> None:
    env = own_cache(cwd)
    done = run_cli("run", *ARGS, "--no-live", cwd=cwd, env=env)
    assert done.returncode == 0, done.stderr
    proc = run_cli("run", *ARGS, "--dry-run", cwd=cwd, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "estimated time: nothing to run" in proc.stdout


@pytest.mark.serial
def test_the_estimate_is_near_the_run_it_estimates(cwd: Path) -> None:
    """A broad bound (the bench holds the ±30 % target at its sizes): on 80 rows the run's fixed start dominates."""
    env = own_cache(cwd)
    est = json.loads(run_cli("run", *ARGS, "--dry-run", "--format", "json", cwd=cwd, env=env).stdout)["estimate"]
    t0 = time.perf_counter()
    done = run_cli("run", *ARGS, "--no-live", cwd=cwd, env=env)
    actual = time.perf_counter() - t0
    assert done.returncode == 0, done.stderr
    assert 0.4 < est["seconds"] / actual < 2.5, (est, actual)
