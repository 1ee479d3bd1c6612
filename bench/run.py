"""augshard benchmarks: each runs augshard and its baseline in the same invocation and prints the ratio.

    .venv/bin/python bench/run.py [--only B1,B4,W] [--rows N]

Data: ../shared/data/redsm5/sentences.csv when present, else the shipped sample. Results: bench/results/*.json.
Not part of the tests; this host's speed drifts, so compare ratios from one invocation, not across runs.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REDSM5 = REPO.parent / "shared" / "data" / "redsm5" / "sentences.csv"
RESULTS = REPO / "bench" / "results"
CHEAP = ["nlp_keyboard", "nlp_randchar_swap", "nlp_randword_delete"]
# The original tool's workload W (shared/ANCHORS.md): 6 methods, k <= 2 -> 21 combos, 2 variants, difflib filter.
W_METHODS = ["nlp_keyboard", "nlp_ocr", "nlp_randchar_del", "nlp_randword_delete", "nlp_spelling", "ta_wordswap_qwerty"]
W_ORIGINAL_2_SHARDS_S = 805.0  # measured by the project on this machine class (ANCHORS.md); range 622-805 s


def data(rows: int | None, work: Path) -> tuple[Path, str]:
    """(csv path, text column): ReDSM5 sentences (text column = evidence column, as the original ran), else the
    shipped sample's evidence sentences."""
    if REDSM5.is_file():
        src, col = REDSM5, "sentence_text"
    else:
        src, col = REPO / "augshard" / "sample" / "reviews.csv", "evidence"
    with open(src, encoding="utf-8", newline="") as fh:
        records = [r for r in csv.DictReader(fh)]
    records = records[:rows] if rows else records
    out = work / "input.csv"
    with open(out, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["text"])
        writer.writeheader()
        writer.writerows({"text": r[col]} for r in records)
    return out, "text"


def augshard(cwd: Path, *args: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "augshard", "run", "--no-live", *args], cwd=cwd, capture_output=True,
                          text=True)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"augshard run failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return time.perf_counter() - t0


def bare_loop(csv_path: Path, methods: list[str], variants: int, attempts: int) -> float:
    """The same augmenters and seeding as augshard's single-method combos, in a plain loop (no shards, no cache,
    no Parquet, no events), filter `none`: what orchestration costs is the difference."""
    code = f"""
import csv, time, sys
sys.path.insert(0, {str(REPO)!r})
from augshard.methods.resources import apply_offline_env
apply_offline_env()
from augshard.methods import build_method, load_catalogue
from augshard.pipeline import call_seed
from augshard.data import row_keys, read_table
specs = load_catalogue({str(REPO / "conf" / "augment_methods.yaml")!r})
table = read_table({str(csv_path)!r})
texts = table.column('text').to_pylist()
keys = row_keys(table, None, 'bench')
methods = {{m: build_method(specs[m]) for m in {methods!r}}}
t0 = time.perf_counter()
kept = 0
for m, method in methods.items():
    for text, key in zip(texts, keys):
        seen, got, attempt = {{text}}, 0, 0
        while got < {variants} and attempt < {variants * attempts}:
            out = method.augment([text], [call_seed(42, (m,), key, attempt)])[0]
            attempt += 1
            if isinstance(out, str) and out.strip() and out not in seen:
                seen.add(out); got += 1; kept += 1
print(time.perf_counter() - t0, kept)
"""
    env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return time.perf_counter() - t0  # the whole process, imports included, like augshard's wall time


def combo_seconds(cwd: Path) -> float:
    with open(cwd / "data/processed/augsets/manifest_final.csv", encoding="utf-8", newline="") as fh:
        return sum(float(r["duration_s"]) for r in csv.DictReader(fh))


def b1(work: Path, rows: int | None) -> dict:
    csv_path, col = data(rows, work)
    cwd = work / "b1"
    cwd.mkdir()
    wall = augshard(cwd, "--input", str(csv_path), "--text-col", col, "--methods", ",".join(CHEAP), "--combo-mode",
                    "single", "--quality-metric", "none", "--num-shards", "1")  # fmt: skip
    loop = bare_loop(csv_path, CHEAP, variants=2, attempts=3)
    return {"name": "B1 orchestration overhead", "augshard_wall_s": wall, "augshard_combo_s": combo_seconds(cwd),
            "bare_loop_wall_s": loop, "ratio": loop / wall,
            "target": ">= 0.8 (bare loop process time / augshard run time, 1 shard, filter none)"}  # fmt: skip


def b4(work: Path, rows: int | None) -> dict:
    csv_path, col = data(rows, work)
    cwd = work / "b4"
    cwd.mkdir()
    args = ["--input", str(csv_path), "--text-col", col, "--methods", ",".join(CHEAP), "--quality-metric", "char_ratio",
            "--num-shards", "2"]  # fmt: skip
    cold = augshard(cwd, *args)
    warm = augshard(cwd, *args)
    for folder in (cwd / "data/processed/augsets").glob("combo_*"):
        shutil.rmtree(folder)
    cached = augshard(cwd, *args)
    return {"name": "B4 warm rerun", "cold_s": cold, "all_complete_s": warm, "datasets_deleted_cache_kept_s": cached,
            "cold_over_cached": cold / cached, "target": "all complete <= 3 s; cold/cached >= 10"}  # fmt: skip


def w(work: Path, rows: int | None) -> dict:
    csv_path, col = data(rows, work)
    out = {}
    datasets = {}
    for shards in (2, 1):
        cwd = work / f"w{shards}"
        cwd.mkdir()
        out[f"augshard_{shards}_shards_s"] = augshard(
            cwd, "--input", str(csv_path), "--text-col", col, "--methods", ",".join(W_METHODS), "--quality-metric",
            "char_ratio", "--variants-per-sample", "2", "--seed", "42", "--num-shards", str(shards),
        )  # fmt: skip
        datasets[shards] = {p.parent.name: p.read_bytes() for p in cwd.glob("data/processed/augsets/combo_*/*.parquet")}
    out.update(name="W the original's workload (21 combos, char_ratio)", original_2_shards_s=W_ORIGINAL_2_SHARDS_S,
               speedup_vs_original=W_ORIGINAL_2_SHARDS_S / out["augshard_2_shards_s"],
               same_output_1_vs_2_shards=datasets[1] == datasets[2], rows=rows or "all",
               target=">= 5x the original's 805 s (~125-160 s), identical output for any shard count")  # fmt: skip
    return out


BENCHES = {"B1": b1, "B4": b4, "W": w}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(BENCHES))
    parser.add_argument("--rows", type=int, default=None, help="input rows (default: all 2,058 ReDSM5 sentences)")
    opts = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    random.seed(0)
    for key in opts.only.split(","):
        with tempfile.TemporaryDirectory(prefix=f"augshard-bench-{key}-") as tmp:
            result = BENCHES[key](Path(tmp), opts.rows)
        result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
        result["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        (RESULTS / f"{key}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
