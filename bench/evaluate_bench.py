"""E: `augshard evaluate` at full size, and what its embedding mode encodes.

    .venv/bin/python bench/evaluate_bench.py [--work DIR] [--rows N] [--only tfidf,embedding,split]

E-tfidf: the ReDSM5 sentences (2,058, label `symptom`) x every method that runs here, k <= 2, `char_ratio`,
2 shards (the run is made first and timed apart), then `augshard evaluate --features tfidf --folds 5`, timed as
a user would (the CLI in a subprocess), with the peak resident memory of its whole process tree sampled every
0.2 s. Targets at full size: < 10 min on 2 cores, peak RSS < 4 GB. The baseline is the same evaluation with one
worker process, in the same invocation (what the parallel work buys).

E-embedding: a run with the embedding filter and `--keep-vectors` (3 cheap methods, k <= 2, full input), then
`evaluate --features embedding`: every variant's vector must come from the run (none encoded), counted.

A target is counted only at full size (2,058 rows); --rows makes a slice, reported as such. Results:
bench/results/E-<part>.json, each with its host block (commit, date, CPU model and flags, library versions).
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import BOUNDS, CHEAP, REDSM5, RESULTS, augshard, check, write_result
from run import available_methods

FULL_ROWS = 2058


def labelled_input(rows: int | None, work: Path) -> Path:
    with open(REDSM5, encoding="utf-8", newline="") as fh:
        records = list(csv.DictReader(fh))[: rows or None]
    out = work / "input.csv"
    with open(out, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["text", "symptom"])
        writer.writeheader()
        writer.writerows({"text": r["sentence_text"], "symptom": r["symptom"]} for r in records)
    return out


def rss_tree(pid: int) -> int:
    """Resident bytes of a process and all its descendants, from /proc."""
    total, todo = 0, [pid]
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
        todo += children.get(p, [])
    return total


def timed_cli(cwd: Path, *args: str) -> tuple[float, int, str]:
    """(wall seconds, peak RSS of the process tree, stdout) of `augshard ARGS` in cwd."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "augshard", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    peak = [0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], rss_tree(proc.pid))
            time.sleep(0.2)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    watcher.join()
    if proc.returncode != 0:
        raise RuntimeError(f"augshard {' '.join(args)} failed: {err[-2000:]}")
    return wall, peak[0], out


def e_tfidf(work: Path, rows: int | None) -> dict:
    n = rows or FULL_ROWS
    run_dir = work / "tfidf"
    run_dir.mkdir(exist_ok=True)
    csv_path = labelled_input(n, run_dir)
    methods = available_methods()
    made = run_dir / "data" / "processed" / "augsets" / "manifest_final.csv"
    run_s = None
    if not made.is_file():
        run_s = augshard(run_dir, "--input", str(csv_path), "--text-col", "text", "--methods", ",".join(methods),
                         "--max-combo-size", "2", "--quality-metric", "char_ratio", *BOUNDS,
                         "--num-shards", "2")  # fmt: skip
    import pyarrow.parquet as pq

    rows_total = sum(
        pq.ParquetFile(p).metadata.num_rows
        for p in (run_dir / "data/processed/augsets").glob("combo_*/dataset.parquet")
    )  # noqa: E501
    common = ["evaluate", "--label-col", "symptom", "--drop-rare-classes", "--folds", "5", "--features", "tfidf",
              "--format", "json"]  # fmt: skip
    wall, peak, out = timed_cli(run_dir, *common, "--num-shards", "2")
    doc = json.loads(out)
    wall1, peak1, out1 = timed_cli(run_dir, *common, "--num-shards", "1", "--out", str(work / "one.json"))
    same = {k: v for k, v in json.loads(out1).items() if k != "run_info"} == {
        k: v for k, v in doc.items() if k != "run_info"
    }
    section = doc["results"][0]
    res = {
        "name": "E-tfidf: augshard evaluate, full plan of a char_ratio run",
        "input_rows": n,
        "methods": len(methods),
        "combos": len(section["combos"]),
        "variant_rows": rows_total,
        "run_s (setup, not the target)": round(run_s, 1) if run_s else "reused",
        "evaluate_wall_s": round(wall, 1),
        "evaluate_peak_rss_mb": round(peak / 2**20),
        "one_worker_wall_s": round(wall1, 1),
        "one_worker_peak_rss_mb": round(peak1 / 2**20),
        "two_over_one_worker_speedup": round(wall1 / wall, 2),
        "identical_results_1_vs_2_workers": same,
        "where_the_time_goes_s": doc["run_info"]["seconds"],
        "baseline_macro_f1": section["baseline"]["macro_f1"],
        "classes": doc["protocol"]["classes"],
        "dropped_classes": doc["protocol"]["dropped_classes"],
        "verdicts": {v: sum(c["verdict"] == v for c in section["combos"]) for v in ("helps", "hurts", "no evidence")},
        "top": [_row(c) for c in section["combos"][:10]],
        "bottom": [_row(c) for c in section["combos"][-10:]],
        "methods_marginal": [
            {"method": m["method"], **{k: m["marginal"][k] for k in ("mean", "ci_low", "ci_high")}}
            for m in section["methods"]
        ],
        "size": "full size" if n >= FULL_ROWS else f"{n}-row slice: not a target measurement",
    }
    checks = []
    if n >= FULL_ROWS:
        checks = [check("E tfidf: evaluate wall at full size (s)", wall, 600, False),
                  check("E tfidf: peak RSS of evaluate (MB)", peak / 2**20, 4096, False)]  # fmt: skip
    return {**res, "checks": checks}


