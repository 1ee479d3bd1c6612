"""evaluation.json, the findings of `augshard evaluate`: built from every split's scores (gains, intervals, Holm,
marginal effects), written atomically, read back, and used to choose combos for `export --best`."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from augshard.core.errors import ConfigError, OutputError
from augshard.core.version import __version__
from augshard.evaluation.classifiers import settings_document
from augshard.evaluation.gains import Gain, holm, mean_std, paired_gain, verdict
from augshard.evaluation.scoring import Candidate, Split
from augshard.storage.meta import read_meta
from augshard.storage.store import META
from augshard.storage.temporaries import write_atomic

EVALUATION = "evaluation.json"
SCHEMA_VERSION = 1


def build_document(
    source: dict[str, Any],
    protocol: dict[str, Any],
    splits: list[Split],
    candidates: list[Candidate],
    results: list[dict[str, Any]],
) -> dict[str, Any]:
    """evaluation.json's deterministic part (docs/cli.md has its schema): everything but `run_info`. `results[0]`
    holds the baseline's scores, then one per candidate."""
    import sklearn

    features, sizes = protocol["features"], protocol["train_sizes"]
    protocol = {
        **protocol,
        "interval": "95%, corrected resampled t (Nadeau-Bengio) over folds x repeats",
        "adjustment": "Holm over the combos of each section",
    }
    return {
        "schema": SCHEMA_VERSION,
        "source": source,
        "protocol": protocol,
        "classifiers": {k: v for k, v in settings_document().items() if k in features},
        "libraries": {"augshard": __version__, "scikit-learn": sklearn.__version__},
        "results": [_section(f, size, splits, candidates, results) for f in features for size in sizes],
    }


def _section(
    feature: str, size: float, splits: list[Split], candidates: list[Candidate], results: list[dict[str, Any]]
) -> dict[str, Any]:
    idx = [n for n, s in enumerate(splits) if s.size == size]
    ratio = math.fsum(len(splits[n].test) / len(splits[n].train) for n in idx) / len(idx)
    base = [results[0]["scores"][feature][n] for n in idx]
    base_f1, base_acc = [b[0] for b in base], [b[1] for b in base]
    rows, diffs_by_combo = [], []
    for candidate, result in zip(candidates, results[1:], strict=True):
        scores = [result["scores"][feature][n] for n in idx]
        f1, acc = [s[0] for s in scores], [s[1] for s in scores]
        diffs = [a - b for a, b in zip(f1, base_f1, strict=True)]
        diffs_by_combo.append(diffs)
        gain = paired_gain(diffs, ratio)
        acc_gain = paired_gain([a - b for a, b in zip(acc, base_acc, strict=True)], ratio)
        rows.append({
            "combo_id": candidate.combo_id, "combo_dir": candidate.combo_dir, "name": candidate.name,
            "methods": list(candidate.methods), "k": candidate.k, "combo_fingerprint": candidate.fingerprint,
            "variants_used": round(math.fsum(s[2] for s in scores) / len(scores), 1),
            "macro_f1": _summary(f1), "accuracy": _summary(acc),
            "gain": gain.as_dict(), "accuracy_gain": acc_gain.as_dict(),
            "macro_f1_splits": [round(v, 6) for v in f1],
        })  # fmt: skip
    for row, p in zip(rows, holm([r["gain"]["p_value"] for r in rows]), strict=True):
        row["gain"]["p_holm"] = round(p, 6)
        g = row["gain"]
        row["verdict"] = verdict(Gain(g["mean"], g["ci_low"], g["ci_high"], g["p_value"], g["splits"]), p)
    order = sorted(range(len(rows)), key=lambda i: (-rows[i]["gain"]["mean"], rows[i]["combo_id"]))
    return {
        "features": feature,
        "train_size": size,
        "splits": len(idx),
        "baseline": {
            "macro_f1": _summary(base_f1),
            "accuracy": _summary(base_acc),
            "train_originals": round(math.fsum(len(splits[n].train) for n in idx) / len(idx), 1),
            "macro_f1_splits": [round(v, 6) for v in base_f1],
        },
        "combos": [rows[i] for i in order],
        "methods": _marginals(candidates, diffs_by_combo, ratio),
    }


def _summary(values: list[float]) -> dict[str, float]:
    mean, std = mean_std(values)
    return {"mean": round(mean, 6), "std": round(std, 6)}


