"""The local executor: one shard's dead process fails only that shard, Ctrl-C ends the run at once with no process
left and nothing on stderr, and a shard forked from the preloaded forkserver writes the bytes a cold spawn writes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import beyond_probes, sample_rows, wait_for, write_csv

from augshard.events.stream import read_events
from augshard.runner.executors import START_METHOD_ENV
from augshard.runner.procs import parent_of

pytestmark = [pytest.mark.slow, pytest.mark.serial]  # timing: run alone (see Makefile)

METHODS = "nlp_keyboard,nlp_randchar_swap,nlp_spelling"  # nlp_spelling's output depends on the hash seed


def setup_dir(path: Path, rows: int = 60) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    write_csv(path / "in.csv", sample_rows(rows))
    (path / "cfg.yaml").write_text("chunk_size: 2\n", encoding="utf-8")  # many chunks: many moments to stop at
    return path


def start(cwd: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    args = ["run", "--config", "cfg.yaml", "--input", "in.csv", "--text-col", "text", "--evidence-col", "evidence",
            "--id-col", "id", "--methods", METHODS, "--quality-metric", "char_ratio", "--num-shards", "2",
            "--no-live", *extra]  # fmt: skip
    return subprocess.Popen([sys.executable, "-m", "augshard", *args], cwd=cwd, env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def events(cwd: Path, shard: int) -> list:
    return read_events(cwd / f"logs/augment/shard_{shard}_of_2.events.jsonl")


def working(cwd: Path, shard: int) -> bool:
    return any(e.kind == "progress" and e.rows_done > 0 for e in events(cwd, shard))


def shard_pids(cwd: Path, shard: int) -> list[int]:
    return [e.pid for e in events(cwd, shard) if e.kind == "shard_start"]


def descendants(root: int) -> set[int]:
    """Every process below `root` (shards, the forkserver, the resource tracker), from /proc."""
    family, grown = {root}, True
    while grown:
        grown = False
        for name in os.listdir("/proc"):
            if name.isdigit() and int(name) not in family and parent_of(int(name)) in family:
                family.add(int(name))
                grown = True
    return family - {root}


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def datasets(cwd: Path) -> dict[str, bytes]:
    root = cwd / "data/processed/augsets"
    return {p.parent.name: p.read_bytes() for p in sorted(root.glob("combo_*/dataset.parquet"))}


def test_a_shard_killed_with_sigkill_fails_only_itself(tmp_path: Path) -> None:
    """One pool per shard: the killed shard's process is replaced, the other shard's process never is."""
    cwd = setup_dir(tmp_path)
    proc = start(cwd, "--max-retries", "1", "--no-steal")
    wait_for(lambda: working(cwd, 0) and bool(shard_pids(cwd, 1)))
    killed = shard_pids(cwd, 0)[0]
    other = shard_pids(cwd, 1)[0]
    os.kill(killed, signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + err
    # the one line on stderr: the warning that says which shard died and how
    assert err.strip().endswith(
        f"shard 0 died (ShardProcessDied: its process {killed} exited with code -9); retry 1 of 1"
    )
    assert len(beyond_probes(err.strip())) == 1
    assert shard_pids(cwd, 1) == [other], "the other shard's process was touched"
    assert len(shard_pids(cwd, 0)) == 2 and shard_pids(cwd, 0)[1] != killed
    assert len(datasets(cwd)) == 6


@pytest.mark.parametrize("signals", [1, 2])
def test_ctrl_c_exits_130_within_2_s_leaving_no_process_and_a_clean_stderr(tmp_path: Path, signals: int) -> None:
    """The first SIGINT stops the shards after their chunk; a second one kills them. Either way: exit 130 within
    2 s, every process the run started (shards, forkserver, resource tracker) gone, nothing on stderr (no leaked
    semaphore warning from the resource tracker, no traceback)."""
    cwd = setup_dir(tmp_path, rows=120)
    proc = start(cwd)
    wait_for(lambda: working(cwd, 0) and working(cwd, 1))
    family = descendants(proc.pid)
    assert {*shard_pids(cwd, 0), *shard_pids(cwd, 1)} <= family
    sent = time.time()
    for _ in range(signals):
        proc.send_signal(signal.SIGINT)
        time.sleep(0.1)
    out, err = proc.communicate(timeout=30)
    took = time.time() - sent
    assert proc.returncode == 130, out + err
    assert took < 2, f"took {took:.1f} s to exit"
    wait_for(lambda: not any(alive(p) for p in family), timeout=1)
    assert beyond_probes(err) == []
    assert not (cwd / "data/processed/augsets/.augshard.runner.lock").exists()


def test_a_forkserver_shard_writes_the_bytes_of_a_cold_spawn(tmp_path: Path) -> None:
    """Shards forked from the forkserver (modules preloaded, hash seed fixed when it started) against shards started
    by spawn: the same dataset.parquet bytes, and each run really used its start method."""
    outputs, parents = {}, {}
    for method in ("forkserver", "spawn"):
        cwd = setup_dir(tmp_path / method)
        proc = start(cwd, env={START_METHOD_ENV: method})
        wait_for(lambda cwd=cwd: bool(shard_pids(cwd, 0)))
        parents[method] = parent_of(shard_pids(cwd, 0)[0]) == proc.pid
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, out + err
        assert beyond_probes(err) == []
        outputs[method] = datasets(cwd)
    assert parents == {"forkserver": False, "spawn": True}
    assert len(outputs["spawn"]) == 6
    assert outputs["forkserver"] == outputs["spawn"]
