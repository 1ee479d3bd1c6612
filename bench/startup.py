"""Bench S: a shard's start-up and the run's memory, local shards started by spawn against shards forked from the
preloaded forkserver, on the sample run (`augshard run --num-shards 2` in an empty folder), runs interleaved.

    python bench/startup.py [--runs 2] [--old-pythonpath DIR]

Without --old-pythonpath the two sides are this tree with AUGSHARD_START_METHOD=spawn and with the default
(forkserver); with it, the spawn side runs the augshard found in DIR (an older checkout with its own executor)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import REPO, write_result


def family(root: int) -> set[int]:
    """`root` and every process below it, from /proc."""
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            parents[int(name)] = int(stat.rsplit(")", 1)[1].split()[1])
    out, grown = {root}, True
    while grown:
        grown = False
        for pid, parent in parents.items():
            if parent in out and pid not in out:
                out.add(pid)
                grown = True
    return out


def memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of a process in KiB; (0, 0) once it is gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0, 0
    values = {line.split(":")[0]: int(line.split()[1]) for line in text.splitlines()[1:] if line.endswith("kB")}
    return values.get("Rss", 0), values.get("Pss", 0)


def one_run(side: str, env: dict[str, str]) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"bench-s-{side}-") as tmp:
        cwd = Path(tmp)
        launched = time.time()
        proc = subprocess.Popen([sys.executable, "-m", "augshard", "run", "--num-shards", "2", "--no-live"], cwd=cwd,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        samples: list[dict[int, tuple[int, int]]] = []
        lines: list[tuple[float, str]] = []

        def sample() -> None:
            while proc.poll() is None:
                samples.append({pid: memory_kib(pid) for pid in family(proc.pid)})
                time.sleep(0.25)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        assert proc.stdout is not None and proc.stderr is not None
        for line in proc.stdout:  # stamped as they come: the first says the plan is made and shards start now
            lines.append((time.time(), line))
        out, err = "".join(line for _, line in lines), proc.stderr.read()
        proc.wait()
        sampler.join()
        submitted = next(ts for ts, line in lines if line.startswith("augshard: "))
        if proc.returncode != 0:
            raise RuntimeError(f"{side}: augshard run failed: {out[-2000:]}{err[-2000:]}")
        sys.path.insert(0, str(REPO))
        from augshard.events.stream import read_events

        shards = {}
        for path in sorted((cwd / "logs" / "augment").glob("*.events.jsonl")):
            events = read_events(path)
            start = next(e for e in events if e.kind == "shard_start")
            # The first chunk of rows done: imports, the methods and the similarity model built, one chunk computed.
            first = next(e for e in events if e.kind == "progress" and e.rows_done > 0)
            done = next(e for e in events if e.kind == "combo_done")
            shards[start.shard] = {
                "pid": start.pid,
                "shard_start_s": round(start.ts - submitted, 2),
                "first_chunk_s": round(first.ts - submitted, 2),
                "first_combo_done_s": round(done.ts - submitted, 2),
            }
        shard_pids = {s["pid"] for s in shards.values()}
        peak = {"shards_rss_mib": 0.0, "shards_pss_mib": 0.0, "all_rss_mib": 0.0, "all_pss_mib": 0.0}
        for snap in samples:
            shard_mem = [v for pid, v in snap.items() if pid in shard_pids]
            for key, values in (("shards", shard_mem), ("all", list(snap.values()))):
                peak[f"{key}_rss_mib"] = max(peak[f"{key}_rss_mib"], sum(v[0] for v in values) / 1024)
                peak[f"{key}_pss_mib"] = max(peak[f"{key}_pss_mib"], sum(v[1] for v in values) / 1024)
        return {
            "side": side,
            "wall_s": round(time.time() - launched, 1),
            "shards": shards,
            "peak": {k: round(v) for k, v in peak.items()},
            "stderr": err,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="runs of each side, interleaved")
    parser.add_argument("--old-pythonpath", help="the spawn side runs the augshard in this directory")
    args = parser.parse_args()
    base = {k: v for k, v in os.environ.items() if k != "AUGSHARD_START_METHOD"}
    if args.old_pythonpath:
        spawn_env = {**base, "PYTHONPATH": args.old_pythonpath}
    else:
        spawn_env = {**base, "PYTHONPATH": str(REPO), "AUGSHARD_START_METHOD": "spawn"}
    sides = {"spawn": spawn_env, "forkserver": {**base, "PYTHONPATH": str(REPO)}}
    runs = []
    for _ in range(args.runs):
        for side, env in sides.items():
            run = one_run(side, env)
            runs.append(run)
            print(json.dumps({k: run[k] for k in ("side", "wall_s", "shards", "peak")}), flush=True)
    summary = {}
    for side in sides:
        mine = [r for r in runs if r["side"] == side]
        first = [s["first_chunk_s"] for r in mine for s in r["shards"].values()]
        summary[side] = {
            "first_chunk_s_median": statistics.median(first),
            "first_chunk_s": first,
            "shard_start_s": [s["shard_start_s"] for r in mine for s in r["shards"].values()],
            "peak_shards_pss_mib": [r["peak"]["shards_pss_mib"] for r in mine],
            "peak_all_pss_mib": [r["peak"]["all_pss_mib"] for r in mine],
            "peak_shards_rss_mib": [r["peak"]["shards_rss_mib"] for r in mine],
            "wall_s": [r["wall_s"] for r in mine],
        }
    doc = {
        "bench": "S",
        "what": "local shard start-up (from the supervisor's 'augshard: N combos on M shards' line, printed as it "
        "starts "
        "the shards, to a shard's first chunk of rows done: imports, methods and similarity model built) and peak "
        "memory (sum over shard processes, and over every process of the run, sampled every 0.25 s from "
        "/proc/PID/smaps_rollup), spawn vs forkserver, sample run with --num-shards 2",
        "spawn_side": f"PYTHONPATH={args.old_pythonpath}" if args.old_pythonpath else "AUGSHARD_START_METHOD=spawn",
        "summary": summary,
        "runs": runs,
    }
    write_result("S", doc)  # with the host block every results file carries
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
