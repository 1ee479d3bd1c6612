"""What every benchmark shares: the data, running augshard as a user would, its events, checks, the host block."""

from __future__ import annotations

import csv
import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REDSM5 = REPO.parent / "shared" / "data" / "redsm5" / "sentences.csv"
RESULTS = REPO / "bench" / "results"
CHEAP = ["nlp_keyboard", "nlp_randchar_swap", "nlp_randword_delete"]
# The original tool's workload W (shared/ANCHORS.md): 6 methods, k <= 2 -> 21 combos, 2 variants, difflib filter.
# The char_ratio runs keep the range they were first measured with (the original tool's W invocation), not
# char_ratio's default [0.40, 0.98], so their figures stay comparable from one results file to the next.
BOUNDS = ("--quality-min-sim", "0.55", "--quality-max-sim", "0.95")
W_METHODS = ["nlp_keyboard", "nlp_ocr", "nlp_randchar_del", "nlp_randword_delete", "nlp_spelling", "ta_wordswap_qwerty"]


# The libraries whose versions a figure depends on (read from the installed metadata: nothing is imported).
LIBRARIES = ("augshard", "torch", "onnxruntime", "sentence-transformers", "nlpaug", "textattack", "pyarrow", "numpy",
             "scikit-learn")  # fmt: skip
# The vector instruction sets that move an encoder's speed, as /proc/cpuinfo names them.
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")


def host() -> dict:
    """Where and from what a figure was measured: commit (and whether the tree differed from it), date, CPU model,
    its vector instruction sets, cores, memory, python and the libraries' versions. Every results file carries it."""
    model, flags, mem_kb = "", set(), 0
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
        mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines()
                      if line.startswith("MemTotal:"))  # fmt: skip
    except (OSError, StopIteration, ValueError):
        pass
    return {
        **_commit(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cpu": model or platform.processor() or "unknown",
        "cpu_flags": [f for f in CPU_FLAGS if f in flags],
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 2**20, 1) if mem_kb else None,
        "python": platform.python_version(),
        "versions": {name: _version(name) for name in LIBRARIES},
        "python_speed_mops": python_speed(),
    }


def python_speed() -> float:
    """Millions of simple interpreter steps per second (median of 5 short loops) when the file is written: hosts of
    one CPU model ran the same pure-Python work 2x apart on different days, so a file says how fast its host was."""
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i & 7
        runs.append(1.0 / (time.perf_counter() - t0))
    return round(sorted(runs)[2], 2)


def _commit() -> dict:
    """HEAD and whether tracked files differ from it (results files excepted: a bench run writes them)."""

    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return proc.stdout.rstrip("\n") if proc.returncode == 0 else ""  # a status line starts with a space

    commit = git("rev-parse", "--short", "HEAD").strip()
    if not commit:
        return {"commit": None, "dirty": None}
    changed = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no").splitlines()]
    return {"commit": commit, "dirty": any(not path.startswith("bench/results/") for path in changed)}


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def write_result(name: str, result: dict, results: Path = RESULTS) -> Path:
    """`results/<name>.json`: the result with the host it was measured on, written whole (temp file, then renamed)
    so that a bench stopped half-way leaves the previous file, never half of one."""
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{name}.json"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({"host": host(), **result}, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


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


LAST_RUN: dict[str, float] = {}  # epoch seconds at which the last `augshard` run was launched and ended


def augshard(cwd: Path, *args: str) -> float:
    t0 = time.perf_counter()
    LAST_RUN["launched"] = time.time()
    proc = subprocess.run([sys.executable, "-m", "augshard", "run", "--no-live", *args], cwd=cwd, capture_output=True,
                          text=True)  # fmt: skip
    LAST_RUN["ended"] = time.time()
    if proc.returncode != 0:
        raise RuntimeError(f"augshard run failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return time.perf_counter() - t0


def start_split(cwd: Path) -> dict[str, float]:
    """The last run's fixed costs from its events' clocks: launch to the first shard's start (Python, the CLI, its
    checks and plan, the forkserver's imports), a shard's start to its first combo, and the last shard's end to the
    run's end (the merge)."""
    starts = [e.ts for e in shard_events(cwd, "shard_start")]
    combos = [e.ts for e in shard_events(cwd, "combo_start")]
    ends = [e.ts for e in shard_events(cwd, "shard_done")]
    return {
        "launch_to_first_shard_s": round(min(starts) - LAST_RUN["launched"], 3),
        "shard_start_to_first_combo_s": round(min(combos) - min(starts), 3),
        "last_shard_done_to_end_s": round(LAST_RUN["ended"] - max(ends), 3),
    }


def manifest(cwd: Path) -> list:
    """The merged manifest of the run in `cwd`, by augshard's own reader (typed rows: rows, status, duration_s…)."""
    from augshard.storage.manifest import read_manifest  # installed in the venv `make bench` runs in

    return read_manifest(cwd / "data" / "processed" / "augsets" / "manifest_final.csv")


def busy_by_shard(cwd: Path) -> dict[int, float]:
    """Seconds each shard spent inside combos (the manifest's durations): the rest of a run's wall time is fixed
    cost (the supervisor, process start) that more shards do not divide."""
    busy: dict[int, float] = {}
    for o in manifest(cwd):
        busy[o.shard] = busy.get(o.shard, 0.0) + o.duration_s
    return busy


def shard_events(cwd: Path, event: str) -> list:
    """`event` records of the run in `cwd`, by augshard's own reader (it skips a line still being written)."""
    from augshard.events.stream import read_events  # installed in the venv `make bench` runs in

    paths = sorted((cwd / "logs" / "augment").glob("*.events.jsonl"))
    return [e for path in paths for e in read_events(path) if e.kind == event]


def check(label: str, value: float, target: float, higher_is_better: bool = True, unit: str = "") -> dict:
    met = value >= target if higher_is_better else value <= target
    sign = ">=" if higher_is_better else "<="
    return {"check": label, "value": round(value, 3), "target": f"{sign} {target:g}{unit}", "met": met}
