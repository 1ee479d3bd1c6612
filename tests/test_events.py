"""events.py: the writer (with its heartbeat), the fold into ShardStatus, liveness, incremental reading."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import run_cli, write_csv

from augshard.events import stream as events
from augshard.events.status import EventsWatcher, ShardStatus, ShardTracker, discover, fold, judge
from augshard.events.stream import (
    ComboDone,
    ComboStart,
    Event,
    EventWriter,
    Progress,
    ShardDone,
    events_path,
    parse_event,
    read_events,
)
from augshard.storage.outcome import ShardState

pytestmark = pytest.mark.serial  # timing: run alone, after the parallel pass (see Makefile)

HOST = socket.gethostname()


def ev(ts: float, event: str, **fields) -> Event:
    """The typed event of one line of a stream, as the reader parses it."""
    parsed = parse_event({"ts": ts, "event": event, "shard": 0, **fields})
    assert parsed is not None
    return parsed


def line(event: Event) -> str:
    return json.dumps(event.record()) + "\n"


def attempt(t0: float = 1000.0) -> list[Event]:
    """A shard of 3 combos over 100 input rows: one done, one failed, the third half-way."""
    return [
        ev(t0, "shard_start", pid=123, host="elsewhere", combos=3, plan_fingerprint="p1", num_shards=2),
        ev(t0 + 1, "combo_start", combo_id="c1", methods="nlp_keyboard", k=1),
        ev(t0 + 2, "progress", combo_id="c1", rows_done=0, rows_total=100),
        ev(t0 + 6, "progress", combo_id="c1", rows_done=50, rows_total=100),
        ev(t0 + 11, "progress", combo_id="c1", rows_done=100, rows_total=100),
        ev(t0 + 11, "combo_done", combo_id="c1", methods="nlp_keyboard", rows=180, rejected=20, rows_input=100),
        ev(t0 + 12, "combo_start", combo_id="c2", methods="nlp_crop", k=1),
        ev(t0 + 13, "combo_failed", combo_id="c2", methods="nlp_crop", error="ValueError: x", log="s.log:7"),
        ev(t0 + 13, "combo_start", combo_id="c3", methods="nlp_crop+nlp_keyboard", k=2),
        ev(t0 + 14, "progress", combo_id="c3", rows_done=0, rows_total=100),
        ev(t0 + 21, "progress", combo_id="c3", rows_done=50, rows_total=100),
        ev(t0 + 23, "heartbeat"),
    ]


def test_fold_follows_a_shard_through_its_combos() -> None:
    st = fold(0, attempt())
    assert st.state is ShardState.RUNNING
    assert (st.combos_total, st.combos_done, st.combos_failed, st.combos_finished) == (3, 1, 1, 2)
    assert st.current == "nlp_crop+nlp_keyboard" and st.current_id == "c3"
    assert (st.current_done, st.current_total, st.rows_per_combo) == (50, 100, 100)
    assert st.rows == 180 and st.rejected == 20
    assert st.pid == 123 and st.host == "elsewhere" and st.plan_fingerprint == "p1" and st.num_shards == 2
    assert st.failures == [{"combo_id": "c2", "methods": "nlp_crop", "error": "ValueError: x", "log": "s.log:7"}]
    assert st.last_ts == 1023.0
    # 2 finished combos and half of the third, of 3.
    assert st.fraction == pytest.approx(2.5 / 3)
    # 150 input rows in 19 s (from the first progress at 1002, after set-up, to the last growth at 1021).
    assert st.rate == pytest.approx(150 / 19)
    assert st.eta(now=1021.0) == pytest.approx(50 / (150 / 19))
    assert st.eta(now=1023.0) == pytest.approx(50 / (150 / 19) - 2)  # counts down between events
    assert st.eta(now=2000.0) == 0.0


def test_fold_ends_in_done_or_failed_and_a_new_attempt_starts_afresh() -> None:
    evs = attempt()
    evs += [
        ev(1030, "progress", combo_id="c3", rows_done=100, rows_total=100),
        ev(1030, "combo_done", combo_id="c3", methods="nlp_crop+nlp_keyboard", rows=150, rows_input=100),
        ev(1031, "shard_done", combos_failed=1, duration=31.0),
    ]
    st = fold(0, evs)
    assert st.state is ShardState.FAILED and st.fraction == 1.0 and st.eta(2000) is None
    assert st.rows == 330 and st.duration == 31.0 and st.current == ""
    retry = evs + [
        ev(1100, "shard_start", pid=456, host="elsewhere", combos=3, plan_fingerprint="p1", num_shards=2),
        ev(1100, "combo_done", combo_id="c1", methods="nlp_keyboard", rows=180, resumed=True, rows_input=100),
    ]
    st = fold(0, retry)
    assert st.state is ShardState.RUNNING and st.pid == 456
    assert (st.combos_done, st.combos_resumed, st.combos_failed, st.rows) == (1, 1, 0, 180)
    assert st.work_rows == 0 and st.rate is None  # a resumed combo is not throughput


def test_eta_needs_a_measured_throughput() -> None:
    st = fold(0, attempt()[:3])  # started, progress 0/100 only
    assert st.state is ShardState.RUNNING and st.rate is None and st.eta(1005) is None
    assert st.fraction == 0.0


def test_combo_done_completes_the_throughput_when_the_last_progress_was_not_seen() -> None:
    evs = attempt()[:4] + [ev(1011, "combo_done", combo_id="c1", methods="nlp_keyboard", rows=180, rows_input=100)]
    st = fold(0, evs)
    assert st.work_rows == 100 and st.work_ts == 1011 and st.rate == pytest.approx(100 / 9)


def test_judge_tells_dead_and_stalled_shards() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    running = ShardStatus(0, state=ShardState.RUNNING, pid=proc.pid, host=HOST, last_ts=1000.0)
    assert judge(running, now=1001.0).state is ShardState.DEAD
    # The pid check only applies on the shard's own host; elsewhere only silence counts.
    remote = ShardStatus(0, state=ShardState.RUNNING, pid=proc.pid, host="other-host", last_ts=1000.0)
    assert judge(remote, now=1001.0).state is ShardState.RUNNING
    assert judge(remote, now=1031.0, stall_after=30).state is ShardState.STALLED
    alive = ShardStatus(0, state=ShardState.RUNNING, pid=os.getpid(), host=HOST, last_ts=1000.0)
    assert judge(alive, now=1010.0).state is ShardState.RUNNING
    done = ShardStatus(0, state=ShardState.DONE, pid=proc.pid, host=HOST, last_ts=1000.0)
    assert judge(done, now=5000.0).state is ShardState.DONE


def test_writer_heartbeat_repeats_progress_and_stops_at_shard_done(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(events, "PROGRESS_EVERY_S", 0.0)
    path = tmp_path / "shard_0_of_1.events.jsonl"
    w = EventWriter(path, 0)
    w.shard_start(combos=1, plan_fingerprint="p", num_shards=1)
    w.start_heartbeat(interval=0.05)
    w.emit(ComboStart(combo_id="c", methods="m", k=1))
    w.emit(Progress(combo_id="c", rows_done=10, rows_total=40))
    time.sleep(0.4)
    w.emit(ComboDone(combo_id="c", methods="m", rows=5, rows_input=40))
    w.emit(ShardDone(combos_failed=0, duration=0.5))
    time.sleep(0.2)
    w.close()
    lines = path.read_text().splitlines()
    kinds = [json.loads(line)["event"] for line in lines]
    assert kinds[0] == "shard_start" and kinds[-1] == "shard_done"
    assert kinds.count("heartbeat") >= 3
    assert kinds.count("progress") >= 3  # the chunk's own and the heartbeat's repeats
    repeats = [json.loads(x) for x in lines if json.loads(x)["event"] == "progress"]
    assert all((r["rows_done"], r["rows_total"]) == (10, 40) for r in repeats)
    assert json.loads(lines[0])["pid"] == os.getpid() and json.loads(lines[0])["host"] == HOST
    st = fold(0, read_events(path))
    assert st.state is ShardState.DONE and st.rows == 5 and st.work_rows == 40


def test_tracker_reads_incrementally_ignores_torn_lines_and_restarts_on_a_new_file(tmp_path: Path) -> None:
    path = tmp_path / "shard_0_of_1.events.jsonl"
    tracker = ShardTracker(path, 0)
    assert tracker.poll().state is ShardState.PENDING
    evs = attempt()
    with open(path, "w") as fh:
        fh.write("".join(line(e) for e in evs[:5]))
        fh.write(line(evs[5])[:20])  # a writer mid-line
    st = tracker.poll()
    assert st.state is ShardState.RUNNING and st.combos_done == 0 and st.current_done == 100
    with open(path, "a") as fh:
        fh.write(line(evs[5])[20:])
    assert tracker.poll().combos_done == 1
    path.unlink()
    assert tracker.poll().state is ShardState.PENDING
    path.write_text(line(evs[0]))
    st = tracker.poll()
    assert st.state is ShardState.RUNNING and st.combos_done == 0


def test_watcher_follows_the_newest_group_of_streams(tmp_path: Path) -> None:
    old = events_path(tmp_path, 0, 3)
    old.write_text(line(attempt()[0]))
    os.utime(old, (1000, 1000))
    new = events_path(tmp_path, 1, 2)
    new.write_text(json.dumps({**attempt()[0].record(), "shard": 1}) + "\n")
    assert discover(tmp_path) == 2
    statuses = EventsWatcher(tmp_path).statuses(now=1001.0)
    assert [(s.shard, s.state) for s in statuses] == [(0, "pending"), (1, "running")]
    assert discover(tmp_path / "nowhere") is None
    assert EventsWatcher(tmp_path / "nowhere").statuses() == []


FAILING_CATALOGUE = """
methods:
  - {id: nlp_keyboard, lib: nlpaug, kind: KeyboardAug, args: {aug_char_min: 1, aug_char_p: 0.3}}
  # Cropping at least 3 words raises on every 2-word evidence below.
  - {id: nlp_crop, lib: nlpaug, kind: RandomWordAug, args: {action: crop, aug_min: 3}}
  - {id: nlp_randword_delete, lib: nlpaug, kind: RandomWordAug, args: {action: delete}}
