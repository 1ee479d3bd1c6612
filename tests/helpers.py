"""Helpers for tests: run the `augshard` CLI as a user would, on small real files."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "augshard" / "sample" / "reviews.csv"

# Flags of a quick one-method run over sample-shaped rows (id, label, text, evidence).
CHEAP_RUN_ARGS = ("--text-col", "text", "--evidence-col", "evidence", "--id-col", "id", "--methods", "nlp_keyboard",
                  "--quality-metric", "char_ratio", "--num-shards", "1")  # fmt: skip


# Every variable offline_env() sets.
OFFLINE_KEYS = (
    "NLTK_DATA",
    "TA_CACHE_DIR",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "TOKENIZERS_PARALLELISM",
    "PYTHONHASHSEED",
    "HF_HUB_CACHE",
)


def with_flag(flag: str, value: str) -> list[str]:
    """CHEAP_RUN_ARGS with one flag set to `value` (replaced if present, else added)."""
    args = list(CHEAP_RUN_ARGS)
    if flag in args:
        args[args.index(flag) + 1] = value
    else:
        args += [flag, value]
    return args


API_METHODS = ["nlp_keyboard", "nlp_randchar_swap"]  # 3 combos: two singles and their pair


def api_settings(root: Path) -> dict:
    """The keyword settings of a small API run under `root` (its input: `root/in.csv`), as the API tests use them."""
    return dict(input=str(root / "in.csv"), text_col="text", id_col="id", methods=API_METHODS,
                quality_metric="char_ratio", num_shards=2, output_root=str(root / "out"), cache_dir=str(root / "cache"),
                log_dir=str(root / "logs"))  # fmt: skip


def run_cli(*args: str, cwd: Path, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m augshard ARGS` in `cwd`, capturing its output."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "augshard", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
        env=full_env,
    )  # fmt: skip


def sample_rows(n: int) -> list[dict[str, str]]:
    with open(SAMPLE, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))[:n]


def write_csv(path: Path, rows: list[dict[str, str]], fieldnames: list[str] | None = None) -> Path:
    fieldnames = fieldnames or list(rows[0])
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)
    return path


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def run_events(cwd: Path, event: str) -> list:
    """The `event` records of every shard's stream in cwd's default log dir, read by augshard's own reader."""
    from augshard.events.stream import read_events

    paths = sorted((cwd / "logs/augment").glob("*.events.jsonl"))
    return [e for path in paths for e in read_events(path) if e.kind == event]


def fake_complete_nltk(root: Path) -> Path:
    """Every file missing_nltk() looks for, with placeholder content (not loadable by nltk)."""
    from augshard.methods.offline import REQUIRED_FILES

    for name, files in REQUIRED_FILES.items():
        for f in files:
            path = root / name / f
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("x\n")
    return root


def make_meta(combo: Any, fingerprint: str, rows: int = 3, **fields: Any) -> Any:
    """A complete `meta.json` record for `combo` (a `Combo`), as a shard writes one, with made-up counts."""
    from augshard.storage.meta import ComboMeta, QualityMeta, SourceMeta, TimingMeta, YieldMeta

    values: dict[str, Any] = {
        "combo_id": combo.combo_id,
        "combo_dir": combo.dir_name,
        "methods": list(combo.methods),
        "k": combo.k,
        "method_args": {m: {} for m in combo.methods},
        "method_specs": {m: "{}" for m in combo.methods},
        "seed": 42,
        "variants_per_sample": 2,
        "max_candidates_per_variant": 3,
        "quality": QualityMeta("char_ratio", 0.55, 0.95),
        "rows": rows,
        "rows_input": rows,
        "rows_skipped": 0,
        "rows_skipped_by_reason": {},
        "variants": YieldMeta(asked=rows * 2, kept=rows, candidates=rows),
        "first_candidate_error": "",
        "source": SourceMeta("in.csv", "0" * 64, "text"),
        "library_versions": {},
        "timing": TimingMeta(1.0),
        "plan_fingerprint": "0123456789abcdef",
        "config_fingerprint": "fedcba9876543210",
        "combo_fingerprint": fingerprint,
        **fields,
    }
    return ComboMeta(**values)


def beyond_probes(stderr: str) -> list[str]:
    """stderr's lines but those of method probes: the suite shares one probe cache, so whether a command is the
    first to probe a method (and says so) depends on the order the tests run in."""
    return [line for line in stderr.splitlines() if not line.startswith(("note: probing ", "probed "))]


def wait_for(predicate: Callable[[], bool], timeout: float = 120, every: float = 0.05) -> None:
    """Poll `predicate` until it holds; an AssertionError after `timeout` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError("timed out waiting")


def leave_a_stopped_run_over(root: Path, other: Path, combo_dir: str = "combo_1_nlp_keyboard") -> None:
    """What a run with other settings (its output root `other`), stopped after its first combo, leaves over the
    finished run in `root`: that one combo folder replaced, and its shard manifest with the others interrupted."""
    import shutil

    import pandas as pd

    shutil.rmtree(root / combo_dir)
    shutil.copytree(other / combo_dir, root / combo_dir)
    stopped = pd.read_csv(other / "manifest_final.csv", dtype=str, keep_default_na=False)
    stopped.loc[stopped["combo_dir"] != combo_dir, "status"] = "interrupted"
    stopped.to_csv(root / "manifest_shard0_of_1.csv", index=False)
