"""Nothing lost, nothing half-written: dead shards retried, signals honoured, one run per output root, and
outputs identical to an uninterrupted run after any number of SIGKILLs and resumes."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import run_cli, sample_rows, wait_for, write_csv

from augshard.events.stream import read_events

pytestmark = [pytest.mark.slow, pytest.mark.serial]  # timing: run alone (see Makefile)

CONFIG = "chunk_size: 2\n"  # many chunks: many moments to be killed at, many progress events


def args(cwd: Path, *extra: str) -> list[str]:
    methods = "nlp_keyboard,nlp_randword_delete,nlp_spelling"
    return ["run", "--config", str(cwd / "cfg.yaml"), "--input", str(cwd / "in.csv"), "--text-col", "text",
            "--evidence-col", "evidence", "--id-col", "id", "--methods", methods,
            "--quality-metric", "char_ratio", "--num-shards", "2", "--no-live", *extra]  # fmt: skip


def setup_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    write_csv(path / "in.csv", sample_rows(120))
    (path / "cfg.yaml").write_text(CONFIG, encoding="utf-8")
    return path


def start(cwd: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.Popen([sys.executable, "-m", "augshard", *args(cwd, *extra)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip


def events(cwd: Path, shard: int) -> list:
    return read_events(cwd / f"logs/augment/shard_{shard}_of_2.events.jsonl")


def working(cwd: Path, shard: int) -> bool:
    return any(e.kind == "progress" and e.rows_done > 0 for e in events(cwd, shard))


def worker_pid(cwd: Path, shard: int) -> int:
    return [e for e in events(cwd, shard) if e.kind == "shard_start"][-1].pid


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purpose
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def datasets(cwd: Path) -> dict[str, bytes]:
    root = cwd / "data/processed/augsets"
    return {p.parent.name: p.read_bytes() for p in sorted(root.glob("combo_*/dataset.parquet"))}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    cwd = setup_dir(tmp_path_factory.mktemp("baseline"))
    proc = run_cli(*args(cwd), cwd=cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = datasets(cwd)
    assert len(out) == 6
    return out


def test_a_killed_shard_is_retried_and_the_run_completes(tmp_path: Path, baseline: dict[str, bytes]) -> None:
    cwd = setup_dir(tmp_path)
    proc = start(cwd)
    wait_for(lambda: working(cwd, 0))
    os.kill(worker_pid(cwd, 0), signal.SIGKILL)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "shard 0 died" in out and "retry 1 of 2" in out
    assert datasets(cwd) == baseline
    assert not list((cwd / "data/processed/augsets").glob(".augshard-tmp/*"))


def test_a_shard_that_keeps_dying_fails_the_run_and_the_others_finish(tmp_path: Path) -> None:
    cwd = setup_dir(tmp_path)
    proc = start(cwd, "--max-retries", "0", "--keep-shards")
    wait_for(lambda: working(cwd, 0))
    os.kill(worker_pid(cwd, 0), signal.SIGKILL)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1, out
    assert "crashed shard 0" in out and "shard_0_of_2.log" in out
    manifest = (cwd / "data/processed/augsets/manifest_shard1_of_2.csv").read_text()
    assert ",failed," not in manifest and manifest.count(",ok,") >= 1
    assert ",failed," in (cwd / "data/processed/augsets/manifest_shard0_of_2.csv").read_text()


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_cleanly_and_a_rerun_resumes(tmp_path: Path, baseline: dict, signum: int, code: int) -> None:
    cwd = setup_dir(tmp_path)
    proc = start(cwd)
    wait_for(lambda: working(cwd, 0) and working(cwd, 1))
    pids = [worker_pid(cwd, 0), worker_pid(cwd, 1)]
    sent = time.time()
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == code, out
    assert time.time() - sent < 10, "took longer than 10 s to stop"
    assert "interrupted" in out
    wait_for(lambda: not any(alive(p) for p in pids), timeout=5)  # no orphan
    root = cwd / "data/processed/augsets"
    assert not list(root.glob(".augshard-tmp/*")) and not (root / ".augshard.runner.lock").exists()
    for folder in root.glob("combo_*"):
        assert sorted(p.name for p in folder.iterdir()) == ["dataset.parquet", "meta.json"]
    resumed = run_cli(*args(cwd), cwd=cwd)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert datasets(cwd) == baseline


def test_a_second_signal_kills_every_worker_at_once(tmp_path: Path) -> None:
    """The first Ctrl-C lets the shards finish their chunk; a second one does not wait: every worker dies at once
    (well before the supervisor's own grace period), nothing half-written stays visible, and a rerun completes."""
    cwd = setup_dir(tmp_path)
    # With the embedding filter a shard's first scoring round loads the sentence model before its next stop check.
    embedding = ("--quality-metric", "embedding")
    proc = start(cwd, *embedding)
    wait_for(lambda: all(any(e.kind == "progress" for e in events(cwd, s)) for s in (0, 1)))
    pids = [worker_pid(cwd, 0), worker_pid(cwd, 1)]
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    sent = time.time()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130, out
    wait_for(lambda: not any(alive(p) for p in pids), timeout=2)
    assert time.time() - sent < 2, "the second signal did not kill the workers at once"
    # A shard may have honoured the first signal already (its stop checks now come between slices of calls, so a
    # stop is often this fast); those that had not are killed, and no shard is left waiting for its chunk's end.
    root = cwd / "data/processed/augsets"
    for folder in root.glob("combo_*"):
        assert sorted(p.name for p in folder.iterdir()) == ["dataset.parquet", "meta.json"]
    resumed = run_cli(*args(cwd, *embedding), cwd=cwd)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert len(list(root.glob("combo_*/dataset.parquet"))) == 6
    assert run_cli("verify", cwd=cwd).returncode == 0


def test_a_second_run_on_the_same_output_root_is_refused(tmp_path: Path) -> None:
    cwd = setup_dir(tmp_path)
    root = cwd / "data/processed/augsets"
    root.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = {"pid": holder.pid, "host": os.uname().nodename, "started": time.time(), "argv": ["augshard"]}
        (root / ".augshard.runner.lock").write_text(json.dumps(lock))
        proc = run_cli(*args(cwd), cwd=cwd)
        assert proc.returncode == 2
        assert f"in use by another augshard run (pid {holder.pid}" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
        assert not list(root.glob("combo_*"))
    finally:
        holder.kill()
        holder.wait()
    # The same lock left by a dead process is stale: taken over, and the run goes ahead.
    proc = run_cli(*args(cwd), cwd=cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(list(root.glob("combo_*"))) == 6 and not (root / ".augshard.runner.lock").exists()


def test_sigkill_at_random_moments_then_resume_gives_identical_datasets(tmp_path: Path, baseline: dict) -> None:
    """The torture test, short: `scripts/torture.py` runs the same loop as long as you like."""
    cwd = setup_dir(tmp_path)
    rng = random.Random(7)
    for _ in range(3):
        for stale in (cwd / "logs/augment").glob("*.events.jsonl"):  # only this attempt's events may say "working"
            stale.unlink()
        proc = start(cwd)
        wait_for(lambda p=proc: any(working(cwd, s) for s in (0, 1)) or p.poll() is not None)
        time.sleep(rng.uniform(0, 1.5))
        pids = [e.pid for s in (0, 1) for e in events(cwd, s) if e.kind == "shard_start"]  # one read per stream
        proc.kill()
        proc.wait()
        wait_for(lambda pids=pids: not any(alive(p) for p in pids), timeout=10)  # workers die with the supervisor
    final = run_cli(*args(cwd), cwd=cwd)
    assert final.returncode == 0, final.stdout + final.stderr
    assert datasets(cwd) == baseline
    verify = run_cli("verify", cwd=cwd)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


CHEAP = ["--text-col", "text", "--evidence-col", "evidence", "--id-col", "id", "--quality-metric", "char_ratio",
         "--methods", "nlp_keyboard,nlp_randword_delete", "--no-live"]  # fmt: skip


def test_a_rerun_sweeps_what_a_kill_9_left(tmp_path: Path) -> None:
    """A supervisor killed with -9 runs no cleanup: its claims folder and a temporary manifest stay. The next run
    removes those of dead processes of this host, and only those."""
    write_csv(tmp_path / "in.csv", sample_rows(12))
    logs, root = tmp_path / "logs/augment", tmp_path / "data/processed/augsets"
    logs.mkdir(parents=True)
    root.mkdir(parents=True)
    pid, host = dead_pid(), os.uname().nodename
    left = [logs / f".claims-0123456789abcdef-{pid}-1700000000", logs / f".claims-0123456789abcdef-{pid}-17~{host}"]
    for folder in left:
        folder.mkdir()
        (folder / "a6655e21ee").write_text("1")
    temps = [root / f".manifest_shard0_of_2.csv.{pid}.tmp", root / f".manifest_final.csv~{pid}~{host}.tmp"]
    for temp in temps:
        temp.write_text("half")
    alive = [logs / f".claims-0123456789abcdef-{os.getpid()}-17~{host}", logs / f".claims-0123-{pid}-17~elsewhere"]
    for folder in alive:
        folder.mkdir()
    proc = run_cli("run", "--input", "in.csv", *CHEAP, "--num-shards", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not any(p.exists() for p in [*left, *temps]) and all(p.is_dir() for p in alive)
    assert run_cli("verify", cwd=tmp_path).returncode == 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Path:
    """A 4 MiB tmpfs, unmounted afterwards (mounting needs root)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_disk_says_so_in_one_line_and_a_rerun_is_clean(tmp_path: Path, small_disk: Path) -> None:
    """Outputs, cache and logs on a disk that fills up mid-run: the combos fail with the disk's error, the cache turns
    itself off, no traceback anywhere, no temporary left; once there is room, a rerun completes and verifies."""
    write_csv(tmp_path / "in.csv", sample_rows(16))
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * ((4096 - 96) * 1024))  # 96 KiB left: the run starts, the combos do not fit
    folders = ["--output-root", str(small_disk / "out"), "--cache-dir", str(small_disk / "cache"),
               "--log-dir", str(small_disk / "logs")]  # fmt: skip
    run = ["run", "--input", "in.csv", *CHEAP, "--num-shards", "1", *folders]
    proc = run_cli(*run, cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "No space left on device" in out and "Traceback" not in out, out
    log = (small_disk / "logs/shard_0_of_1.log").read_text(encoding="utf-8")
    assert "Traceback" not in log and log.count("turned off") <= 1
    assert not [p for p in small_disk.rglob("*") if p.name.endswith(".tmp") or ".corrupt-" in p.name]
    assert not list((small_disk / "out").glob(".augshard*.lock"))
    filler.unlink()
    proc = run_cli(*run, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    verify = run_cli("verify", "--output-root", str(small_disk / "out"), "--format", "json", cwd=tmp_path)
    doc = json.loads(verify.stdout)
    assert verify.returncode == 0 and doc["problems"] == [] and doc["stale"] == [], verify.stdout
