"""What `augshard evaluate` compares: the labelled originals (sorted by row key, with their groups: a group never
straddles training and test) and the candidates (the run's combos, chosen as `export` chooses them, or one whole
export), and where they came from."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from augshard.core.errors import ConfigError, OutputError
from augshard.core.fingerprint import sha
from augshard.evaluation.groups import blank, group_ids
from augshard.evaluation.options import EvaluateOptions
from augshard.evaluation.scoring import Candidate
from augshard.exporting.export import select_combos
from augshard.exporting.model import FACTS, ExportFacts, ExportOptions, load_json
from augshard.storage.data import input_sha256, read_table, row_keys
from augshard.storage.meta import ComboMeta, QualityMeta, SourceMeta, read_meta
from augshard.storage.outcome import ComboOutcome
from augshard.storage.store import META


@dataclass
class Originals:
    """The labelled originals, sorted by row key (so the input's row order changes nothing)."""

    keys: list[str]
    texts: list[str]
    labels: list[str]
    groups: list[int]
    dropped: Counter = field(default_factory=Counter)
    dropped_classes: dict[str, int] = field(default_factory=dict)
    blank_groups: int = 0  # rows whose `--group-col` value is blank: each its own group (see `blank`)
    joined: dict[str, int] = field(default_factory=dict)  # rows joined to a group by punctuation / near duplicates
    splits: list[str | None] = field(default_factory=list)  # each one's --split-col value, with --test-split

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.labels))


@dataclass
class Origin:
    """Where the originals and candidates came from (the document's `source`, and what reading them needs)."""

    kind: str  # run | export
    path: str
    input_path: str
    input_sha256: str
    text_col: str
    evidence_col: str | None
    id_col: str | None
    plan_fingerprints: list[str]


# --- originals and candidates -----------------------------------------------------------------------------------


def chosen_combos(options: EvaluateOptions, every: bool = False) -> tuple[list[ComboOutcome], list[ComboMeta]]:
    """The combos to evaluate and their meta.json, chosen as `export` chooses them (export's refusals: a run with
    failed, stopped or half-written combos, combos on disk from more than one plan unless `--plan` chooses one),
    in combo id order. `every`: those of the whole plan, whatever --combos names."""
    choice = ExportOptions(
        to=options.output_root,  # not read: export's selection knows nothing of its target
        output_root=options.output_root, output_name=options.output_name, combos=() if every else options.combos,
        allow_incomplete=options.allow_incomplete, plan=options.plan,
    )  # fmt: skip
    ok, _, metas = select_combos(choice, verb="evaluate")
    chosen = sorted(zip(ok, metas, strict=True), key=lambda pair: pair[0].combo_id)
    return [e for e, _ in chosen], [m for _, m in chosen]


def text_column(field_name: str, text_col: str, evidence_col: str | None) -> str:
    if field_name == "evidence":
        if evidence_col is None:
            raise ConfigError("--field evidence: the run had no evidence column (it augmented the whole text)")
        return evidence_col
    return text_col


def load_run(options: EvaluateOptions) -> tuple[Origin, list[Candidate]]:
    outcomes, metas = chosen_combos(options)
    first = metas[0].source
    inputs = {(m.source.path, m.source.sha256) for m in metas}
    if len(inputs) > 1:
        raise OutputError(f"{options.output_root}: its combos were made from {len(inputs)} different inputs; "
                          "rerun `augshard run` so that every combo comes from one")  # fmt: skip
    col = text_column(options.field, first.text_col, first.evidence_col)
    candidates = []
    for outcome, meta in zip(outcomes, metas, strict=True):
        folder = options.output_root / outcome.combo_dir
        candidates.append(Candidate(
            outcome.methods, meta.combo_id, outcome.combo_dir, meta.k, tuple(meta.methods), meta.combo_fingerprint,
            (str(folder / "dataset.parquet"),), ("row_key", col), str(folder) if meta.vectors is not None else None,
        ))  # fmt: skip
    plans = sorted({m.plan_fingerprint for m in metas})
    source = Origin("run", str(options.output_root), first.path, first.sha256, first.text_col, first.evidence_col,
                    first.id_col, plans)  # fmt: skip
    return source, candidates


def load_export(options: EvaluateOptions) -> tuple[Origin, list[Candidate]]:
    folder = options.export_dir
    assert folder is not None
    facts_path = folder / FACTS
    try:
        raw = load_json(facts_path)
        facts = ExportFacts.from_json(raw)
        src = SourceMeta(**facts.source)  # meta.json's source, as the export copied it
        files = tuple(str(p) for p in facts.data_files(folder))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise OutputError(f"--export {folder}: not an `augshard export` folder ({facts_path} missing or unreadable: "
                          f"{exc})") from None  # fmt: skip
    col = text_column(options.field, src.text_col, src.evidence_col)
    fingerprint = sha(raw)  # of the file's every key, as before ExportFacts
    methods = tuple(sorted(facts.methods or {}))
    candidate = Candidate("export", "export", folder.name, 0, methods, fingerprint, files, ("row_key", col))
    # This read `plan_fingerprints`, a key export.json never had (it writes `combo_plans`), so an export's source
    # has always listed no plans; kept as it was so evaluation.json does not change (see the i18-C report).
    plans: list[str] = []
    source = Origin("export", str(folder), src.path, src.sha256, src.text_col, src.evidence_col, src.id_col,
                    list(plans))  # fmt: skip
    return source, [candidate]


