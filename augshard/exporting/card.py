"""The dataset card of an export (README.md: Hugging Face datasets front matter, then how the set was made) and the
same facts as export.json. Everything comes from the manifest, the combos' meta.json and the export's own counts;
nothing depends on where or when it ran, so the same run exported twice gives the same files."""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from augshard.exporting.model import (
    MADE_BY,
    ClassLabel,
    Dropped,
    Export,
    ExportBalance,
    ExportFacts,
    ExportLabelCheck,
    ExportSettings,
    ExportSplit,
    InputFacts,
    LeftOut,
    MethodClass,
    NotRun,
    SkippedRow,
)
from augshard.storage.meta import QualityMeta, SourceMeta
from augshard.storage.temporaries import write_atomic

# Arrow types (as `str(type)` writes them) as the `datasets` library names them in a card's `dataset_info.features`;
# a time, a duration or a decimal is named as Arrow names it; a list of one of these is a `sequence` of it, and a
# dictionary (a pandas category) its values' type. Every other type (a struct, a list of lists) goes unnamed.
DTYPES = {
    **{t: t for t in ("null", "bool", "string", "large_string", "binary", "large_binary")},
    **{f"{u}int{b}": f"{u}int{b}" for u in ("", "u") for b in (8, 16, 32, 64)},
    "halffloat": "float16",
    "float": "float32",
    "double": "float64",
    "date32[day]": "date32",
    "date64[ms]": "date64",
}
_AS_ARROW = re.compile(r"^(?:(?:timestamp|time32|time64|duration)\[[^\]]+\]|decimal(?:32|64|128|256)\(\d+, -?\d+\))$")
_LIST = re.compile(r"^(?:large_)?list<(?:item|element): (.+)>$")
_DICTIONARY = re.compile(r"^dictionary<values=(.+), indices=\w+, ordered=[01]>$")


def dtype(arrow: str) -> str | None:
    """The `datasets` dtype of a scalar Arrow type (as its str); None for a type it has no scalar name for."""
    found = _DICTIONARY.match(arrow)
    if found:
        return dtype(found.group(1))
    return DTYPES.get(arrow) or (arrow if _AS_ARROW.match(arrow) else None)


def feature_lines(name: str, arrow: str) -> list[str] | None:
    """A column's entry under `features`, its type kept (int64 stays int64); None for a type `dtype` cannot name."""
    found = _LIST.match(arrow)
    inner = dtype(found.group(1)) if found else None
    if inner is not None:
        return [f"  - name: {name}", f"    sequence: {inner}"]
    named = dtype(arrow)
    return None if named is None else [f"  - name: {name}", f"    dtype: {named}"]


def facts(result: Export) -> ExportFacts:
    """export.json: what went in, what was dropped and why, what came out (and, not in the file, where)."""
    first = result.metas[0]
    label = next((m.label_check for m in result.metas if m.label_check), None)
    return ExportFacts(
        made_by=MADE_BY,
        plan_fingerprint=result.plan_fingerprint,
        combo_plan_fingerprints=sorted({m.plan_fingerprint for m in result.metas}),
        rows=result.rows,
        files=tuple(result.files),
        features=dict(result.features),
        source=first.source.to_dict(),
        seed=first.seed,
        variants_per_sample=first.variants_per_sample,
        quality={k: v for k, v in dataclasses.asdict(first.quality).items() if k != "device"},
        config_fingerprint=first.config_fingerprint,
        methods={m: args for meta in result.metas for m, args in meta.method_args.items()},
        method_classes={m: _class_of(spec) for meta in result.metas for m, spec in meta.method_specs.items()},
        export=_options(result),
        originals=result.originals,
        combos=tuple(result.counts),
        dropped=Dropped(*(sum(getattr(c, key) for c in result.counts) for key in DROPPED)),
        label_check=None
        if label is None
        else ExportLabelCheck(label.label_col, label.classes, label.cv_accuracy, label.majority_rate, label.weak),
        labels_before=dict(sorted(result.labels_before.items(), key=lambda kv: str(kv[0]))),
        labels_after=dict(sorted(result.labels_after.items(), key=lambda kv: str(kv[0]))),
        left_out_combos=tuple(LeftOut(o.combo_dir, o.status.value, o.error) for o in result.skipped),
        not_run=tuple(NotRun(o.combo_dir, o.methods, o.status.value, o.error) for o in result.unavailable),
        input=InputFacts(
            rows=result.input_rows,
            usable=result.input_rows - len(result.skipped_rows),
            skipped=dict(sorted(Counter(reason for _, _, reason in result.skipped_rows).items())),
            skipped_rows=tuple(SkippedRow(i + 1, key, why) for i, key, why in result.skipped_rows),
        ),
        class_label=_class_label(result, label),
        library_versions=_versions(result),
        input_sha256=first.source.sha256,
        split=None if first.split is None else ExportSplit(**dataclasses.asdict(first.split)),
        balance=None
        if (b := first.balance) is None
        else ExportBalance(b.target, b.max_variants_per_sample, {c.label: c.per_row for c in b.classes}),
        path=result.options.to,
    )


