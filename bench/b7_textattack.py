"""B7: TextAttack's own CLI (`textattack augment --recipe wordnet`) vs `augshard run` with `ta_wordswap_wordnet`.

Both apply WordSwapWordNet with RepeatModification + StopwordModification (TextAttack's WordNetAugmenter recipe;
augshard's default TextAttack constraints), pct_words_to_swap 0.1, 2 outputs per input row, one process / one shard,
offline (augshard's offline environment, nltk.download disabled in both). Each is timed as a whole subprocess,
imports included; rows = outputs that differ from their input text; the ratio is augshard rows/s over TextAttack's.

    .venv/bin/python bench/b7_textattack.py [--rows 300]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REDSM5 = REPO.parent / "shared" / "data" / "redsm5" / "sentences.csv"
METHOD = "ta_wordswap_wordnet"
RECIPE = "wordnet (WordNetAugmenter: WordSwapWordNet + RepeatModification + StopwordModification)"
# What augshard's workers do before importing TextAttack, then TextAttack's own CLI entry point (`textattack ...`).
TA_MAIN = (
    "import sys\n"
    "from augshard.methods.offline import apply_offline_env, forbid_nltk_downloads\n"
    "apply_offline_env()\n"
    "forbid_nltk_downloads()\n"
    "from textattack.commands.textattack_cli import main\n"
    "sys.argv = ['textattack', *sys.argv[1:]]\n"
    "sys.exit(main())\n"
)


def _timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    cwd.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return time.perf_counter() - t0


def _write(dest: Path, header: list[str], rows: list) -> Path:
    with open(dest, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([header, *rows])
    return dest


def _key(text: str) -> str:
    # The CLI turns '/' into '"' on read and strips '/' on write; compare texts without those and whitespace.
    return re.sub(r'[\s/"]+', "", text)


def _textattack_input(csv_path: Path, col: str, dest: Path) -> dict[str, str]:
    """A copy the CLI can read: its csv.Sniffer needs a delimiter in the header line, so an `id` column is added,
    and its writer cannot round-trip newlines inside a text, so those become spaces. Returns id -> text."""
    with open(csv_path, encoding="utf-8", newline="") as fh:
        texts = {str(i): re.sub(r"[\r\n]+", " ", r[col]) for i, r in enumerate(csv.DictReader(fh))}
    _write(dest, ["id", col], list(texts.items()))
    return texts


def _textattack_rows(out_csv: Path, originals: dict[str, str]) -> tuple[int, int, int]:
    """(outputs that differ from their row's original as the CLI wrote it, all outputs, originals it misread)."""
    first: dict[str, str] = {}
    changed = outputs = 0
    with open(out_csv, encoding="utf-8", newline="") as fh:
        for row in list(csv.reader(fh))[1:]:
            if row and row[0] in originals:
                text = ",".join(row[1:])
                if row[0] not in first:  # the CLI writes each original row before its augmentations
                    first[row[0]] = text
                else:
                    outputs, changed = outputs + 1, changed + (text != first[row[0]])
    return changed, outputs, sum(_key(text) != _key(originals[i]) for i, text in first.items())


def _augshard_rows(cwd: Path) -> int:
    import pyarrow.parquet as pq

    rows = 0
    for path in sorted(cwd.glob("data/processed/augsets/combo_*/dataset.parquet")):
        table = pq.read_table(path, columns=["text", "text_original"]).to_pydict()
        rows += sum(t != o for t, o in zip(table["text"], table["text_original"], strict=True))
    return rows


def run(work: Path, csv_path: Path, col: str) -> dict:
    """Run both on `csv_path` (text column `col`) in `work`; returns wall times, rows and the rows/s ratio."""
    from augshard.methods.offline import offline_env

    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **offline_env(), "PYTHONUTF8": "1"}  # the CLI opens its CSVs in the locale's encoding
    ta_in, ta_out, as_cwd = work / "ta_input.csv", work / "ta_output.csv", work / "augshard_run"
    originals = _textattack_input(csv_path, col, ta_in)
    # Untimed: load torch/transformers/textattack into the page cache so neither side pays the cold start alone.
    _timed([sys.executable, "-c", "import augshard.methods.offline, textattack"], work, env)
    ta_cmd = [sys.executable, "-c", TA_MAIN, "augment", "--input-csv", str(ta_in), "--output-csv", str(ta_out),
              "--input-column", col, "--recipe", "wordnet", "--pct-words-to-swap", "0.1",
              "--transformations-per-example", "2", "--overwrite"]  # fmt: skip
    ta_wall = _timed(ta_cmd, work, env)
    ta_rows, ta_outputs, misread = _textattack_rows(ta_out, originals)
    as_cmd = [sys.executable, "-m", "augshard", "run", "--no-live", "--input", str(csv_path), "--text-col", col,
              "--methods", METHOD, "--combo-mode", "single", "--quality-metric", "none", "--variants-per-sample", "2",
              "--num-shards", "1"]  # fmt: skip
    as_wall = _timed(as_cmd, as_cwd, dict(os.environ))
    as_rows = _augshard_rows(as_cwd)
    ta_rps, as_rps = ta_rows / ta_wall, as_rows / as_wall
    return {
        "name": "B7 vs textattack augment",
        "input_rows": len(originals),
        "textattack_wall_s": round(ta_wall, 2),
        "textattack_rows": ta_rows,
        "textattack_rows_per_s": round(ta_rps, 2),
        "augshard_wall_s": round(as_wall, 2),
        "augshard_rows": as_rows,
        "augshard_rows_per_s": round(as_rps, 2),
        "rows_per_s_ratio": round(as_rps / ta_rps, 3) if ta_rps else None,
        "target": "report rows/s ratio (augshard / textattack augment)",
        "recipe": RECIPE,
        "method": METHOD,
        "notes": (
            f"textattack kept the {len(originals)} originals (no --exclude-original) and wrote {ta_outputs} outputs, "
            f"{ta_rows} differing from their original (unchanged = its fallback when no swap passes the constraints). "
            f"Its input copy adds an `id` column (the CLI's csv.Sniffer cannot read a one-column header) and flattens "
            f"newlines; its quote handling misread {misread} texts with inner double quotes (cut at a comma). "
            "augshard: fresh cwd (empty cache); rows = dataset.parquet rows with text != text_original."
        ),
    }


def _input(rows: int | None, dest: Path) -> Path:
    with open(REDSM5, encoding="utf-8", newline="") as fh:
        texts = [r["sentence_text"] for r in csv.DictReader(fh)]
    return _write(dest, ["text"], [[t] for t in (texts[:rows] if rows else texts)])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None, help="first N ReDSM5 sentences (default: all)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="augshard-b7-") as tmp:
        print(json.dumps(run(Path(tmp), _input(args.rows, Path(tmp) / "input.csv"), "text"), indent=2))
