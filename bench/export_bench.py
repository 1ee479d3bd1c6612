"""X: `augshard export` of the full ReDSM5 plan's output (2,058 sentences x every available method x k <= 2 with
char_ratio: ~900k rows), exact and near, wall time and peak RSS. Its run is B6 char_ratio at full size, measured too.
Run through bench/run.py (--only X); --rows makes a smaller run (then the targets are not counted)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from common import BOUNDS, augshard, check, data
from filter import FULL_ROWS


def timed(cwd: Path, *args: str) -> tuple[float, int]:
    """(wall seconds, peak RSS MB) of one `augshard` command, from the kernel's accounting of that child alone."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "augshard", *args], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"augshard {' '.join(args)} failed: {proc.stderr.read().decode()[-2000:]}")
    return wall, usage.ru_maxrss // 1024


def x(work: Path, rows: int | None) -> dict:
    from run import available_methods

    n = rows or FULL_ROWS
    csv_path, col = data(n, work)
    cwd = work / "run"
    cwd.mkdir()
    methods = available_methods()
    wall = augshard(cwd, "--input", str(csv_path), "--text-col", col, "--methods", ",".join(methods),
                    "--max-combo-size", "2", "--quality-metric", "char_ratio", *BOUNDS,
                    "--num-shards", "2")  # fmt: skip
    import pyarrow.parquet as pq

    generated = sum(pq.read_metadata(p).num_rows for p in cwd.glob("data/processed/augsets/combo_*/dataset.parquet"))
    out: dict = {"name": "X export of the full plan", "input_rows": n, "methods": len(methods), "run_rows": generated,
                 "B6_char_ratio_wall_s": wall}  # fmt: skip
    for mode in ("exact", "near"):
        out[f"{mode}_wall_s"], out[f"{mode}_peak_rss_mb"] = timed(
            cwd, "export", "--to", f"out-{mode}", "--dedupe", mode
        )
        out[f"{mode}_rows"] = sum(pq.read_metadata(p).num_rows for p in (cwd / f"out-{mode}/data").glob("*.parquet"))
    out["target"] = "exact: < 60 s and peak RSS < 1 GB at full size; near: reported"
    full = n >= FULL_ROWS
    out["size"] = "full size" if full else f"{n}-row run: not a target measurement"
    out["checks"] = []
    if full:
        out["checks"] = [
            check("B6 char_ratio: wall at full size (s)", wall, 600, higher_is_better=False),
            check("X export exact, ~900k rows (s)", out["exact_wall_s"], 60, higher_is_better=False),
            check("X export exact, peak RSS (MB)", out["exact_peak_rss_mb"], 1024, higher_is_better=False),
        ]
    return out