"""


@pytest.mark.slow
def test_events_of_a_real_run_fold_into_the_right_statuses(tmp_path: Path) -> None:
    (tmp_path / "methods.yaml").write_text(FAILING_CATALOGUE, encoding="utf-8")
    (tmp_path / "run.yaml").write_text("chunk_size: 4\nvariants_per_sample: 2\n", encoding="utf-8")
    evidences = ["Loved it", "Truly great", "Very nice", "Works well", "Fast delivery", "Good value", "Nice box"]
    rows = [{"id": f"r{i}", "text": f"Delivery took a week. {e}. Would buy again.", "evidence": e}
            for i, e in enumerate(evidences * 2)]  # fmt: skip
    for i, r in enumerate(rows):
        r["id"] = f"r{i}"
    write_csv(tmp_path / "in.csv", rows)
    proc = run_cli("run", "--config", "run.yaml", "--input", "in.csv", "--text-col", "text", "--evidence-col",
                   "evidence", "--id-col", "id", "--methods-config", "methods.yaml", "--methods",
                   "nlp_crop,nlp_keyboard,nlp_randword_delete", "--combo-mode", "single", "--quality-metric", "none",
                   "--num-shards", "2", "--keep-shards", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    root = tmp_path / "data/processed/augsets"
    for i in (0, 1):
        with open(root / f"manifest_shard{i}_of_2.csv", newline="") as fh:
            manifest = list(csv.DictReader(fh))
        evs = read_events(tmp_path / f"logs/augment/shard_{i}_of_2.events.jsonl")
        st = fold(i, evs)
        ok = [m for m in manifest if m["status"] == "ok"]
        failed = [m for m in manifest if m["status"] == "failed"]
        assert st.combos_total == len(manifest)
        assert st.combos_done == len(ok) and st.combos_failed == len(failed)
        assert st.rows == sum(int(m["rows"]) for m in ok)
        assert st.state is (ShardState.FAILED if failed else ShardState.DONE)
        assert st.host == HOST and st.pid != os.getpid() and st.fraction == 1.0
        assert st.rows_per_combo == 14  # every input row goes through each combo
        assert [f["combo_id"] for f in st.failures] == [m["combo_id"] for m in failed]
        for f in st.failures:
            assert "ValueError" in f["error"]
            path, line = f["log"].rsplit(":", 1)
            logged = Path(tmp_path / path).read_text().splitlines()[int(line) - 1]
            assert "combo combo_1_nlp_crop FAILED" in logged
        kinds = [e.kind for e in evs]
        assert kinds[0] == "shard_start" and kinds[-1] == "shard_done"
        for combo in ok:
            progress = [e.rows_done for e in evs if isinstance(e, Progress) and e.combo_id == combo["combo_id"]]
            assert progress[0] == 0 and progress[-1] == 14 and progress == sorted(progress)
            assert {0, 4, 8, 12, 14} <= set(progress)  # one per chunk of 4 rows
            done = next(e for e in evs if isinstance(e, ComboDone) and e.combo_id == combo["combo_id"])
            assert done.rows == int(combo["rows"]) and done.rows_input == 14
            assert {"rejected", "skipped", "duration"} <= set(done.record())
    assert "failed combo_1_nlp_crop" in proc.stdout and "shard_" in proc.stdout
