"""Kill `augshard run` with SIGKILL at random moments, resume each time, and compare the final datasets
byte for byte with an uninterrupted run; then `augshard verify`.

    .venv/bin/python scripts/torture.py --kills 20 --rows 60 --workdir /tmp/augshard-torture
"""

from __future__ import annotations

import argparse
import csv
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[1] / "augshard" / "sample" / "reviews.csv"


def run_args(cwd: Path, methods: str, shards: int) -> list[str]:
    return [sys.executable, "-m", "augshard", "run", "--config", str(cwd / "cfg.yaml"), "--input",
            str(cwd / "in.csv"), "--text-col", "text", "--evidence-col", "evidence", "--id-col", "id",
            "--methods", methods, "--quality-metric", "char_ratio",
            "--quality-min-sim", "0.55", "--quality-max-sim", "0.95", "--num-shards", str(shards),
            "--no-live"]  # fmt: skip


def prepare(cwd: Path, rows: int) -> None:
    shutil.rmtree(cwd, ignore_errors=True)
    cwd.mkdir(parents=True)
    with (
        open(SAMPLE, encoding="utf-8", newline="") as src,
        open(cwd / "in.csv", "w", encoding="utf-8", newline="") as dst,
    ):
        reader = csv.DictReader(src)
        writer = csv.DictWriter(dst, fieldnames=reader.fieldnames)
        writer.writeheader()
        writer.writerows(row for n, row in enumerate(reader) if n < rows)
    (cwd / "cfg.yaml").write_text("chunk_size: 3\n", encoding="utf-8")


def datasets(cwd: Path) -> dict[str, bytes]:
    return {p.parent.name: p.read_bytes() for p in sorted(cwd.glob("data/processed/augsets/combo_*/dataset.parquet"))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--rows", type=int, default=60)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--methods", default="nlp_keyboard,nlp_randword_delete,nlp_spelling,nlp_wordnet_syn")
    parser.add_argument("--max-delay", type=float, help="longest wait before a kill (s) [1.5 x the baseline's time]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/augshard-torture"))
    opts = parser.parse_args()
    rng = random.Random(opts.seed)

    base, tortured = opts.workdir / "baseline", opts.workdir / "tortured"
    for cwd in (base, tortured):
        prepare(cwd, opts.rows)
    t0 = time.time()
    subprocess.run(run_args(base, opts.methods, opts.shards), cwd=base, check=True, capture_output=True)
    baseline_s = time.time() - t0
    print(f"baseline: {len(datasets(base))} combos in {baseline_s:.0f}s")
    max_delay = opts.max_delay or 1.5 * baseline_s
    kills = completions = 0
    while kills < opts.kills:
        proc = subprocess.Popen(run_args(tortured, opts.methods, opts.shards), cwd=tortured,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            proc.wait(timeout=rng.uniform(0.5, max_delay))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            kills += 1
            print(f"kill {kills}: {len(datasets(tortured))} combos complete so far")
            continue
        # The run outlived its kill: check it, then start over from nothing to keep killing.
        if proc.returncode != 0 or datasets(tortured) != datasets(base):
            print(f"a completed run differs from the baseline (exit {proc.returncode})")
            return 1
        completions += 1
        print(f"run completed before its kill, identical to the baseline; starting over ({completions})")
        prepare(tortured, opts.rows)
    final = subprocess.run(run_args(tortured, opts.methods, opts.shards), cwd=tortured, capture_output=True, text=True)
    same = datasets(tortured) == datasets(base)
    verify = subprocess.run([sys.executable, "-m", "augshard", "verify"], cwd=tortured, capture_output=True, text=True)
    print(f"after {kills} kills: final run exit {final.returncode}; datasets identical to baseline: {same}; "
          f"verify exit {verify.returncode}")  # fmt: skip
    return 0 if final.returncode == 0 and same and verify.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
