"""augshard benchmarks: each runs augshard and its baseline in the same invocation and prints the ratio.

    .venv/bin/python bench/run.py [--only B1,B2,B4,B5,W,B3,B6,B7] [--rows N] [--b6 char_ratio,embedding,...]

Data: ../shared/data/redsm5/sentences.csv when present, else the shipped sample. Results: bench/results/*.json,
and a table of every target at the end. Not part of the tests; this host's speed drifts, so compare ratios from
one invocation, not across runs.
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


def shard_events(cwd: Path, event: str) -> list:
    """`event` records of the run in `cwd`, by augshard's own reader (it skips a line still being written)."""
    from augshard.events import read_events  # installed in the venv `make bench` runs in

    paths = sorted((cwd / "logs" / "augment").glob("*.events.jsonl"))
    return [e for path in paths for e in read_events(path) if e.kind == event]


def check(label: str, value: float, target: float, higher_is_better: bool = True, unit: str = "") -> dict:
    met = value >= target if higher_is_better else value <= target
    sign = ">=" if higher_is_better else "<="
    return {"check": label, "value": round(value, 3), "target": f"{sign} {target:g}{unit}", "met": met}


def bare_loop(csv_path: Path, methods: list[str], variants: int, attempts: int) -> float:
    """The same augmenters and seeding as augshard's single-method combos, in a plain loop (no shards, no cache,
    no Parquet, no events), filter `none`: what orchestration costs is the difference."""
    code = f"""
import csv, time, sys
sys.path.insert(0, {str(REPO)!r})
from augshard.methods.offline import apply_offline_env
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
            "target": ">= 0.8 (bare loop process time / augshard run time, 1 shard, filter none)",
            "checks": [check("B1 bare loop / augshard", loop / wall, 0.8)]}  # fmt: skip


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
            "cold_over_cached": cold / cached, "target": "all complete <= 3 s; cold/cached >= 10",
            "checks": [check("B4 rerun, all complete (s)", warm, 3, higher_is_better=False),
                       check("B4 cold / datasets deleted, caches kept", cold / cached, 10)]}  # fmt: skip


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
    scaling = out["augshard_1_shards_s"] / out["augshard_2_shards_s"]
    out["B3_scaling_2_over_1_shards"] = scaling
    out["checks"] = [check("W speed-up vs the original (805 s)", out["speedup_vs_original"], 5),
                     check("W identical output, 1 vs 2 shards", float(out["same_output_1_vs_2_shards"]), 1),
                     check("B3 scaling, 2 shards vs 1 (W)", scaling, 1.8)]  # fmt: skip
    return out


def b2(work: Path, rows: int | None) -> dict:
    """The embedding filter as augshard runs it (cache, dedupe, originals once) against plain
    SentenceTransformer.encode of exactly the texts the filter encoded, same model object, same batch size."""
    csv_path, col = data(rows or 300, work)
    code = f"""
import json, sys, time
sys.path.insert(0, {str(REPO)!r})
from augshard.methods.offline import apply_offline_env
apply_offline_env()
from augshard.procs import cap_threads
cap_threads(1)
from augshard.cache import Cache
from augshard.combos import Combo
from augshard.config import load_config
from augshard.data import load_dataset
from augshard.methods import LazyMethod, load_catalogue
from augshard.pipeline import run_combo
from augshard.quality import CachedScorer, EmbeddingScorer
cfg = load_config(None, {{"input": {str(csv_path)!r}, "text_col": {col!r}, "quality_metric": "embedding", "seed": 42}})
ds = load_dataset(cfg.input, cfg.text_col, None, None)
specs = load_catalogue({str(REPO / "conf" / "augment_methods.yaml")!r})
ids = ["nlp_keyboard", "nlp_randword_delete", "nlp_wordnet_syn"]
methods = {{m: LazyMethod(specs[m]) for m in ids}}
combos = [Combo((m,)) for m in ids] + [Combo((a, b)) for i, a in enumerate(ids) for b in ids[i + 1:]]
cache = Cache({str(work / "b2.db")!r})
inner = EmbeddingScorer(None, cfg.embedding_batch_size, cache)
encoded = []
plain = inner._encode
def recording(texts):
    encoded.append(list(texts))
    return plain(texts)
