"""Progress that moves: the rows counter of a long combo advances inside its chunk, never backwards; the method
probes say each method as they go."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from helpers import run_cli, run_events, sample_rows, write_csv

from augshard.events.stream import AUGMENTING, LOADING, SCORING
from augshard.methods import StepsShown
from augshard.shard.progress import ChunkProgress


def _long_input(path: Path, copies: int) -> int:
    """The shipped sample `copies` times over, each copy's texts made distinct (its evidence still inside)."""
    base = sample_rows(1000)
    rows = [dict(r, text=f"{r['text']} (copy {c})") for c in range(copies) for r in base]
    write_csv(path, rows)
    return len(rows)


def test_the_rows_counter_of_a_long_combo_moves_inside_its_only_chunk(tmp_path: Path) -> None:
    total = _long_input(tmp_path / "in.csv", 3)
    (tmp_path / "run.yaml").write_text(f"chunk_size: {total}\n")  # the whole input is one chunk
    args = ["--config", str(tmp_path / "run.yaml"), "--input", str(tmp_path / "in.csv"), "--text-col", "text",
            "--evidence-col", "evidence", "--methods", "nlp_wordnet_syn", "--combo-mode", "single",
            "--quality-metric", "char_ratio", "--num-shards", "1"]  # fmt: skip
    proc = run_cli("run", "--no-live", *args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    progress = run_events(tmp_path, "progress")
    done = run_events(tmp_path, "combo_done")
    assert len(done) == 1 and total - 10 < done[0].rows_input <= total  # the sample's few unusable rows skipped
    total = done[0].rows_input
    before = [e for e in progress if e.ts <= done[0].ts]
    counts = [e.rows_done for e in before]
    assert counts == sorted(counts) and counts[-1] == total  # never backwards, whole at the end
    distinct = sorted(set(counts))
    # The whole input is one chunk: the counter moved inside it, at least twice, before the chunk was written.
    inside = [n for n in distinct if 0 < n < total]
    assert len(inside) >= 2, counts
    assert len(distinct) >= 3
    phases = {e.phase for e in before}
    assert {LOADING, AUGMENTING} <= phases, phases


def test_chunk_progress_never_goes_backwards_and_ends_at_the_chunk_end() -> None:
    told: list[tuple[int, int, str]] = []
    ends: list[tuple[int, int]] = []
    clock = iter(range(1000)).__next__  # one second a reading: every word is told
    progress = ChunkProgress(lambda d, t, p: told.append((d, t, p)), 20, lambda d, t: ends.append((d, t)),
                             min_interval=1.0, clock=lambda: float(clock()))  # fmt: skip
    progress.chunk(10, 10, 60)  # rows 10..19 of 20, 6 attempts each at most (60 in all)
    progress.round(60, 20)  # round 1: 2 attempts a row
    progress.calls(0.5)
    progress.calls(1.0, SCORING)
    progress.settled(8)  # 8 rows settled: the 2 left may take 4 more each
    progress.round(8, 2)
    progress.calls(1.0)
    progress.settled(0)
    progress.chunk_done()
    rows = [d for d, _, _ in told]
    assert rows == sorted(rows) and all(10 <= d < 20 for d in rows)
    # Half of round 1's 20 attempts of 60: 1/6 of the chunk; all of them: 1/3; then 52 of 60 settled.
    assert rows[:3] == [11, 13, 18]
    assert [p for _, _, p in told][:3] == [AUGMENTING, SCORING, AUGMENTING]
    assert ends == [(20, 20)]


def test_probe_steps_are_one_line_per_method_off_a_terminal() -> None:
    out = io.StringIO()
    steps = StepsShown("probing", "probed", stream=out)
    steps("nlp_keyboard", 0, 2, None)
    steps("nlp_keyboard", 1, 2, "ok")
    steps("ta_clare", 1, 2, None)
    steps("ta_clare", 2, 2, "unavailable: no model")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("probed 1/2 nlp_keyboard: ok (")
    assert lines[1].startswith("probed 2/2 ta_clare: unavailable: no model (")


def test_methods_check_shows_each_probe_on_stderr_and_keeps_stdout(tmp_path: Path) -> None:
    env = {"AUGSHARD_HOME": str(tmp_path / "home")}  # an empty probe cache: every method is probed
    proc = run_cli("methods", "--methods", "nlp_keyboard,nlp_randchar_swap", "--format", "tsv", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout), delimiter="\t"))
    assert [(r["id"], r["status"]) for r in rows] == [("nlp_keyboard", "ok"), ("nlp_randchar_swap", "ok")]
    probed = [line for line in proc.stderr.splitlines() if line.startswith("probed ")]
    assert [p.split(" (")[0] for p in probed] == ["probed 1/2 nlp_keyboard: ok", "probed 2/2 nlp_randchar_swap: ok"]
    # Probed once: the second listing comes from the probe cache and says nothing of probes.
    again = run_cli("methods", "--methods", "nlp_keyboard,nlp_randchar_swap", "--format", "tsv", cwd=tmp_path, env=env)
    assert again.stdout == proc.stdout and "probed" not in again.stderr