def load_originals(source: Origin, options: EvaluateOptions, split_col: str | None = None) -> Originals:
    """Every input row with a text to classify and a label; rows of one original text, one `--group-col` value or
    one id share a group, and a group never straddles training and test (with `split_col`, the user's split
    decides instead, and each original's value is kept)."""
    path = source.input_path
    if not Path(path).is_file() or input_sha256(path) != source.input_sha256:
        raise OutputError(f"the run's input {path} is missing or changed since the run; evaluate needs it as it was")
    table = read_table(path)
    for name, flag in ((options.label_col, "--label-col"), (options.group_col, "--group-col"),
                       (split_col, "--split-col")):  # fmt: skip
        if name is not None and name not in table.column_names:
            columns = ", ".join(table.column_names)
            raise ConfigError(f"{path}: column '{name}' ({flag}) not found; columns are: {columns}")
    col = text_column(options.field, source.text_col, source.evidence_col)
    keys = row_keys(table, source.id_col, path)  # the run's own row keys: variants join back to them
    texts = table.column(col).to_pylist()
    labels = table.column(options.label_col).to_pylist()
    group_values = table.column(options.group_col).to_pylist() if options.group_col else [None] * len(texts)
    split_values = table.column(split_col).to_pylist() if split_col else [None] * len(texts)
    dropped: Counter = Counter()
    rows = []
    for i, (text, label) in enumerate(zip(texts, labels, strict=True)):
        if text is None or not str(text).strip():
            dropped["empty_text"] += 1
        elif label is None or str(label).strip() == "" or (isinstance(label, float) and math.isnan(label)):
            dropped["no_label"] += 1
        else:
            rows.append((keys[i], str(text), str(label), group_values[i], split_values[i]))
    rows.sort(key=lambda r: r[0])
    if not rows:
        raise ConfigError(f"{path}: no row has both a text and a '{options.label_col}' label")
    counts = Counter(r[2] for r in rows)
    folds = 1 if split_col else options.folds  # the user's split has one test set, not folds to fill
    rare = {c: n for c, n in sorted(counts.items()) if n < folds}
    if rare and not options.drop_rare_classes:
        shown = ", ".join(f"{c} ({n})" for c, n in list(rare.items())[:5])
        raise ConfigError(
            f"{path}: {len(rare)} class(es) of '{options.label_col}' have fewer rows than --folds {options.folds}: "
            f"{shown}; pass --drop-rare-classes to leave them out, or fewer --folds"
        )
    if rare:
        rows = [r for r in rows if r[2] not in rare]
        dropped["rare_class"] += sum(rare.values())
    if len({r[2] for r in rows}) < 2:
        only = rows[0][2] if rows else "none"
        raise ConfigError(f"{path}: '{options.label_col}' has one class ({only}); a classifier needs at least two")
    groups, joined = group_ids([r[1] for r in rows], [r[3] for r in rows], near=options.group_near)
    if len(set(groups)) < folds:
        by = f"'{options.group_col}' (--group-col) and identical texts" if options.group_col else "identical texts"
        raise ConfigError(
            f"{path}: the {len(rows)} originals form {len(set(groups))} group(s) by {by}, fewer than --folds "
            f"{options.folds}: every fold needs a group of its own; pass fewer --folds or another --group-col"
        )
    blanks = sum(blank(r[3]) for r in rows) if options.group_col else 0
    splits = [None if r[4] is None else str(r[4]).strip() for r in rows] if split_col else []
    return Originals([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], groups, dropped, rare, blanks,
                     joined.as_dict(), splits)  # fmt: skip


def source_split(options: EvaluateOptions, candidates: list[Candidate]) -> tuple[str, tuple[str, ...]]:
    """`--test-split`'s column and the values the run augmented: `--split-col`, else the run's own (meta.json's
    `split`, or the export's); no augmented values when the run had no split column (or another)."""
    if options.export_dir is not None:
        split = ExportFacts.read(options.export_dir).split
    else:
        split = read_meta(options.output_root / candidates[0].combo_dir / META).split
    column = options.split_col or (split.column if split else None)
    if column is None:
        raise ConfigError("--test-split: the run had no --split-col; name the split column here with --split-col COL")
    augmented = tuple(split.augmented) if split and split.column == column else ()
    if options.test_split in augmented:
        raise ConfigError(f"--test-split {options.test_split}: the run augmented that split; test on another one")
    return column, augmented


def run_quality(options: EvaluateOptions, candidates: list[Candidate]) -> QualityMeta | None:
    """How the run's filter measured similarity (its encoder, when it embedded)."""
    return read_meta(options.output_root / candidates[0].combo_dir / META).quality


def export_quality(folder: Path) -> QualityMeta | None:
    """The same, as the export recorded it (meta.json's `quality` without the device); None when it does not say."""
    try:
        return QualityMeta(**(ExportFacts.read(folder).quality or {}))
    except TypeError:
        return None
