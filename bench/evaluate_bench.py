"""E: `augshard evaluate` at full size, and what its embedding mode encodes.

    .venv/bin/python bench/evaluate_bench.py [--work DIR] [--rows N] [--only tfidf,embedding,split,confirm]
        [--run DIR]

E-tfidf: the ReDSM5 sentences (2,058, label `symptom`) x every method that runs here, k <= 2, `char_ratio`,
2 shards (the run is made first and timed apart), then `augshard evaluate --features tfidf --folds 5`, timed as
a user would (the CLI in a subprocess), with the peak resident memory of its whole process tree sampled every
0.2 s. Targets at full size: < 10 min on 2 cores, peak RSS < 4 GB. The baseline is the same evaluation with one
worker process, in the same invocation (what the parallel work buys).

E-embedding: a run with the embedding filter and `--keep-vectors` (3 cheap methods, k <= 2, full input), then
`evaluate --features embedding`: every variant's vector must come from the run (none encoded), counted.

E-confirm: the screen-then-confirm design at full size: the ReDSM5 sentences grouped by post (the sentence id
without its last part), `symptom`, `--drop-rare-classes` (2,057 originals), x the 253 combos of a `char_ratio` run
(every method, k <= 2, made first unless `--run DIR` names one: a folder with input.csv text,symptom,post and the
run), `--features tfidf`, screened with 5 folds at train size 1.0, the top 10 confirmed with 5 x 5 fresh splits at
train sizes 0.1, 0.25 and 1.0. Targets: < 15 min on 2 cores, peak RSS < 4 GB; the time by stage, each section's
minimum detectable gain, the confirmed combos' gains and intervals (the learning curve), the rarest classes' gains
and the groups are recorded. The run folder is only read (evaluation.json goes to the work folder).

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


def make_run(run_dir: Path, csv_path: Path, methods: list[str]) -> float:
    """The full plan of a `char_ratio` run (every method given, k <= 2, 2 shards): E-tfidf's and E-confirm's run."""
    return augshard(run_dir, "--input", str(csv_path), "--text-col", "text", "--methods", ",".join(methods),
                    "--max-combo-size", "2", "--quality-metric", "char_ratio", *BOUNDS,
                    "--num-shards", "2")  # fmt: skip


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
        run_s = make_run(run_dir, csv_path, methods)
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


CONFIRM = ("evaluate", "--label-col", "symptom", "--drop-rare-classes", "--group-col", "post", "--folds", "5",
           "--features", "tfidf", "--train-sizes", "0.1,0.25,1.0", "--confirm-top", "10", "--confirm-repeats", "5",
           "--format", "json")  # fmt: skip
RAREST = 3  # classes whose per-class gains are recorded


def post_of(sentence_id: str) -> str:
    """ReDSM5 names a sentence by its post and its place in it: s_1270_9_6 is sentence 6 of post s_1270_9."""
    return sentence_id.rsplit("_", 1)[0]


def grouped_input(rows: int | None, run_dir: Path) -> Path:
    """input.csv (text, symptom, post) from the ReDSM5 sentences: the post is what `--group-col` keeps together."""
    with open(REDSM5, encoding="utf-8", newline="") as fh:
        records = list(csv.DictReader(fh))[: rows or None]
    out = run_dir / "input.csv"
    with open(out, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["text", "symptom", "post"])
        writer.writeheader()
        writer.writerows(
            {"text": r["sentence_text"], "symptom": r["symptom"], "post": post_of(r["sentence_id"])} for r in records
        )
    return out


def e_confirm(work: Path, rows: int | None, run: Path | None = None) -> dict:
    """The run (`--run DIR`, else made in WORK/confirm) is only read: evaluation.json and the cache go to WORK."""
    run_dir = run or work / "confirm"
    run_dir.mkdir(parents=True, exist_ok=True)
    csv_path = run_dir / "input.csv"
    if not csv_path.is_file():
        grouped_input(rows, run_dir)
    run_s = None
    if not (run_dir / "data" / "processed" / "augsets" / "manifest_final.csv").is_file():
        run_s = make_run(run_dir, csv_path, available_methods())
    with open(csv_path, encoding="utf-8", newline="") as fh:
        n = sum(1 for _ in csv.DictReader(fh))
    wall, peak, out = timed_cli(run_dir, *CONFIRM, "--cache-dir", str(work / "cache"), "--out",
                                str(work / "E-confirm.evaluation.json"))  # fmt: skip
    res = confirm_result(json.loads(out), n)
    res |= {"run": str(run_dir), "run_s (setup, not the target)": round(run_s, 1) if run_s else "reused",
            "command": "augshard " + " ".join(CONFIRM), "evaluate_wall_s": round(wall, 1),
            "evaluate_peak_rss_mb": round(peak / 2**20)}  # fmt: skip
    checks = []
    if n >= FULL_ROWS:
        checks = [check("E confirm: screen + confirm wall at full size (s)", wall, 900, False),
                  check("E confirm: peak RSS of evaluate (MB)", peak / 2**20, 4096, False)]  # fmt: skip
    print_confirm(res)
    return {**res, "checks": checks}


def confirm_result(doc: dict, n: int) -> dict:
    """What E-confirm records of a schema-2 evaluation.json with a confirm stage."""
    if not doc.get("confirm"):
        raise RuntimeError("the evaluation has no confirm stage: was --confirm-top ignored?")
    protocol = doc["protocol"]
    screen = [s for s in doc["results"] if s["stage"] == "screen"]
    return {
        "name": "E-confirm: screen every combo with 5 folds, confirm the top 10 with 5 x 5 splits (ReDSM5 by post)",
        "input_rows": n,
        "size": "full size" if n >= FULL_ROWS else f"{n}-row slice: not a target measurement",
        "groups": {
            k: protocol.get(k)
            for k in (
                "originals",
                "groups",
                "joined",
                "blank_group_rows",
                "group_col",
                "group_near",
                "dropped_classes",
                "class_counts",
            )
        },  # fmt: skip
        "design": {
            k: protocol.get(k) for k in ("design", "confirm", "folds", "train_sizes", "interval", "adjustment")
        },  # fmt: skip
        "seconds_by_stage": doc["run_info"]["seconds"],
        "min_detectable_gain": power_table(doc),
        "screen": [_screen(s) for s in screen],
        "confirmed": confirmed(doc),
        "learning_curve": learning_curve(doc),
        "rarest_classes": rarest_classes(doc),
    }


def _size(size: float) -> str:
    """A train size as a key a docs placeholder can name (no dot in it): 0.25 -> '25%'."""
    return f"{size * 100:g}%"


def _gain(g: dict) -> dict:
    return {"mean": g["mean"], "ci": [g["ci_low"], g["ci_high"]], "p_value": g["p_value"],
            **({"p_holm": g["p_holm"]} if "p_holm" in g else {})}  # fmt: skip


def power_table(doc: dict) -> list[dict]:
    """Each section's minimum detectable gain (screen, then confirm at each size) and what it rests on."""
    keys = ("comparisons", "spread", "test_over_train", "reaches_target", "to_reach_target")
    return [
        {
            "stage": s["stage"],
            "features": s["features"],
            "train_size": s["train_size"],
            "splits": s["splits"],
            "combos": len(s["combos"]),
            "min_detectable_gain": s["min_detectable_gain"],
            **{k: (s.get("power") or {}).get(k) for k in keys},
        }  # fmt: skip
        for s in [*doc["results"], *sorted(doc["confirm"]["results"], key=lambda s: (s["features"], s["train_size"]))]
    ]


