"""monitor.py and `augshard monitor`: one renderer for `run` and `monitor`, plain lines off a terminal, dead shards."""

from __future__ import annotations

import csv
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import run_cli, sample_rows, write_csv
from rich.console import Console

from augshard.events.monitor import ProgressView, overall_line, plain_line, render, total_line
from augshard.events.output import fmt_duration
from augshard.events.status import EventsWatcher, ShardStatus
from augshard.events.stream import events_path, read_events
from augshard.storage.outcome import ShardState

pytestmark = pytest.mark.serial  # timing: run alone, after the parallel pass (see Makefile)

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
METHODS = "nlp_keyboard,nlp_randword_delete"


def statuses() -> list[ShardStatus]:
    return [
        ShardStatus(0, state=ShardState.DONE, combos_total=2, combos_done=2, rows=80, duration=12.0),
        ShardStatus(
            1,
            state=ShardState.RUNNING,
            combos_total=3,
            combos_done=1,
            current="nlp_keyboard+nlp_randword_delete",
            current_id="c",
            current_done=50,
            current_total=100,
            rows_per_combo=100,
            rows=190,
            work_rows=150,
            work_started=1000.0,
            work_ts=1030.0,
            last_ts=1030.0,
        ),
        ShardStatus(2, state=ShardState.FAILED, combos_total=1, combos_failed=1, duration=3.0),
        ShardStatus(3, state=ShardState.DEAD, combos_total=2, pid=4242, current="", rows=0),
        ShardStatus(4),
    ]