def _marginals(candidates: list[Candidate], diffs: list[list[float]], ratio: float) -> list[dict[str, Any]]:
    """Each method's marginal effect: per split, the mean gain of the combos that contain it minus the mean gain
    of those that do not; then the same corrected interval over the splits."""
    methods = sorted({m for c in candidates for m in c.methods})
    out = []
    for method in methods:
        with_m = [d for c, d in zip(candidates, diffs, strict=True) if method in c.methods]
        without = [d for c, d in zip(candidates, diffs, strict=True) if method not in c.methods]
        if not with_m or not without:
            continue
        per_split = [
            math.fsum(d[n] for d in with_m) / len(with_m) - math.fsum(d[n] for d in without) / len(without)
            for n in range(len(with_m[0]))
        ]
        mean_with = math.fsum(math.fsum(d) / len(d) for d in with_m) / len(with_m)
        mean_without = math.fsum(math.fsum(d) / len(d) for d in without) / len(without)
        out.append({
            "method": method, "combos_with": len(with_m), "combos_without": len(without),
            "mean_gain_with": round(mean_with, 6), "mean_gain_without": round(mean_without, 6),
            "marginal": paired_gain(per_split, ratio).as_dict(),
        })  # fmt: skip
    out.sort(key=lambda m: (-m["marginal"]["mean"], m["method"]))
    return out


def write_document(path: Path, doc: dict[str, Any]) -> None:
    """Through the store's one atomic writer: never half a document under its name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(doc, indent=2, allow_nan=False) + "\n")


def read_document(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OutputError(f"{path} not found: run `augshard evaluate --label-col COL` first") from None
    except (OSError, ValueError) as exc:
        raise OutputError(f"{path}: not a readable evaluation ({exc})") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA_VERSION or not doc.get("results"):
        raise OutputError(f"{path}: not an evaluation.json this augshard reads (schema {SCHEMA_VERSION})")
    return doc


def main_section(doc: dict[str, Any], features: str | None = None) -> dict[str, Any]:
    """The section a choice is made from: the given (or first) features, at the largest train size."""
    sections = [s for s in doc["results"] if features is None or s["features"] == features]
    if not sections:
        raise ConfigError(f"the evaluation has no '{features}' results (it has: "
                          f"{', '.join(sorted({s['features'] for s in doc['results']}))})")  # fmt: skip
    first = sections[0]["features"]
    return max((s for s in sections if s["features"] == first), key=lambda s: s["train_size"])


def choose_combos(
    output_root: Path, best: int | None, min_gain: float | None, features: str | None = None
) -> tuple[list[str], str]:
    """Combo ids picked from the run's evaluation.json (`export --best N` / `--min-gain X`), and a sentence for
    the dataset card saying how. Refused when the evaluation is older than the combos it ranks."""
    doc = read_document(output_root / EVALUATION)
    if doc["source"]["kind"] != "run":
        raise ConfigError(f"{output_root / EVALUATION} evaluates an export, not this run's combos")
    section = main_section(doc, features)
    for row in section["combos"]:
        try:
            meta = read_meta(output_root / row["combo_dir"] / META)
        except (OSError, ValueError):
            meta = None
        if meta is None or meta.combo_fingerprint != row["combo_fingerprint"]:
            raise OutputError(f"{output_root / EVALUATION} is older than combo {row['combo_dir']} (remade since, or "
                              "gone): run `augshard evaluate` again before choosing by it")  # fmt: skip
    rows = section["combos"]  # sorted by mean gain, best first
    rule = []
    if min_gain is not None:
        rows = [r for r in rows if r["gain"]["mean"] >= min_gain]
        rule.append(f"mean macro-F1 gain >= {min_gain:+.4f}")
    if best is not None:
        rows = rows[:best]
        if len(rows) == best:
            rule.append(f"the {best} best by mean macro-F1 gain")
        else:  # never "the 5 best" for the 2 an evaluation of some of the combos (--combos) ranks
            passing = " with that gain" if min_gain is not None else ""
            evaluated = len(section["combos"])
            rule.append(
                f"--best {best}, but the evaluation ranks only {len(rows)} combo(s){passing} (of {evaluated} it "
                f"evaluated): those {len(rows)}, by mean macro-F1 gain"
            )
    if not rows:
        raise OutputError(f"no combo of {output_root / EVALUATION} has a mean gain >= {min_gain}")
    p = doc["protocol"]
    how = (
        f"chosen by `augshard evaluate` ({section['features']}, train size {section['train_size']}, "
        f"{p['folds']} folds x {p['repeats']} repeat(s), label '{p['label_col']}'): {' and '.join(rule)}; "
        "gains: " + ", ".join(f"{r['name']} {r['gain']['mean']:+.4f} [{r['gain']['ci_low']:+.4f}, "
                              f"{r['gain']['ci_high']:+.4f}] ({r['verdict']})" for r in rows)
    )  # fmt: skip
    return [r["combo_id"] for r in rows], how
