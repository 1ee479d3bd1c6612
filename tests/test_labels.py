"""The label-preservation check's classifier: deterministic, honest about its own accuracy, and what it predicts."""

from __future__ import annotations

import numpy as np
import pytest

from augshard.shard.labels import Labeler, LabelModel


def _blobs(n_per_class: int = 40, seed: int = 3) -> tuple[np.ndarray, list[str]]:
    """Unit vectors around three well separated directions: an easy task for a linear classifier."""
    rng = np.random.default_rng(seed)
    centres = np.eye(8)[:3] * 4
    x = np.concatenate([c + rng.normal(scale=0.5, size=(n_per_class, 8)) for c in centres])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), [c for c in ("neg", "neu", "pos") for _ in range(n_per_class)]


def test_a_separable_task_is_learned_and_checked_by_cross_validation() -> None:
    x, y = _blobs()
    model = LabelModel(x, y, "label", seed=42)
    check = model.check
    assert check.classes == ["neg", "neu", "pos"] and check.originals == 120
    assert check.majority_rate == pytest.approx(1 / 3, abs=1e-3)
    assert check.cv_accuracy is not None and check.cv_accuracy > 0.9 and not check.weak and check.warning == ""
    assert model.predict(x[:5]) == ["neg"] * 5 and model.predict(x[-5:]) == ["pos"] * 5


def test_the_same_data_gives_the_very_same_model_every_time() -> None:
    x, y = _blobs()
    a, b = LabelModel(x, y, "label", seed=42), LabelModel(x.copy(), list(y), "label", seed=42)
    assert np.array_equal(a._model.coef_, b._model.coef_) and a.check == b.check


def test_labels_the_embeddings_do_not_carry_make_a_weak_check_that_says_so() -> None:
    x, _ = _blobs()
    noise = [["a", "b", "c"][i] for i in np.random.default_rng(0).integers(0, 3, size=len(x))]
    check = LabelModel(x, noise, "stance", seed=42).check
    assert check.weak and "weak" in check.warning and "stance" in check.warning
    assert check.cv_accuracy is not None and check.cv_accuracy - check.majority_rate < 0.05


def test_missing_labels_are_left_out_and_one_class_cannot_be_validated() -> None:
    x, y = _blobs(10)
    labels: list[str | None] = [None if i % 3 == 0 else label for i, label in enumerate(y)]
    model = LabelModel(x, labels, "label")
    assert model.check.originals == sum(label is not None for label in labels)
    single = LabelModel(x, ["only"] * len(x), "label")
    assert single.check.cv_accuracy is None and single.check.weak and "cannot be validated" in single.check.warning
    assert single.predict(x[:3]) == ["only"] * 3


def test_the_labeler_predicts_from_given_vectors_and_encodes_the_missing_ones() -> None:
    x, y = _blobs()
    texts = [f"t{i}" for i in range(len(x))]
    encoded: list[list[str]] = []

    def encode(batch: list[str]) -> np.ndarray:
        encoded.append(batch)
        return np.stack([x[int(t[1:])] for t in batch])

    labeler = Labeler(LabelModel(x, y, "label", seed=1), texts, x, encode)
    assert labeler.original("t0") == "neg" and labeler.original("t119") == "pos"
    got = labeler.predict(["t0", "t119", "t60"], [x[0], None, None])
    assert got == ["neg", "pos", "neu"] and encoded == [["t119", "t60"]]  # only the missing vectors are encoded