def _screen(section: dict) -> dict:
    return {"features": section["features"], "train_size": section["train_size"], "splits": section["splits"],
            "combos": len(section["combos"]), "baseline_macro_f1": section["baseline"]["macro_f1"],
            "top": [_row(c) for c in section["combos"][:10]]}  # fmt: skip


def _confirm_sections(doc: dict) -> list[dict]:
    """The confirm stage's sections for the features it ranked by, smallest train size first."""
    ranked_by = (doc["protocol"].get("confirm") or {}).get("ranked_by", {}).get("features")
    sections = [s for s in doc["confirm"]["results"] if ranked_by in (None, s["features"])]
    return sorted(sections, key=lambda s: s["train_size"])


def confirmed(doc: dict) -> list[dict]:
    """The confirmed combos in screen rank order, each with its gain, interval and verdict at every train size."""
    sections = _confirm_sections(doc)
    out = []
    for combo_id in doc["confirm"]["combos"]:
        rows = {_size(s["train_size"]): next(r for r in s["combos"] if r["combo_id"] == combo_id) for s in sections}
        first = next(iter(rows.values()))
        by_size = {size: {"macro_f1": r["macro_f1"]["mean"], "gain": _gain(r["gain"]), "verdict": r["verdict"]}
                   for size, r in rows.items()}  # fmt: skip
        out.append({"screen_rank": first["screen_rank"], "combo_id": combo_id, "name": first["name"],
                    "k": first["k"], "by_size": by_size})  # fmt: skip
    return out