def text_of(renderable, width: int = 160) -> str:
    console = Console(record=True, width=width, force_terminal=False, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_the_table_shows_state_progress_current_combo_and_eta() -> None:
    out = text_of(render(statuses(), now=1030.0))
    lines = out.splitlines()
    row = {i: next(ln for ln in lines if re.match(rf"│\s+{i} │", ln)) for i in range(5)}
    assert "✓ done" in row[0] and "100%" in row[0] and "2/2" in row[0] and "took 12s" in row[0]
    # 1.5 of 3 combos; 150 rows in 30 s = 5 rows/s, 150 rows left: 30 s.
    assert "▶ running" in row[1] and " 50%" in row[1] and "1/3" in row[1] and "30s" in row[1]
    assert "nlp_keyboard+nlp_randword_delete (50/100 rows, 5.0 rows/s)" in row[1] and "190" in row[1]
    assert "✗ failed" in row[2] and "1/1" in row[2]
    assert "☠ dead" in row[3] and "process 4242 is gone" in row[3]
    assert "⏳ pending" in row[4] and "waiting for its process" in row[4]
    assert "Overall: 1 completed | 1 running | 1 failed | 1 pending | 1 dead" in out
    assert "Total: 4 combos processed | 270 rows generated | ETA 30s" in out


def test_footer_lines_and_durations() -> None:
    done = [ShardStatus(0, state=ShardState.DONE, combos_total=2, combos_done=2, rows=1234)]
    assert overall_line(done) == "Overall: 1 completed | 0 running | 0 failed | 0 pending"
    assert total_line(done) == "Total: 2/2 combos processed | 1,234 rows generated"
    assert [fmt_duration(s) for s in (None, 4.4, 65, 3725)] == ["-", "4s", "1m05s", "1h02m"]


def test_plain_lines_are_one_readable_line_per_shard() -> None:
    sts = statuses()
    line = plain_line(sts[1], now=1030.0)
    assert line == (
        "shard 1 ▶ running    50%  combos 1/3  nlp_keyboard+nlp_randword_delete (50/100 rows, 5.0 rows/s)  190 rows  "
        "ETA 30s"
    )
    assert plain_line(sts[0], 1030.0) == "shard 0 ✓ done      100%  combos 2/2  80 rows  took 12s"
    assert plain_line(sts[4], 1030.0) == "shard 4 ⏳ pending     0%  waiting for its process  0 rows"


def test_before_an_eta_the_line_says_what_is_measured_then_rate_phase_and_eta() -> None:
    from augshard.events.stream import LOADING, SCORING, Progress

    def at(ts: float, done: int, phase: str) -> Progress:
        return Progress(ts=ts, combo_id="c", rows_done=done, rows_total=100, phase=phase)

    st = ShardStatus(1, state=ShardState.RUNNING, combos_total=2, current="nlp_keyboard", current_id="c")
    assert plain_line(st, 1000.0).endswith("(setting up)  0 rows  timing the first rows")
    from augshard.events.status import apply

    st = apply(st, at(1000.0, 0, LOADING))
    assert plain_line(st, 1001.0).endswith("(0/100 rows)  0 rows  loading methods")
    st = apply(st, at(1010.0, 0, SCORING))  # 10 s building the method: not throughput
    st = apply(st, at(1012.0, 20, SCORING))
    assert st.rate == 10.0
    assert plain_line(st, 1012.0).endswith("(20/100 rows, 10 rows/s, scoring)  0 rows  ETA 18s")


def test_no_live_prints_plain_lines_even_on_a_terminal(tmp_path: Path) -> None:
    events_path(tmp_path, 0, 1).write_text(
        json.dumps(
            {"ts": time.time(), "event": "shard_start", "shard": 0, "pid": os.getpid(), "host": "x", "combos": 2}
        )
        + "\n"  # fmt: skip
    )
    console = Console(record=True, width=120, force_terminal=True, color_system=None)
    view = ProgressView(console, EventsWatcher(tmp_path, 1), live=False, interval=3600)
    with view:
        view.refresh()
        view.refresh()  # nothing changed: nothing printed
        view.refresh(force=True)
    out = console.export_text()
    assert view._live is None
    assert out.count("shard 0 ▶ running") == 2
    assert "Overall: 0 completed | 1 running | 0 failed | 0 pending" in out


def base_args(csv_path: Path, *extra: str) -> list[str]:
    return ["run", "--input", str(csv_path), "--text-col", "text", "--evidence-col", "evidence", "--id-col", "id",
            "--methods", METHODS, "--quality-metric", "char_ratio", *extra]  # fmt: skip


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory):
    cwd = tmp_path_factory.mktemp("mon")
    write_csv(cwd / "in.csv", sample_rows(12))
    proc = run_cli(*base_args(cwd / "in.csv", "--num-shards", "2"), cwd=cwd)
    return cwd, proc


@pytest.mark.slow
def test_run_off_a_terminal_prints_readable_plain_lines(finished_run) -> None:
    cwd, proc = finished_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert not ANSI.search(out) and "\r" not in out
    for shard in (0, 1):
        assert re.search(rf"^\[\s*\d+s\] shard {shard} ✓ done\s+100%  combos (\d)/\1  \d+ rows  took \d+s$", out, re.M)
    assert re.search(r"^\[\s*\d+s\] Overall: 2 completed \| 0 running \| 0 failed \| 0 pending$", out, re.M)
    assert re.search(r"^\[\s*\d+s\] Total: 3/3 combos processed \| [\d,]+ rows generated$", out, re.M)
    # The final summary: per-shard outcome, totals, wall time, the manifest.
    assert re.search(r"^0\s+✓ done\s+(\d)\s+\1\s+0\s+0\s+[\d,]+\s+\d+s\s+logs/augment/shard_0_of_2.log$", out, re.M)
    assert "Total rows:" in out and "wall time:" in out
    assert "manifest: data/processed/augsets/manifest_final.csv" in out


