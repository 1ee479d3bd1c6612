"""augshard draws TextAttack candidates one at a time; every output must equal TextAttack's own loop's output."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import sample_rows

from augshard.methods import build_method, check_method, load_catalogue, seed_everything
from augshard.methods.base import first_text
from augshard.methods.textattack_adapter import TextAttackAugmenter

REPO = Path(__file__).resolve().parents[1]
CATALOGUE = load_catalogue(REPO / "conf" / "augment_methods.yaml")
TA_METHODS = sorted(m for m, s in CATALOGUE.items() if s.lib == "textattack")
# Real sentences of the shipped sample, plus the short and odd ones that take the early exits.
TEXTS = [r["evidence"] for r in sample_rows(25)] + ["Yes.", "I am fine, it is not bad.", "word", "a b"]


@pytest.mark.parametrize("method_id", TA_METHODS)
def test_one_at_a_time_equals_textattacks_own_loop(method_id: str) -> None:
    spec = CATALOGUE[method_id]
    status = check_method(spec)
    if not status.ok:
        pytest.skip(f"{method_id} is unavailable here: {status.reason}")
    method = build_method(spec)
    assert isinstance(method, TextAttackAugmenter)
    assert method._draw_one  # the fast path is what runs
    changed = 0
    for text in TEXTS:
        for seed in (1, 2, 3):
            seed_everything(seed)
            fast = method._augment_one(text)
            seed_everything(seed)
            stock = first_text(method._aug.augment(text), text)
            assert fast == stock, (method_id, text, seed)
            changed += fast != text
    assert changed > 0  # the comparison is not between two no-ops