def learning_curve(doc: dict) -> dict:
    """Per train size: the baseline's macro-F1, the design's minimum detectable gain and each confirmed combo's
    mean gain (screen rank order)."""
    curve = {}
    for s in _confirm_sections(doc):
        gains = {r["combo_id"]: r["gain"]["mean"] for r in s["combos"]}
        curve[_size(s["train_size"])] = {
            "train_size": s["train_size"], "splits": s["splits"], "train_originals": s["baseline"]["train_originals"],
            "baseline_macro_f1": s["baseline"]["macro_f1"], "min_detectable_gain": s["min_detectable_gain"],
            "gains": [gains[c] for c in doc["confirm"]["combos"]],
        }  # fmt: skip
    return curve


def rarest_classes(doc: dict) -> dict:
    """The RAREST classes with the fewest originals: each confirmed combo's F1 gain on them at the largest size."""
    counts = doc["protocol"]["class_counts"]
    rarest = sorted(counts, key=lambda c: (counts[c], c))[:RAREST]
    full = _confirm_sections(doc)[-1]
    rows = {r["combo_id"]: r for r in full["combos"]}
    return {
        c: {"originals": counts[c], "train_size": full["train_size"],
            "baseline_f1": full["baseline"]["per_class"][c]["mean"],
            "gains": [{"name": rows[i]["name"], **_gain(rows[i]["per_class"][c])} for i in doc["confirm"]["combos"]]}
        for c in rarest
    }  # fmt: skip


def print_confirm(res: dict) -> None:
    """A few lines a person reads; the results file has everything."""
    g = res["groups"]
    print(f"{res['name']}\n{res['size']}: {g['originals']} originals in {g['groups']} groups (joined: {g['joined']}), "
          f"wall {res['evaluate_wall_s']} s, peak RSS {res['evaluate_peak_rss_mb']} MB")  # fmt: skip
    print(
        "seconds: " + ", ".join(f"{k} {v:g}" for k, v in res["seconds_by_stage"].items() if isinstance(v, int | float))
    )
    for p in res["min_detectable_gain"]:
        mdg = "n/a" if p["min_detectable_gain"] is None else f"{p['min_detectable_gain']:.3f}"
        print(f"  {p['stage']:<8} {p['features']} size {p['train_size']:g}: {p['splits']} splits, "
              f"{p['comparisons']} comparisons -> min detectable gain {mdg}")  # fmt: skip
    curve = res["learning_curve"]
    print("baseline macro-F1: " + ", ".join(f"{k} {v['baseline_macro_f1']['mean']:.3f}" for k, v in curve.items()))
    for c in res["confirmed"]:
        cells = [f"{size} {_shown(v['gain'])} {v['verdict']}" for size, v in c["by_size"].items()]
        print(f"  #{c['screen_rank']:<3} {c['name']:<44} " + " | ".join(cells))
    for cls, v in res["rarest_classes"].items():
        best = max(v["gains"], key=lambda x: x["mean"])
        print(f"  rare class {cls} ({v['originals']} originals, baseline F1 {v['baseline_f1']:.3f}): best gain "
              f"{_shown(best)} ({best['name']})")  # fmt: skip


def _shown(gain: dict) -> str:
    return f"{gain['mean']:+.3f} [{gain['ci'][0]:+.3f}, {gain['ci'][1]:+.3f}]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=None, help="keep the runs here (reused when present)")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--only", default="tfidf,embedding")
    parser.add_argument(
        "--run", type=Path, default=None, help="E-confirm: an existing run (input.csv text,symptom,post)"
    )
    opts = parser.parse_args()
    work = opts.work or Path(tempfile.mkdtemp(prefix="augshard-bench-E-"))
    work.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    for part in opts.only.split(","):
        if part == "confirm":
            res = e_confirm(work, opts.rows, opts.run)  # prints its own summary: the file holds the whole result
        else:
            res = {"tfidf": e_tfidf, "embedding": e_embedding, "split": e_split}[part](work, opts.rows)
            print(json.dumps(res, indent=2), flush=True)
        checks = res.pop("checks")
        # One results file per part, written as soon as it is measured, with the host it was measured on.
        write_result(f"E-{part}" + (f"-{opts.rows}-rows" if opts.rows else ""), {part: res, "checks": checks})
        for c in checks:
            print(f"{c['check']:<52} {c['value']:>10g}  {c['target']:<12} {'yes' if c['met'] else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