DROPPED = tuple(f.name for f in dataclasses.fields(Dropped))


def _versions(result: Export) -> dict[str, str]:
    """Each library's version as the combos' meta.json recorded it (versions joined when combos resumed from an
    earlier run were made with another)."""
    found: dict[str, set[str]] = {}
    for meta in result.metas:
        for lib, version in meta.library_versions.items():
            found.setdefault(lib, set()).add(str(version))
    return {lib: ", ".join(sorted(versions)) for lib, versions in sorted(found.items())}


def _class_of(spec: str) -> MethodClass:
    """The library and class of a method, from meta.json's canonical spec."""
    try:
        doc = json.loads(spec)
    except ValueError:
        doc = {}
    doc = doc if isinstance(doc, dict) else {}
    return MethodClass(doc.get("lib"), doc.get("kind"))


def _class_label(result: Export, label: Any) -> ClassLabel | None:
    """The label column as a `datasets` ClassLabel: when the run checked labels (`--label-col`, so the column is
    categorical) and the column holds text (`string`: what `datasets` casts to a ClassLabel's ids as it loads). Its
    names, sorted, are every label of the input and every class the check predicts; `label_pred` shares them."""
    if label is None:
        return None
    types = dict(result.features)
    if types.get(label.label_col) != "string":
        return None
    names = {str(v) for v in result.labels_before if v is not None} | {str(c) for c in label.classes}
    columns = [c for c in (label.label_col, "label_pred") if types.get(c) == "string"]
    return ClassLabel(columns, sorted(names))


def _options(result: Export) -> ExportSettings:
    options = result.options
    return ExportSettings(
        dedupe=options.dedupe,
        near_threshold=options.near_threshold if options.dedupe == "near" else None,
        normalisation="NFKC, case folded, whitespace collapsed",
        near_compares="character 5-grams of the evidence (the text without an evidence column)",
        drop_label_flips=options.drop_label_flips,
        include_originals=options.include_originals,
        kept_twin="the first in (k, combo id, input order, variant)",
        chosen_by=options.chosen_by or None,
    )


def write_card(result: Export, folder: Path) -> ExportFacts:
    """README.md and export.json; returns the facts both hold."""
    done = facts(result)  # the card reads the same facts as export.json holds
    # export.json last: the mark that `--force` trusts sits only in a folder that is otherwise complete.
    write_atomic(folder / "README.md", _front_matter(result, done) + _body(done))
    write_atomic(folder / "export.json", json.dumps(done.to_json(), indent=2, sort_keys=True) + "\n")
    return done