@pytest.mark.slow
def test_monitor_snapshot_after_the_run_shows_the_same_truth(finished_run) -> None:
    cwd, _ = finished_run
    with open(cwd / "data/processed/augsets/manifest_final.csv", newline="") as fh:
        rows = sum(int(m["rows"]) for m in csv.DictReader(fh))
    snap = run_cli("monitor", cwd=cwd, timeout=60)
    assert snap.returncode == 0, snap.stderr
    assert len(re.findall(r"✓ done .* 100% .*took \d+s", snap.stdout)) == 2
    assert "Overall: 2 completed | 0 running | 0 failed | 0 pending" in snap.stdout
    assert f"Total: 3/3 combos processed | {rows:,} rows generated" in snap.stdout
    nothing = run_cli("monitor", "--log-dir", "nowhere", cwd=cwd, timeout=60)
    assert nothing.returncode == 2 and "no shard event streams" in nothing.stderr


def run_on_a_terminal(args: list[str], cwd: Path, timeout: float = 300) -> tuple[int, str]:
    """Run the CLI with its stdout on a pseudo-terminal, as a user's terminal would be."""
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "160", "LINES": "40", "TERM": "xterm-256color"}
    proc = subprocess.Popen([sys.executable, "-m", "augshard", *args], cwd=cwd, stdin=slave, stdout=slave,
                            stderr=slave, env=env, close_fds=True)  # fmt: skip
    os.close(slave)
    chunks = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(timeout=30), b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.slow
def test_run_on_a_terminal_redraws_the_live_table(tmp_path: Path) -> None:
    write_csv(tmp_path / "in.csv", sample_rows(12))
    rc, out = run_on_a_terminal(base_args(tmp_path / "in.csv", "--num-shards", "2"), tmp_path)
    assert rc == 0, out
    assert "\x1b[?25l" in out and "\x1b[1A" in out  # cursor hidden, lines redrawn in place
    plain = ANSI.sub("", out)
    assert "current combo" in plain and "ETA" in plain
    assert plain.count("Overall:") >= 2  # more than one frame
    start = plain.rindex("current combo")
    final = plain[start : plain.index("Total:", start)]  # the last frame, not the summary after it
    assert final.count("✓ done") == 2 and "Overall: 2 completed | 0 running | 0 failed | 0 pending" in final
    assert "[    " not in plain  # no plain progress lines on a terminal


