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
VECTOR = "vector"  # vectors.parquet: the embedding filter's vector of the variant


def original_column(has_evidence: bool) -> str:
    """The column holding what was augmented, before augmentation."""
    return EVIDENCE_ORIGINAL if has_evidence else TEXT_ORIGINAL