def _front_matter(result: Export, doc: ExportFacts) -> str:
    """The `datasets` layout: one config, one train split over every part file, and the features."""
    lines = [
        "---",
        "configs:",
        "- config_name: default",
        "  data_files:",
        "  - split: train",
        "    path: data/train-*.parquet",
        "dataset_info:",
        "  features:",
    ]
    class_label = doc.class_label or ClassLabel([], [])
    for name, arrow in result.features:
        if name in class_label.columns:
            lines += [f"  - name: {name}", "    dtype:", "      class_label:", "        names:"]
            lines += [f"          '{i}': {json.dumps(n, ensure_ascii=False)}" for i, n in enumerate(class_label.names)]
        elif (entry := feature_lines(name, arrow)) is not None:
            lines += entry
        else:  # a type the card cannot name: no features at all, and `datasets` reads every type from the files
            lines = lines[: lines.index("  features:")]
            break
    lines += ["  splits:", "  - name: train", f"    num_examples: {doc.rows}", "---", ""]
    return "\n".join(lines)


# What an in-memory input was, in the card's words (storage/inputs.py).
ORIGINS = {"dataframe": "a pandas DataFrame", "arrow": "a pyarrow Table", "dataset": "a datasets Dataset"}


def _input_named(src: SourceMeta) -> str:
    """The input file and its sha256, or the rows given in memory and their content hash."""
    if src.origin in ORIGINS:
        return f"{ORIGINS[src.origin]} given in memory (content sha256 `{src.sha256}`)"
    return f"the input `{Path(src.path).name}` (sha256 `{src.sha256}`)"


def _balance_line(b: ExportBalance) -> str:
    how = f"`--balance` to {b.target:,} per class" if b.target is not None else "`--variants-per-class`"
    per_row = ", ".join(f"{k or '(no label)'} {v}" for k, v in b.per_row.items())
    return f"- Variants per class ({how}): {per_row} variants per row; the labels below count them."


def _body(doc: ExportFacts) -> str:
    q, src = QualityMeta(**doc.quality), SourceMeta(**doc.source)  # meta.json's records, as the export made them
    ex, dropped = doc.export, doc.dropped
    resumed = [p for p in doc.combo_plan_fingerprints if p != doc.plan_fingerprint]
    out = [
        "# Augmented training set (augshard)",
        "",
        f"{doc.rows:,} rows in {len(doc.files)} Parquet file(s) under `data/`, from {_input_named(src)}, text column "
        f"`{src.text_col}`" + (f", evidence column `{src.evidence_col}`" if src.evidence_col else "") + ".",
        "",
        "## How it was made",
        "",
        f"- Methods (nlpaug, TextAttack) in {len(doc.combos)} combos; {doc.variants_per_sample} variants per "
        f"row and combo; seed {doc.seed}; config fingerprint `{doc.config_fingerprint}`; plan `{doc.plan_fingerprint}`"
        + (f" (combos resumed from plans {', '.join(f'`{p}`' for p in resumed)})" if resumed else "")
        + ".",
        f"- Similarity filter: `{q.metric}` in [{q.min_sim}, {q.max_sim}], scope `{q.scope}`"
        + (f", model {q.model} ({q.backend})" if q.model else "")
        + ".",
        "- Libraries: " + ", ".join(f"{lib} {v}" for lib, v in (doc.library_versions or {}).items()) + ".",
        f"- Dedupe: `{ex.dedupe}`"
        + (f" at Jaccard {ex.near_threshold}" if ex.near_threshold else "")
        + f" on the text {ex.normalisation}; of twins, {ex.kept_twin} is kept. Dropped: "
        f"{dropped.exact_duplicates:,} exact and {dropped.near_duplicates:,} near duplicates.",
        _originals_line(doc),
        f"- {doc.split_line[0].upper()}{doc.split_line[1:]}.",
    ]
    if doc.balance:
        out.append(_balance_line(doc.balance))
    if ex.chosen_by:
        out.append(f"- Combos {ex.chosen_by}.")
    out += _labels(doc)
    out += _methods(doc)
    out += [
        "",
        "## Rows per combo",
        "",
        "| combo | k | rows | kept | exact dup. | near dup. | label flips |",
        "|---|---|---|---|---|---|---|",
    ]
    out += [
        f"| {c.methods} | {c.k} | {c.rows:,} | {c.kept:,} | {c.exact_duplicates:,} | {c.near_duplicates:,} | "
        f"{c.label_flips:,} |"
        for c in doc.combos
    ]
    out += _not_here(doc)
    out += [
        "",
        "Columns: the input's, with the text (and evidence) augmented, then `row_key`, `variant`, the "
        "original evidence (or text), `similarity`, `combo_id`, `k`, `methods`"
        + (", `label_pred`, `label_agrees`" if doc.label_check else "")
        + ". Load it with "
        '`datasets.load_dataset("path/to/this/folder")` or `pandas.read_parquet("data/")`.',
        "",
    ]
    return "\n".join(out)


