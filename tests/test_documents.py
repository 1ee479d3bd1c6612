"""Data that crosses a file boundary: fingerprints that keep their values, meta.json's counters (old files read as
complete), the run document, export facts and the label check as typed records that read back what they wrote."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
from helpers import CHEAP_RUN_ARGS, run_cli, sample_rows, write_csv

from augshard.core.config import RunConfig
from augshard.core.fingerprint import sha
from augshard.exporting.model import (
    FACTS,
    MADE_BY,
    ClassLabel,
    Dropped,
    ExportedCombo,
    ExportFacts,
    ExportLabelCheck,
    ExportSettings,
    InputFacts,
    LeftOut,
    MethodClass,
    NotRun,
    SkippedRow,
    is_export,
)
from augshard.runner.summary import (
    SUMMARY_KEYS,
    Crash,
    Failure,
    LabelSummary,
    LowYield,
    RunDocument,
    ShardRow,
    Unavailable,
)
from augshard.shard.labels import LabelCheck
from augshard.storage.merge import ManifestSummary
from augshard.storage.meta import LEGACY_COUNTS, ComboMeta, LabelMeta, read_meta

PAYLOAD = ["a", {"b": 1.5, "a": [1, "é"]}, None]


def test_one_hasher_keeps_every_persisted_fingerprint() -> None:
    # Values computed by the two helpers this one replaced (config._sha and plan._sha), at the commit before it.
    assert sha(PAYLOAD) == "0e446b2bdca8cf64"
    assert sha(PAYLOAD, compact=True) == "fba5933770292034"
    assert RunConfig().fingerprint() == "049378f7731c6692"
    cfg = RunConfig(
        input="x.csv",
        quality_metric="char_ratio",
        label_col="label",
        keep_vectors=True,
        quality_scope="each-step",
        quality_min_sim=0.55,
        quality_max_sim=0.95,
    )  # the range of that day
    assert cfg.fingerprint() == "73b0de2177ca31a6"
    # Any length of the plain encoding (the method probe cache keys take 32 digits).
    plain = json.dumps(PAYLOAD, sort_keys=True).encode()
    assert sha(PAYLOAD, length=24) == hashlib.sha256(plain).hexdigest()[:24]


# --- meta.json's counters -------------------------------------------------------------------------------------

OLD_META = Path(__file__).parent / "fixtures" / "meta_before_counters_renamed.json"


def test_an_old_meta_json_reads_with_its_counts_under_their_new_names() -> None:
    old = json.loads(OLD_META.read_text(encoding="utf-8"))  # a real one, from a sample run before the rename
    meta = read_meta(OLD_META)
    assert meta.candidates_rejected == old["rows_rejected"] == 476
    assert meta.variants.call_errors == old["candidate_errors"]
    assert (meta.candidates, meta.variants.rows_short) == (old["candidates"], old["rows_short"])
    written = meta.to_dict()
    assert not set(LEGACY_COUNTS) & set(written) and not meta.extra
    assert written["variants"] == old["variants"]
    # Every other key reads back as it was written; a rewrite adds the original tool's keys and the columns.
    added = {"combo_methods", "source_input", "columns"}
    assert {k: v for k, v in written.items() if k != "label_check" and k not in added} == {
        k: v for k, v in old.items() if k not in LEGACY_COUNTS and k != "timing"
    } | {"timing": {**old["timing"], "rows_skipped": old["rows_skipped"]}}


def test_a_meta_json_from_before_variants_existed_still_reads() -> None:
    old = json.loads(OLD_META.read_text(encoding="utf-8"))
    del old["variants"]
    meta = ComboMeta.from_dict(old)
    assert (meta.candidates, meta.candidates_rejected, meta.variants.kept) == (780, 476, 304)
    assert meta.variants.asked == old["rows_input"] * old["variants_per_sample"]


@pytest.mark.slow
def test_a_combo_whose_meta_json_has_the_old_counters_is_complete_not_recomputed(tmp_path: Path) -> None:
    args = ("run", "--input", str(write_csv(tmp_path / "in.csv", sample_rows(12))), *CHEAP_RUN_ARGS, "--no-live")
    assert run_cli(*args, cwd=tmp_path).returncode == 0
    (folder,) = (tmp_path / "data/processed/augsets").glob("combo_*")
    meta_path = folder / "meta.json"
    new = json.loads(meta_path.read_text(encoding="utf-8"))
    assert not set(LEGACY_COUNTS) & set(new)
    y = new["variants"]  # written as the earlier version did: each count again at the top level
    rejected = y["unchanged"] + y["duplicates"] + y["below_min_sim"] + y["above_max_sim"] + y["step_rejected"]
    old = {**new, "rows_rejected": rejected, "rejected_similarity": y["below_min_sim"] + y["above_max_sim"],
           "rejected_unchanged": y["unchanged"] + y["duplicates"], "rows_short": y["rows_short"],
           "candidates": y["candidates"], "candidate_errors": y["call_errors"]}  # fmt: skip
    meta_path.write_text(json.dumps(old, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    data = (folder / "dataset.parquet").read_bytes()
    stamp = (folder / "dataset.parquet").stat().st_mtime_ns

    again = run_cli(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "0 to run, 1 complete" in again.stdout
    assert (folder / "dataset.parquet").stat().st_mtime_ns == stamp and (
        folder / "dataset.parquet"
    ).read_bytes() == data
    (row,) = read_rows(tmp_path / "data/processed/augsets" / "manifest_final.csv")
    assert row["resumed"] == "True" and int(row["rows_rejected"]) == rejected
    assert json.loads(meta_path.read_text(encoding="utf-8")) == old  # read, not rewritten


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


# --- the run document, export facts, the label check ---------------------------------------------------------


def test_the_run_document_reads_back_what_it_wrote_with_its_keys_in_order() -> None:
    doc = RunDocument(
        plan_fingerprint="6b2e80618eae7182", num_shards=2, shards_reason="auto: 2 CPU cores",
        shards=[ShardRow(0, "failed", 2, 1, 0, 1, 40, 3.5, "logs/augment/shard_0_of_2.log")],
        failed=[Failure("combo_1_x", "abc", "ValueError: no", "s.log:5")],
        crashed=[Crash(1, "killed", "s1.log")], low_yield=[LowYield("combo_1_x", 3, 10, "kept 3 of 10")],
        label_check=LabelSummary("label", ["neg", "pos"], 20, 0.9, 0.5, False, "", 0.1, 0.25),
        unavailable_methods=[Unavailable("m", "no model", "pip", 3)], exit_code=1,
        summary=ManifestSummary(combos=1, ok=0, failed=1, per_k={"1": 0}), manifest="out/manifest_final.csv",
        wall_s=1.5,
    )  # fmt: skip
    written = json.loads(json.dumps(doc.to_json()))
    keys = ["plan", "num_shards", "shards_reason", "shards", "failed", "crashed", "low_yield", "label_check",
            "unavailable_methods", "exit_code", "summary", "manifest", "wall_s"]  # fmt: skip
    assert list(written) == keys
    assert written["failed"] == [{"combo_dir": "combo_1_x", "combo_id": "abc", "error": "ValueError: no",
                                  "log": "s.log:5"}]  # fmt: skip
    assert written["shards"] == [dict(zip(SUMMARY_KEYS, (0, "failed", 2, 1, 0, 1, 40, 3.5,
                                                      "logs/augment/shard_0_of_2.log"), strict=True))]  # fmt: skip
    assert list(written["shards"][0]) == ["shard", "outcome", "combos", "ok", "resumed", "failed", "rows",
                                          "duration_s", "log"]  # fmt: skip
    assert list(written["label_check"]) == ["label_col", "classes", "originals", "cv_accuracy", "majority_rate",
                                            "weak", "warning", "flip_share_min", "flip_share_max"]  # fmt: skip
    assert RunDocument.from_json(written) == doc
    one_shard = dataclasses.replace(doc, summary=None, manifest=None, rows=7, label_check=None)
    written = one_shard.to_json()
    assert written["rows"] == 7 and written["label_check"] is None and "summary" not in written
    assert RunDocument.from_json(json.loads(json.dumps(written))) == one_shard


def test_label_meta_is_the_label_check_with_its_flips() -> None:
    check = LabelCheck("label", ["neg", "pos"], 40, 0.52, 0.5, True)
    meta = LabelMeta.of(check, labelled=10, flips=3)
    assert meta.warning == check.warning and "weak" in meta.warning
    assert {f.name: getattr(meta, f.name) for f in dataclasses.fields(LabelCheck)} == dataclasses.asdict(check)
    old = json.loads(OLD_META.read_text(encoding="utf-8"))
    old["label_check"] = {**dataclasses.asdict(meta), "flip_share": 0.3}
    assert ComboMeta.from_dict(old).label_check == meta
    assert ComboMeta.from_dict(old).to_dict()["label_check"] == old["label_check"]


OLD_FACTS = Path(__file__).parent / "fixtures" / "export_json_of_the_sample.json"  # made before the rows were typed


def _facts() -> ExportFacts:
    return ExportFacts(
        made_by=MADE_BY, plan_fingerprint="6b2e", combo_plan_fingerprints=["1a2b", "6b2e"], rows=7,
        files=("data/train-00000-of-00001.parquet",), features={"text": "string", "k": "int32"},
        source={"path": "in.csv", "sha256": "ab", "text_col": "text", "evidence_col": None, "id_col": None},
        seed=42, variants_per_sample=2, quality={"metric": "char_ratio", "min_sim": 0.4, "max_sim": 0.98},
        config_fingerprint="cf", methods={"nlp_keyboard": {"aug_char_p": 0.1}},
        method_classes={"nlp_keyboard": MethodClass("nlpaug", "KeyboardAug")},
        export=ExportSettings("near", 0.9, "n", "c", True, False, "first", None), originals=0,
        combos=(ExportedCombo("combo_1_nlp_keyboard", "nlp_keyboard", 1, 9, 1, 0, 1, 7),), dropped=Dropped(1, 0, 1),
        label_check=ExportLabelCheck("label", ["neg", "pos"], 0.9, 0.5, False), labels_before={"neg": 3, "pos": 2},
        labels_after={"neg": 4, "pos": 3}, left_out_combos=(LeftOut("combo_1_x", "failed", "ValueError: no"),),
        not_run=(NotRun("combo_1_y", "y", "unavailable", "no model"),),
        input=InputFacts(6, 5, {"evidence_not_found": 1}, (SkippedRow(3, "r3", "evidence_not_found"),)),
        class_label=ClassLabel(["label"], ["neg", "pos"]),
    )  # fmt: skip


def test_export_facts_read_back_with_typed_rows_and_their_keys_as_before(tmp_path: Path) -> None:
    facts = _facts()
    doc = json.loads(json.dumps(facts.to_json()))
    assert list(doc)[:3] == ["made_by", "plan", "combo_plans"] and "left_out" in doc and "path" not in doc
    assert list(doc["combos"][0]) == ["combo_dir", "methods", "k", "rows", "exact_duplicates", "near_duplicates",
                                      "label_flips", "kept"]  # fmt: skip
    assert doc["dropped"] == {"exact_duplicates": 1, "near_duplicates": 0, "label_flips": 1}
    assert doc["input"]["skipped_rows"] == [{"row": 3, "row_key": "r3", "reason": "evidence_not_found"}]
    assert doc["left_out"] == [{"combo_dir": "combo_1_x", "status": "failed", "error": "ValueError: no"}]
    (tmp_path / FACTS).write_text(json.dumps(doc, sort_keys=True), encoding="utf-8")
    assert ExportFacts.read(tmp_path) == facts and ExportFacts.read(tmp_path).path == tmp_path
    assert facts.left_out == {"combo_1_x": "failed"} and facts.input_path == "in.csv"


def test_an_export_json_written_before_the_rows_were_typed_reads_and_writes_back_the_same(tmp_path: Path) -> None:
    old = json.loads(OLD_FACTS.read_text(encoding="utf-8"))
    facts = ExportFacts.from_json(old)
    assert json.dumps(facts.to_json(), indent=2, sort_keys=True) + "\n" == OLD_FACTS.read_text(encoding="utf-8")
    assert facts.combos[0].kept == old["combos"][0]["kept"] and facts.plan_fingerprint == old["plan"]
    del old["class_label"], old["not_run"]  # keys an earlier version did not write
    (tmp_path / FACTS).write_text(json.dumps(old), encoding="utf-8")
    assert is_export(tmp_path) and ExportFacts.read(tmp_path).class_label is None
    assert ExportFacts.read(tmp_path).not_run is None
    (tmp_path / FACTS).write_text(json.dumps({"made_by": MADE_BY}), encoding="utf-8")
    assert not is_export(tmp_path)
    (tmp_path / FACTS).write_text(json.dumps(old | {"combos": 5}), encoding="utf-8")
    with pytest.raises(ValueError, match="combos is not a list"):
        ExportFacts.read(tmp_path)
