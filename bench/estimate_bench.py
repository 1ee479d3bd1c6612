"""T6: the dry run's time estimate against the run it estimates, on the shipped sample (the default `embedding`
filter) and on W (the original tool's workload, char_ratio), each on 2 shards. Each estimate is measured from
scratch (an empty estimate cache, as a first dry run), then the run itself is timed from launch to its end.

    .venv/bin/python bench/estimate_bench.py [--rows N] [--only sample,W,W4]

Writes bench/results/estimate.json; the target is an estimate within ±30 % of the actual wall time."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import BOUNDS, REPO, W_METHODS, augshard, check, data, write_result

SAMPLE = REPO / "augshard" / "sample" / "reviews.csv"


def workloads(work: Path, rows: int | None) -> dict[str, list[str]]:
    csv_path, col = data(rows, work)
    w = ["--input", str(csv_path), "--text-col", col, "--methods", ",".join(W_METHODS), "--quality-metric",
         "char_ratio", *BOUNDS, "--variants-per-sample", "2", "--seed", "42"]  # fmt: skip
    return {"sample": ["--num-shards", "2"], "W": [*w, "--num-shards", "2"], "W4": [*w, "--num-shards", "4"]}


def dry_run(cwd: Path, args: list[str], cache: Path) -> tuple[dict, float]:
    """The dry run's JSON document and its own wall time, with its estimate cache at `cache`."""
    env = dict(os.environ, AUGSHARD_ESTIMATE_CACHE=str(cache))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "augshard", "run", "--dry-run", "--format", "json", *args], cwd=cwd,
                          capture_output=True, text=True, env=env)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"dry run failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout), time.perf_counter() - t0


def measure(work: Path, name: str, args: list[str]) -> dict:
    cwd = work / name
    cwd.mkdir()
    doc, dry_s = dry_run(cwd, args, work / f"{name}-estimates.json")
    again, again_s = dry_run(cwd, args, work / f"{name}-estimates.json")  # the same, from the estimate cache
    actual = augshard(cwd, *args)
    est = doc["estimate"]
    return {"args": args, "estimate": est, "estimate_s": est["seconds"], "actual_s": round(actual, 2),
            "ratio": round(est["seconds"] / actual, 3), "dry_run_s": round(dry_s, 2),
            "dry_run_cached_s": round(again_s, 2), "cached_estimate_s": again["estimate"]["seconds"],
            "combos": len(doc["combos"]), "rows_usable": doc["input"]["rows_usable"]}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=None, help="W on its first N sentences (not the target size)")
    parser.add_argument("--only", default="sample,W,W4")
    opts = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="augshard-bench-T6-"))
    runs = workloads(work, opts.rows)
    out: dict = {"name": "T6 the dry run's estimate vs the run", "rows": opts.rows or "all"}
    checks = []
    for name in opts.only.split(","):
        out[name] = res = measure(work, name, runs[name])
        print(f"{name:<8} estimate {res['estimate_s']:>7.1f} s  actual {res['actual_s']:>7.1f} s  "
              f"ratio {res['ratio']:.2f}  (dry run {res['dry_run_s']:.1f} s, cached {res['dry_run_cached_s']:.1f} s)",
              flush=True)  # fmt: skip
        checks += [check(f"T6 {name}: estimate / actual, at least", res["ratio"], 0.7),
                   check(f"T6 {name}: estimate / actual, at most", res["ratio"], 1.3,
                         higher_is_better=False)]  # fmt: skip
    out["target"] = "the estimate within ±30 % of the actual wall time (sample and W at full size)"
    out["checks"] = checks if opts.rows is None else []
    path = write_result("estimate" + (f"-{opts.rows}-rows" if opts.rows else ""), out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