inner._encode = recording
model = inner.model
model.encode(["warm up the model"] * 64, batch_size=cfg.embedding_batch_size)
scorer = CachedScorer(inner, cache)
for combo in combos:
    run_combo(combo, ds, methods, scorer, cache, cfg, lambda records: None)
t0 = time.perf_counter()
for texts in encoded:
    model.encode(texts, batch_size=cfg.embedding_batch_size, normalize_embeddings=True, convert_to_numpy=True,
                 show_progress_bar=False)
raw = time.perf_counter() - t0
print(json.dumps({{"filter_s": scorer.seconds, "raw_encode_s": raw, "pairs_scored": scorer.hits + scorer.misses,
                  "texts_encoded": sum(map(len, encoded)), "encode_calls": len(encoded),
                  "originals_encoded": inner.originals_encoded, "candidates_encoded": inner.candidates_encoded,
                  "unique_originals": len({{r.evidence for r in ds.rows}}), "combos": len(combos),
                  "input_rows": len(ds.rows)}}))
"""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    overhead = out["filter_s"] / out["raw_encode_s"] - 1
    out.update(name="B2 filter overhead", overhead=overhead,
               originals_encoded_once=out["originals_encoded"] == out["unique_originals"],
               target="filter time <= 1.10 x raw encode of the same texts; originals encoded once per shard",
               checks=[check("B2 filter overhead vs raw encode", overhead, 0.10, higher_is_better=False),
                       check("B2 originals encoded once", float(out["originals_encoded"] == out["unique_originals"]),
                             1)])  # fmt: skip
    return out


def b5(work: Path, rows: int | None) -> dict:
    """Peak RSS of one shard with MiniLM loaded, at 10k and 100k input rows (ReDSM5 sentences, repeated and
    numbered). Both runs are stopped (SIGTERM, the supported stop) once the shard has streamed the same 10
    chunks, and the shard's peak RSS (VmHWM) is read just before: everything that grows with the input happens
    before the first chunk, and a chunk's memory is freed before the next one."""
    import signal

    src, col = data(None, work)
    with open(src, encoding="utf-8", newline="") as fh:
        sentences = [r[col] for r in csv.DictReader(fh)]
    out: dict = {"name": "B5 memory"}
    stop_after = 10 * 256
    for n in (10_000, 100_000):
        path = work / f"rows{n}.csv"
        with open(path, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["id", "text"])
            writer.writerows([f"r{i}", f"{sentences[i % len(sentences)]} ({i})"] for i in range(n))
        cwd = work / f"b5_{n}"
        cwd.mkdir()
        args = ["--input", str(path), "--text-col", "text", "--methods", "nlp_randchar_swap", "--combo-mode", "single",
                "--quality-metric", "embedding", "--num-shards", "1"]  # fmt: skip
        proc = subprocess.Popen([sys.executable, "-m", "augshard", "run", "--no-live", *args], cwd=cwd,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        t0 = time.perf_counter()
        peak = 0
        while proc.poll() is None:
            started = shard_events(cwd, "shard_start") if (cwd / "logs").is_dir() else []
            if started:
                # VmHWM: the shard process's peak resident memory so far, read by the kernel's own accounting.
                with open(f"/proc/{started[-1]['pid']}/status", encoding="ascii") as fh:
                    peak = next(int(line.split()[1]) // 1024 for line in fh if line.startswith("VmHWM"))
            done = [e.rows_done for e in shard_events(cwd, "progress")] if started else []
            if done and max(done) >= stop_after:
                proc.send_signal(signal.SIGTERM)
                break
            time.sleep(0.5)
        proc.wait(timeout=120)
        out[f"peak_rss_mb_{n}"] = peak
        out[f"seconds_{n}"] = time.perf_counter() - t0
    out["growth_10k_to_100k"] = out["peak_rss_mb_100000"] / out["peak_rss_mb_10000"]
    out["target"] = "peak RSS per shard <= 1,500 MB with MiniLM loaded; <= 1.2x from 10k to 100k rows"
    out["checks"] = [
        check("B5 peak RSS at 100k rows (MB)", out["peak_rss_mb_100000"], 1500, higher_is_better=False),
        check("B5 RSS growth 10k -> 100k rows", out["growth_10k_to_100k"], 1.2, higher_is_better=False),
    ]
    return out


def available_methods() -> list[str]:
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
            "from augshard.methods import check_methods, load_catalogue, method_check_record\n"
            "from augshard.methods.offline import apply_offline_env\n"
            f"apply_offline_env(); specs = load_catalogue({str(REPO / 'conf' / 'augment_methods.yaml')!r})\n"
            "st = check_methods(list(specs.values()), method_check_record())\n"
            "print(','.join(m for m in specs if st[m].ok))")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return proc.stdout.strip().splitlines()[-1].split(",")


def b6(work: Path, rows: int | None) -> dict:
    """Every available catalogue method, k <= 2, 2 shards, calibrated costs; char_ratio, then embedding.
    On this 2-core machine a full-size run takes hours with `embedding`, so the default is a slice of the
    sentences (--rows overrides) and the full-size wall time is extrapolated linearly (the work is per row)."""
    methods = available_methods()
    full = 2058
    out: dict = {"name": "B6 end to end", "methods": len(methods)}
    costs = work / "costs.json"
    subprocess.run([sys.executable, "-m", "augshard", "methods", "--bench", "--rows", "30", "--out", str(costs)],
                   cwd=work, capture_output=True, check=True)  # fmt: skip
    checks = []
    for metric, backend, default_rows, limit_s in B6_VARIANTS:
        n = rows or default_rows
        label = metric if backend == "torch" else f"{metric}_{backend}"
        if B6_ONLY and label not in B6_ONLY:
            continue
        (work / label).mkdir()
        csv_path, col = data(n, work / label)
        cwd = work / label / "run"
        cwd.mkdir()
        wall = augshard(cwd, "--input", str(csv_path), "--text-col", col, "--methods", ",".join(methods),
                        "--max-combo-size", "2", "--quality-metric", metric, "--embedding-backend", backend,
                        "--num-shards", "2", "--calibrate", str(costs))  # fmt: skip
        with open(cwd / "data/processed/augsets/manifest_final.csv", encoding="utf-8", newline="") as fh:
            manifest = list(csv.DictReader(fh))
        busy = [sum(float(r["duration_s"]) for r in manifest if r["shard"] == str(i)) for i in range(2)]
        generated = sum(int(r["rows"]) for r in manifest)
        done = shard_events(cwd, "shard_done")
        encodes = sum(e.filter.get("originals_encoded", 0) + e.filter.get("candidates_encoded", 0) for e in done)
        encode_s = sum(e.filter.get("encode_s", 0.0) for e in done)
        scale = full / n
        out[label] = {"input_rows": n, "combos": len(manifest), "failed": sum(r["status"] != "ok" for r in manifest),
                       "wall_s": wall, "rows_generated": generated, "rows_per_s": generated / wall,
                       "busy_s": busy, "busy_max_over_mean": max(busy) / (sum(busy) / 2),
                       "embeddings": encodes, "embeddings_per_s_wall": encodes / wall,
                       "embeddings_per_s_encoding": encodes / encode_s if encode_s else None,
                       "full_2058_rows_estimate_s": wall * scale}  # fmt: skip
        checks.append(check(f"B6 {label}: est. wall for 2,058 rows (s)", wall * scale, limit_s, False))
        if metric == "char_ratio":
            checks.append(check("B3 busy max/mean, full plan, calibrated", max(busy) / (sum(busy) / 2), 1.15, False))
    out["target"] = "2,058 sentences x every method x k <= 2 on 2 shards: char_ratio < 10 min, embedding < 60 min"
    out["checks"] = checks
    return out


def b3(work: Path, rows: int | None) -> dict:
    """Scaling on the full plan (every available method, k <= 2, char_ratio, calibrated costs): 1 shard vs 2
    shards on this 2-core machine, same input. (W reports the same ratio on the original tool's 21 combos.)"""
    methods = available_methods()
    costs = work / "costs.json"
    subprocess.run([sys.executable, "-m", "augshard", "methods", "--bench", "--rows", "30", "--out", str(costs)],
                   cwd=work, capture_output=True, check=True)  # fmt: skip
    csv_path, col = data(rows or 200, work)
    out: dict = {"name": "B3 scaling, full plan", "methods": len(methods), "input_rows": rows or 200}
    datasets = {}
    for shards in (2, 1):
        cwd = work / f"s{shards}"
        cwd.mkdir()
        out[f"wall_{shards}_shards_s"] = augshard(
            cwd, "--input", str(csv_path), "--text-col", col, "--methods", ",".join(methods), "--max-combo-size", "2",
            "--quality-metric", "char_ratio", "--num-shards", str(shards), "--calibrate", str(costs),
        )  # fmt: skip
        datasets[shards] = {p.parent.name: p.read_bytes() for p in cwd.glob("data/processed/augsets/combo_*/*.parquet")}
    out["scaling_2_over_1_shards"] = out["wall_1_shards_s"] / out["wall_2_shards_s"]
    out["same_output_1_vs_2_shards"] = datasets[1] == datasets[2]
    out["target"] = ">= 1.8x with 2 shards on 2 cores"
    out["checks"] = [
        check("B3 scaling, 2 shards vs 1 (full plan)", out["scaling_2_over_1_shards"], 1.8),
        check("B3 identical output, 1 vs 2 shards", float(out["same_output_1_vs_2_shards"]), 1),
    ]
    return out


B6_VARIANTS = (("char_ratio", "torch", 200, 600), ("embedding", "torch", 40, 3600), ("embedding", "onnx", 40, 3600))
B6_ONLY: set[str] = set()  # --b6: run only these variants (char_ratio, embedding, embedding_onnx)


def b7(work: Path, rows: int | None) -> dict:
    from b7_textattack import run as textattack_vs_augshard

    csv_path, col = data(rows or 500, work)
    out = textattack_vs_augshard(work, csv_path, col)
    out["checks"] = [check("B7 rows/s vs textattack augment", out["rows_per_s_ratio"], 1.0)]
    return out


BENCHES = {"B1": b1, "B2": b2, "B4": b4, "B5": b5, "W": w, "B3": b3, "B6": b6, "B7": b7}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(BENCHES))
    parser.add_argument("--rows", type=int, default=None, help="input rows (default: each benchmark's own)")
    parser.add_argument("--b6", default="", help="B6 variants to run: char_ratio,embedding,embedding_onnx (all)")
    opts = parser.parse_args()
    B6_ONLY.update(v for v in opts.b6.split(",") if v)
    RESULTS.mkdir(parents=True, exist_ok=True)
    random.seed(0)
    checks = []
    for key in opts.only.split(","):
        with tempfile.TemporaryDirectory(prefix=f"augshard-bench-{key}-") as tmp:
            result = BENCHES[key](Path(tmp), opts.rows)
        result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
        result["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        name = f"{key}-{'+'.join(sorted(B6_ONLY))}" if key == "B6" and B6_ONLY else key
        (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(json.dumps(result, indent=2), flush=True)
        checks += result.get("checks", [])
    print(f"\n{'benchmark':<48} {'measured':>10}  {'target':<12} met")
    for c in checks:
        print(f"{c['check']:<48} {c['value']:>10g}  {c['target']:<12} {'yes' if c['met'] else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
