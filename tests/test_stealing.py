"""Work stealing: a shard that runs out of combos takes the last ones of another shard's list; the datasets stay
byte-identical and the merged manifest lists every combo once."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
import yaml
from helpers import run_cli, run_events, sample_rows, write_csv

from augshard.events.monitor import total_line
from augshard.events.status import ShardStatus, apply, reconcile
from augshard.events.stream import read_events
from augshard.shard.claims import claim, claimed_by
from augshard.storage.outcome import ShardState

pytestmark = pytest.mark.serial  # timing: run alone, after the parallel pass (see Makefile)

REPO = Path(__file__).resolve().parents[1]


def test_claims_are_exclusive_and_a_retry_keeps_its_own(tmp_path: Path) -> None:
    assert claim(str(tmp_path), "c1", 0)
    assert not claim(str(tmp_path), "c1", 1)
    assert claim(str(tmp_path), "c1", 0)  # shard 0's retry: still its own
    assert claim(str(tmp_path), "c2", 1)
    assert claimed_by(str(tmp_path), 0) == {"c1"} and claimed_by(str(tmp_path), 1) == {"c2"}
    assert claimed_by("", 0) == set()


def _manifest(root: Path) -> dict[str, dict[str, str]]:
    with open(root / "data/processed/augsets/manifest_final.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len({r["combo_id"] for r in rows})  # every combo once
    return {r["methods"]: r for r in rows}


def test_an_idle_shard_takes_work_from_a_busy_one_and_outputs_do_not_change(tmp_path: Path) -> None:
    # A catalogue whose costs mislead the plan: the fast method looks expensive, so it gets a shard to itself,
    # while the slow ones all land on the other shard.
    catalogue = yaml.safe_load((REPO / "conf" / "augment_methods.yaml").read_text())
    wanted = {"nlp_keyboard": 100, "ta_wordswap_wordnet": 1, "nlp_wordnet_syn": 1, "ta_word_insert_syn": 1}
    catalogue["methods"] = [dict(m, cost=wanted[m["id"]]) for m in catalogue["methods"] if m["id"] in wanted]
    (tmp_path / "methods.yaml").write_text(yaml.safe_dump(catalogue))
    write_csv(tmp_path / "in.csv", sample_rows(40))
    runs = {}
    for name, extra in (("steal", ()), ("nosteal", ("--no-steal",))):
        cwd = tmp_path / name
        cwd.mkdir()
        args = ["--input", str(tmp_path / "in.csv"), "--text-col", "text", "--evidence-col", "evidence",
                "--methods-config", str(tmp_path / "methods.yaml"), "--methods", ",".join(wanted), "--combo-mode",
                "single", "--quality-metric", "char_ratio", "--num-shards", "2"]  # fmt: skip
        proc = run_cli("run", "--no-live", *args, *extra, cwd=cwd)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        runs[name] = cwd
    planned, stolen = _manifest(runs["nosteal"]), _manifest(runs["steal"])
    assert planned["nlp_keyboard"]["shard"] == "0"
    assert {planned[m]["shard"] for m in planned if m != "nlp_keyboard"} == {"1"}
    moved = [m for m in stolen if stolen[m]["shard"] != planned[m]["shard"]]
    assert moved and all(stolen[m]["shard"] == "0" and stolen[m]["status"] == "ok" for m in moved)
    for m, row in stolen.items():
        assert row["status"] == "ok" and row["rows"] == planned[m]["rows"]
    data = {
        n: {p.parent.name: p.read_bytes() for p in c.glob("data/processed/augsets/combo_*/*.parquet")}
        for n, c in runs.items()
    }
    assert len(data["steal"]) == 4 and data["steal"] == data["nosteal"]
    assert len(run_events(runs["steal"], "combo_stolen")) == len(moved)
    assert len(run_events(runs["steal"], "combo_moved")) == len(moved)
    _totals_hold_at_every_step(runs["steal"], planned=len(wanted))
    assert not list((runs["steal"] / "logs/augment").glob(".claims-*"))  # the run's claims are cleaned up
    # A taken combo used its plan shard's cache: rerun with the plan's layout, every call is found there.
    for folder in (runs["steal"] / "data/processed/augsets").glob("combo_*"):
        shutil.rmtree(folder)
    proc = run_cli("run", "--no-live", *args, "--no-steal", cwd=runs["steal"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    done = run_events(runs["steal"], "shard_done")
    assert len(done) == 2 and sum(e.calls_computed for e in done) == 0 and sum(e.calls_cached for e in done) > 0


def _totals_hold_at_every_step(cwd: Path, planned: int) -> None:
    """Replay the shards' real event streams in time order, as a watcher reading them would see them: at every
    step the run's total is the plan's, the shards' totals add up to it, no shard has finished more than it has,
    and the finished count never goes backwards."""
    paths = sorted((cwd / "logs/augment").glob("shard_*_of_2.events.jsonl"))
    assert len(paths) == 2
    stream = sorted(((e, i) for i, p in enumerate(paths) for e in read_events(p)), key=lambda pair: pair[0].ts)
    statuses = [ShardStatus(i) for i in range(len(paths))]
    finished_before, stolen_seen = 0, 0
    for ev, i in stream:
        statuses[i] = apply(statuses[i], ev)
        shown = reconcile(statuses)
        finished = sum(st.combos_finished for st in shown)
        assert finished_before <= finished <= planned, (ev, shown)
        finished_before = finished
        assert all(st.combos_finished <= st.combos_total for st in shown), (ev, shown)
        stolen_seen += ev.kind == "combo_stolen"
        if all(st.state is not ShardState.PENDING for st in shown):
            assert sum(st.combos_total for st in shown) == planned, (ev, shown)
            assert total_line(shown).startswith(f"Total: {finished}/{planned} combos processed"), total_line(shown)
    assert stolen_seen and finished_before == planned
