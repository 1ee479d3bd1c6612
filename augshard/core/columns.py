"""The columns augshard adds to every dataset.parquet (and an export's files, and vectors.parquet), by name."""

from __future__ import annotations

ROW_KEY = "row_key"  # the input row's id (--id-col) or its position
VARIANT = "variant"  # 0, 1, ... within the row
EVIDENCE_ORIGINAL = "evidence_original"  # the evidence span before augmentation (with --evidence-col)
TEXT_ORIGINAL = "text_original"  # the text before augmentation (without an evidence column)
EVIDENCE_MATCH = "evidence_match"  # exact | fuzzy: how the evidence span was found in the text
SIMILARITY = "similarity"  # to the original; null with --quality-metric none
COMBO_ID = "combo_id"
METHODS = "methods"  # the combo's method ids joined by '+'
LABEL_PRED = "label_pred"  # with --label-col: the label check's prediction for the variant
LABEL_AGREES = "label_agrees"  # ... and whether it is its original's
K = "k"  # an export's combo size (0 for the originals)
COMBO_DIR = "combo_dir"  # augshard.load(): the combo's folder
VECTOR = "vector"  # vectors.parquet: the embedding filter's vector of the variant

# Every column augshard adds beside the input's in a dataset.parquet, an export or `augshard.load()`'s table: an
# input column of one of these names would be written twice (or read back as augshard's own), so preflight refuses
# it. `tests/test_data.py` holds the output schema, the export's and load's added columns to this list.
RESERVED = (ROW_KEY, VARIANT, EVIDENCE_ORIGINAL, TEXT_ORIGINAL, EVIDENCE_MATCH, SIMILARITY, COMBO_ID, METHODS,
            LABEL_PRED, LABEL_AGREES, K, COMBO_DIR)  # fmt: skip


def original_column(has_evidence: bool) -> str:
    """The column holding what was augmented, before augmentation."""
    return EVIDENCE_ORIGINAL if has_evidence else TEXT_ORIGINAL