SKIPPED_SHOWN = 20  # input rows left out, listed by the card (export.json lists every one)


def _originals_line(doc: ExportFacts) -> str:
    """Whether the input rows are in the set, and which rows of the input no combo could augment, with why: they
    are neither originals nor augmented (the card says so instead of counting silently fewer rows)."""
    inp = doc.input
    line = f"- Originals included: {'yes' if doc.export.include_originals else 'no'} ({doc.originals:,} rows)"
    could = "were usable (variants only of the augmented split's)" if doc.split else "could be augmented"
    if not inp.skipped_rows:
        return line + f"; every one of the input's {inp.rows:,} rows {could}."
    why = ", ".join(f"{n:,} {reason}" for reason, n in inp.skipped.items())
    shown = inp.skipped_rows[:SKIPPED_SHOWN]
    listed = "; ".join(f"row {r.row} (`{r.row_key}`): {r.reason}" for r in shown)
    more = len(inp.skipped_rows) - len(shown)
    tail = f"; and {more:,} more (every one in export.json's `input.skipped_rows`)." if more else "."
    return (
        f"{line}. Of the input's {inp.rows:,} rows, {inp.usable:,} {could} and "
        f"{len(inp.skipped_rows):,} could not ({why}), so they are neither originals nor variants here: "
        f"{listed}{tail}"
    )


def _methods(doc: ExportFacts) -> list[str]:
    """Each method of the set's combos: its library, class and arguments."""
    out = ["", "## Methods", "", "| method | library | class | arguments |", "|---|---|---|---|"]
    for m, args in sorted(doc.methods.items()):
        cls = doc.method_classes.get(m) or MethodClass(None, None)
        shown = json.dumps(args, sort_keys=True, ensure_ascii=False).replace("|", "\\|")
        out.append(f"| `{m}` | {cls.lib or ''} | {cls.kind or ''} | `{shown}` |")
    return out


def _not_here(doc: ExportFacts) -> list[str]:
    """Combos of the run that are not in this set because they could not run, failed or were left out."""
    rows = [*doc.not_run, *doc.left_out_combos]
    if not rows:
        return []
    out = ["", "## Combos not in this set", "", "| combo | status | why |", "|---|---|---|"]
    for r in rows:
        why = " ".join(str(r.error).split()).replace("|", "\\|")
        out.append(f"| {getattr(r, 'methods', '') or r.combo_dir} | {r.status} | {why} |")
    return out


def _labels(doc: ExportFacts) -> list[str]:
    label = doc.label_check
    if label is None:
        return []
    before = ", ".join(f"{k}: {v:,}" for k, v in doc.labels_before.items())
    after = ", ".join(f"{k}: {v:,}" for k, v in doc.labels_after.items())
    return [
        f"- Label check on `{label.label_col}`: a logistic regression on the originals' sentence embeddings, "
        f"cross-validated accuracy {label.cv_accuracy} (always the most frequent label: "
        f"{label.majority_rate}){' - weak: its flips say little' if label.weak else ''}. "
        f"Label flips dropped: {'yes' if doc.export.drop_label_flips else 'no'} "
        f"({doc.dropped.label_flips:,}).",
        f"- Labels of the input (all {doc.input.rows:,} rows): {before}.",
        f"- Labels of this set: {after}.",
    ]