def _row(c: dict) -> dict:
    g = c["gain"]
    return {"combo": c["name"], "k": c["k"], "variants_used": c["variants_used"], "macro_f1": c["macro_f1"]["mean"],
            "gain": g["mean"], "ci": [g["ci_low"], g["ci_high"]], "p_holm": g["p_holm"],
            "verdict": c["verdict"]}  # fmt: skip


def e_split(work: Path, rows: int | None) -> dict:
    """Where E-tfidf's time goes: one more 2-worker evaluation of the same run (made by `--only tfidf` first),
    with the seconds each phase took, summed over the workers."""
    run_dir = work / "tfidf"
    wall, peak, out = timed_cli(run_dir, "evaluate", "--label-col", "symptom", "--drop-rare-classes", "--folds", "5",
                                "--features", "tfidf", "--format", "json", "--num-shards", "2", "--out",
                                str(work / "split.json"))  # fmt: skip
    doc = json.loads(out)
    seconds = doc["run_info"]["seconds"]
    busy = sum(v for k, v in seconds.items() if k.startswith("workers_"))
    return {
        "name": "E-split: where evaluate's time goes (E-tfidf's run, 2 workers)",
        "evaluate_wall_s": round(wall, 1),
        "evaluate_peak_rss_mb": round(peak / 2**20),
        "seconds": seconds,
        "share_of_worker_time": {k: round(v / busy, 3) for k, v in seconds.items() if k.startswith("workers_")},
        "checks": [],
    }


def e_embedding(work: Path, rows: int | None) -> dict:
    n = rows or FULL_ROWS
    run_dir = work / "embedding"
    run_dir.mkdir(exist_ok=True)
    csv_path = labelled_input(n, run_dir)
    made = run_dir / "data" / "processed" / "augsets" / "manifest_final.csv"
    run_s = None
    if not made.is_file():
        run_s = augshard(run_dir, "--input", str(csv_path), "--text-col", "text", "--methods", ",".join(CHEAP),
                         "--max-combo-size", "2", "--quality-metric", "embedding", "--keep-vectors",
                         "--num-shards", "2")  # fmt: skip
    wall, peak, out = timed_cli(run_dir, "evaluate", "--label-col", "symptom", "--drop-rare-classes", "--features",
                                "embedding", "--format", "json", "--num-shards", "2")  # fmt: skip
    doc = json.loads(out)
    vectors = doc["run_info"]["vectors"]
    section = doc["results"][0]
    used = sum(c["variants_used"] for c in section["combos"])
    res = {
        "name": "E-embedding: evaluate --features embedding on a --keep-vectors run (3 methods, k <= 2)",
        "input_rows": n,
        "combos": len(section["combos"]),
        "run_s (setup)": round(run_s, 1) if run_s else "reused",
        "evaluate_wall_s": round(wall, 1),
        "evaluate_peak_rss_mb": round(peak / 2**20),
        "vectors": vectors,
        "mean_training_variants_per_split_all_combos": round(used),
        "baseline_macro_f1": section["baseline"]["macro_f1"],
        "top": [_row(c) for c in section["combos"][:6]],
        "where_the_time_goes_s": doc["run_info"]["seconds"],
    }
    checks = [check("E embedding: variants encoded although stored", vectors.get("encoded", 0), 0, False)]
    return {**res, "checks": checks}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=None, help="keep the runs here (reused when present)")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--only", default="tfidf,embedding")
    opts = parser.parse_args()
    work = opts.work or Path(tempfile.mkdtemp(prefix="augshard-bench-E-"))
    work.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    for part in opts.only.split(","):
        res = {"tfidf": e_tfidf, "embedding": e_embedding, "split": e_split}[part](work, opts.rows)
        checks = res.pop("checks")
        print(json.dumps(res, indent=2), flush=True)
        # One results file per part, written as soon as it is measured, with the host it was measured on.
        write_result(f"E-{part}" + (f"-{opts.rows}-rows" if opts.rows else ""), {part: res, "checks": checks})
        for c in checks:
            print(f"{c['check']:<52} {c['value']:>10g}  {c['target']:<12} {'yes' if c['met'] else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