@pytest.mark.slow
def test_a_shard_killed_with_sigkill_is_shown_dead_and_follow_ends(tmp_path: Path) -> None:
    write_csv(tmp_path / "in.csv", sample_rows(200))
    # Many small chunks: shard 0 is still at work when it is killed (with 20 rows it could finish first).
    (tmp_path / "cfg.yaml").write_text("chunk_size: 2\n", encoding="utf-8")
    env = {**os.environ, "COLUMNS": "200"}
    # No restart: the shard stays dead (with retries the supervisor would bring it back; test_reliability covers it).
    args = [
        sys.executable,
        "-m",
        "augshard",
        *base_args(tmp_path / "in.csv", "--config", "cfg.yaml", "--num-shards", "2", "--max-retries", "0"),
    ]
    run = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    follow = subprocess.Popen([sys.executable, "-m", "augshard", "monitor", "--follow", "--interval", "0.5",
                               "--stall-after", "20"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env)  # fmt: skip
    stream = tmp_path / "logs/augment/shard_0_of_2.events.jsonl"
    pid = None
    deadline = time.time() + 120
    while pid is None and time.time() < deadline:
        if stream.is_file():
            evs = read_events(stream)
            if any(e.kind == "combo_start" for e in evs):
                pid = evs[0].pid
        time.sleep(0.05)
    assert pid is not None, "shard 0 never started a combo"
    os.kill(pid, signal.SIGKILL)
    f_out, f_err = follow.communicate(timeout=120)  # --follow must end by itself
    r_out, r_err = run.communicate(timeout=300)
    assert follow.returncode == 1, f_out + f_err
    assert re.search(rf"shard 0 ☠ dead .*process {pid} is gone", f_out), f_out
    assert re.search(r"^\s*0\s+☠ dead", f_out, re.M)  # the final table, as aligned lines off a terminal
    snap = run_cli("monitor", cwd=tmp_path, timeout=60)
    dead = re.search(rf"^\s*0\s+☠ dead .*process {pid} is gone", snap.stdout, re.M)
    assert snap.returncode == 0 and dead, snap.stdout
    assert "dead" in overall_line(EventsWatcher(tmp_path / "logs/augment").statuses())
    assert run.returncode == 1, r_out + r_err
    assert "crashed" in r_out and "shard 0" in r_out


def test_two_runs_sharing_a_log_folder_are_not_summed(tmp_path: Path) -> None:
    """Two runs with one shard count append to the same stream: the monitor follows the latest attempt only, never
    "6/3 combos"."""
    from augshard.events.stream import ComboDone, ComboStart, EventWriter, ShardDone

    writers = [EventWriter(events_path(tmp_path, 0, 1), 0, pid=pid) for pid in (os.getpid(), os.getppid())]
    for n, writer in enumerate(writers):
        writer.shard_start(combos=3, plan_fingerprint=f"plan{n}", num_shards=1)
    for c in range(3):
        for writer in writers:  # interleaved, as two processes write them
            writer.emit(ComboStart(combo_id=f"c{c}", methods=f"m{c}", k=1))
            writer.emit(ComboDone(combo_id=f"c{c}", methods=f"m{c}", rows=5, rows_input=5))
    for writer in writers:
        writer.emit(ShardDone(duration=1.0))
        writer.close()
    (st,) = EventsWatcher(tmp_path).statuses()
    assert (st.combos_done, st.combos_total, st.plan_fingerprint) == (3, 3, "plan1")
    proc = run_cli("monitor", "--log-dir", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 0 and "3/3" in proc.stdout and "6/3" not in proc.stdout, proc.stdout


def test_damaged_event_lines_are_skipped_counted_and_said(tmp_path: Path) -> None:
    """A line that is no event (not UTF-8, not JSON, nested too deep, a field of the wrong type) is skipped; the
    tracker keeps its reason across a new attempt, and the table, the JSON and stderr's note say how many."""
    from augshard.events.monitor import damaged_lines, status_document
    from augshard.events.status import ShardTracker

    stream = events_path(tmp_path, 0, 1)
    good = [{"ts": 1.0, "event": "shard_start", "shard": 0, "pid": 0, "combos": 1},
            {"ts": 2.0, "event": "combo_done", "shard": 0, "pid": 0, "combo_id": "a", "rows": 4}]  # fmt: skip
    damaged = [b'{"event": "heartbeat"}\xff', b"[" * 10**5 + b"]" * 10**5, b'{"event": "combo_done", "rows": null}',
               b"not json"]  # fmt: skip
    lines = [json.dumps(good[0]).encode(), *damaged, json.dumps(good[1]).encode()]
    stream.write_bytes(b"\n".join(lines) + b"\n")
    tracker = ShardTracker(stream, 0)
    status = tracker.poll()
    assert status.combos_done == 1 and status.rows == 4  # the good lines all count
    assert status.damaged == ["not UTF-8 (byte 22)", "JSON nested too deep", "combo_done: 'rows' is null, "
                              "expected int", "not JSON"]  # fmt: skip
    with open(stream, "ab") as fh:  # a retry of the shard: a new attempt, the damage still said
        fh.write(json.dumps({**good[0], "ts": 3.0}).encode() + b"\n")
    status = tracker.poll()
    assert status.combos_done == 0 and len(status.damaged) == 4
    assert damaged_lines([status]) == ["shard 0: skipped 4 damaged lines of its event stream (first: not UTF-8 "
                                       "(byte 22))"]  # fmt: skip
    assert status_document([status], 4.0)["shards"][0]["damaged_lines"] == 4
    console = Console(record=True, width=200)
    console.print(render([status], 4.0))
    assert "shard 0: skipped 4 damaged lines" in console.export_text()
