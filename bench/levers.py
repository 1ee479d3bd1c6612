"""L: the exact speed levers of issue 21's last round, each measured A/B in one process on the same inputs, with
the outputs compared (a lever that changed one output would not be a speed lever).

1. The char_ratio filter's ratio: the standard library's `difflib.SequenceMatcher` against cydifflib's (the same
   algorithm compiled), on real candidates: W's six methods applied to every ReDSM5 sentence (two seeds each),
   lowercased as the filter does. Every ratio must be equal, unrounded.
2. TextAttack's word splits: `ta_wordswap_qwerty` (W's TextAttack method) on every sentence, two seeds, with
   TextAttack's own `words_from_text` and with augshard's remembered one. Every output must be equal.

3. Not a lever but the profile of what is left of W's start-up: the modules a cold W run's forkserver imports
   before any shard starts (the common ones, then each method's library and what its build reads, in the order
   `supervisor.shard_imports` lists them), each timed in one fresh interpreter.

Each side of 1 and 2 runs twice, alternating (A B A B), so a drift of the host's speed shows as a spread; the
ratio is of the faster of each side's two runs.

    .venv/bin/python bench/run.py --only L
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from common import REPO, W_METHODS, check, data

CODE = """
import csv, json, sys, time
sys.path.insert(0, {repo!r})
from augshard.methods.offline import apply_offline_env
apply_offline_env()
import difflib
import cydifflib
from augshard.methods import build_method, load_catalogue
from augshard.shard.pipeline import call_seed
from augshard.storage.data import read_table, row_keys

specs = load_catalogue({catalogue!r})
table = read_table({csv_path!r})
texts = table.column("text").to_pylist()
keys = row_keys(table, None, "bench")
methods = {{m: build_method(specs[m]) for m in {methods!r}}}
out = {{"sentences": len(texts)}}

# 1. the ratio, on the methods' real candidates
pairs = []
for m, method in methods.items():
    for attempt in (0, 1):
        made = method.augment(texts, [call_seed(42, (m,), k, attempt) for k in keys])
        pairs += [(t.lower(), c.lower()) for t, c in zip(texts, made) if isinstance(c, str)]
def ratios(matcher):
    t0 = time.perf_counter()
    got = [matcher(None, a, b).ratio() for a, b in pairs]
    return time.perf_counter() - t0, got
times = {{"difflib": [], "cydifflib": []}}
for _ in range(2):
    for name, matcher in (("difflib", difflib.SequenceMatcher), ("cydifflib", cydifflib.SequenceMatcher)):
        s, got = ratios(matcher)
        times[name].append(s)
        if name == "difflib":
            reference = got
        else:
            differ = sum(x != y for x, y in zip(reference, got))
out["ratio"] = {{"pairs": len(pairs), "differ": differ, "difflib_s": times["difflib"],
                 "cydifflib_s": times["cydifflib"],
                 "speedup": min(times["difflib"]) / min(times["cydifflib"])}}

# 2. TextAttack's word splits, stock and remembered
from textattack.shared import attacked_text
from textattack.shared.utils import words_from_text as stock
from augshard.methods.textattack_adapter import remember_words
ta = methods["ta_wordswap_qwerty"]
seeds = [call_seed(42, ("ta_wordswap_qwerty",), k, a) for a in (0, 1) for k in keys]
inputs = texts + texts
times = {{"stock": [], "remembered": []}}
outputs = {{}}
for _ in range(2):
    for name in ("stock", "remembered"):
        attacked_text.words_from_text = stock
        if name == "remembered":
            remember_words()  # a fresh memory each time: nothing carried over from the previous run
        t0 = time.perf_counter()
        outputs[name] = ta.augment(inputs, seeds)
        times[name].append(time.perf_counter() - t0)
changed = sum(o != t for o, t in zip(outputs["stock"], inputs))
out["words"] = {{"calls": len(inputs), "changed": changed,
                 "differ": sum(a != b for a, b in zip(outputs["stock"], outputs["remembered"])),
                 "stock_s": times["stock"], "remembered_s": times["remembered"],
                 "speedup": min(times["stock"]) / min(times["remembered"])}}
print(json.dumps(out))
"""


IMPORTS = """
import json, sys, time
t0 = time.perf_counter()
sys.path.insert(0, {repo!r})
from augshard.methods.offline import apply_offline_env
apply_offline_env()
from augshard.methods import load_catalogue
from augshard.methods.imports import import_module
from augshard.methods.registry import family
from augshard.runner.forkserver import SHARD_MODULES
specs = load_catalogue({catalogue!r})
modules = list(SHARD_MODULES)  # then each method's, as supervisor.shard_imports lists them for a cold run
for m in {methods!r}:
    modules += family(specs[m].lib, specs[m].kind).modules
before = time.perf_counter() - t0
seconds = {{}}
for name in dict.fromkeys(modules):
    t = time.perf_counter()
    import_module(name)
    seconds[name] = round(time.perf_counter() - t, 3)
by_library = {{}}
for name, s in seconds.items():
    lib = name.split(".")[0] if name.split(".")[0] in ("textattack", "nlpaug") else "common"
    by_library[lib] = round(by_library.get(lib, 0.0) + s, 3)
print(json.dumps({{"modules": [{{"module": k, "s": v}} for k, v in seconds.items()], "by_library_s": by_library,
                  "augshard_and_catalogue_s": round(before, 3), "total_s": round(time.perf_counter() - t0, 3)}}))
"""


def _python(code: str) -> dict:
    env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"the levers' process failed: {proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def levers(work: Path, rows: int | None) -> dict:
    csv_path, col = data(rows, work)
    assert col == "text"
    code = CODE.format(repo=str(REPO), catalogue=str(REPO / "conf" / "augment_methods.yaml"), csv_path=str(csv_path),
                       methods=W_METHODS)  # fmt: skip
    out = {"name": "L this round's exact levers", **_python(code)}
    out["w_forkserver_imports"] = _python(
        IMPORTS.format(repo=str(REPO), catalogue=str(REPO / "conf" / "augment_methods.yaml"), methods=W_METHODS)
    )
    out["target"] = "identical outputs (0 differ); speed-ups reported"
    out["checks"] = [
        check("L ratio: pairs whose ratio differs (must be 0)", out["ratio"]["differ"], 0, higher_is_better=False),
        check("L words: outputs that differ (must be 0)", out["words"]["differ"], 0, higher_is_better=False),
    ]
    return out
