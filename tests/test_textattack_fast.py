"""augshard draws TextAttack candidates one at a time; every output must equal TextAttack's own loop's output."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import sample_rows

from augshard.methods import build_method, check_method, load_catalogue, seed_everything
from augshard.methods.base import first_text
from augshard.methods.textattack_adapter import TextAttackAugmenter, TextAttackMaskedLM

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
    from textattack.shared import attacked_text
    from textattack.shared.utils import words_from_text

    assert attacked_text.words_from_text.remembered  # and with TextAttack's word splits remembered
    changed = 0
    for text in TEXTS:
        for seed in (1, 2, 3):
            seed_everything(seed)
            fast = method._augment_one(text)
            seed_everything(seed)
            with pytest.MonkeyPatch.context() as mp:  # TextAttack's own word split, not the remembered one
                mp.setattr(attacked_text, "words_from_text", words_from_text)
                stock = first_text(method._aug.augment(text), text)
            assert fast == stock, (method_id, text, seed)
            changed += fast != text
    assert changed > 0  # the comparison is not between two no-ops


def test_remembered_word_splits_are_textattacks_and_fresh_lists() -> None:
    build_method(CATALOGUE["ta_wordswap_qwerty"])
    from textattack.shared import attacked_text
    from textattack.shared.utils import words_from_text

    remembered = attacked_text.words_from_text
    assert remembered.remembered and remembered is not words_from_text
    texts = TEXTS + ["", "  ", "'quoted' don't co-op *x* @me", "Ünïcode — dashes… 'n' stuff", "l0ok ɑt ｍe"]
    for text in texts:
        for ignore in ([], ["the", "i"]):
            expected = words_from_text(text, ignore)
            first = remembered(text, ignore)
            assert first == expected and remembered(text, ignore) == expected  # computed, then remembered
            first.append("mutated")  # a caller changing its list changes no later answer
            assert remembered(text, ignore) == expected
    assert remembered("I am the one") == words_from_text("I am the one")  # the default words_to_ignore


@pytest.mark.slow
def test_masked_lm_batches_equal_textattacks_own_loop(tiny_catalogue: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ta_mlm_* (BAE) runs through `TextAttackMaskedLM`: per batch of texts_per_batch texts, one model pass over
    every masked word of all of them (`prefetch`), then per text `seed_everything(seed)` and TextAttack's search,
    reading predictions from there (a later swap of a longer text calls the model again). TextAttack's own loop
    seeds and augments one text at a time, with model batches of that text's masked words only.

    The two must agree output for output: the model sees each masked text alone in its row, padded to max_length
    either way, so only the batch-mates differ. On the CPU a row's logits do not depend on its batch-mates, so
    equality is exact, and that is what runs here (the device is pinned to the CPU). On a GPU the kernels chosen
    for another batch shape may move the last bits of a logit, which is why the method is `batch_dependent`.
    """
    import json

    import torch

    spec = load_catalogue(tiny_catalogue)["ta_mlm_sub_tiny"]
    method = build_method(spec)  # sets the offline environment textattack needs before its import
    assert isinstance(method, TextAttackMaskedLM) and method._draw_one
    from textattack.augmentation import Augmenter
    from textattack.constraints.pre_transformation import RepeatModification, StopwordModification
    from textattack.shared import utils
    from textattack.shared.utils import set_seed
    from textattack.transformations import WordSwapMaskedLM

    monkeypatch.setattr(utils, "device", torch.device("cpu"))
    method._aug.transformation._language_model.to(utils.device)
    args = spec.args
    config = json.loads((Path(spec.model_path) / "config.json").read_text(encoding="utf-8"))
    own = Augmenter(
        transformation=WordSwapMaskedLM(
            method="bae", masked_language_model=spec.model_path, max_candidates=args["max_candidates"],
            min_confidence=args["min_confidence"], batch_size=args["batch_size"],
            max_length=config["max_position_embeddings"],  # TextAttack's default 512 is more than it takes
        ),
        constraints=[RepeatModification(), StopwordModification()],
        pct_words_to_swap=args["pct_words_to_swap"],
        transformations_per_example=1,
    )  # fmt: skip
    # Short real sentences (one swap), one 38-word text (three swaps: the model is called again mid-search),
    # and odd ones; 10 texts make a full batch of 8 and a partial one.
    rows = sample_rows(6)
    texts = [r["evidence"] for r in rows] + [rows[0]["text"], "Yes.", "I am fine, it is not bad.", "word"]
    seeds = [1000 + 7 * i for i in range(len(texts))]
    model_calls: list[str] = []
    for name, transformation in (("batched", method._aug.transformation), ("own", own.transformation)):
        transformation._language_model.register_forward_pre_hook(lambda *_, name=name: model_calls.append(name))

    batched = method.augment(texts, seeds)
    stock = []
    for text, seed in zip(texts, seeds, strict=True):
        set_seed(seed)
        stock.append(first_text(own.augment(text), text))

    assert batched == stock
    # Every text has a word outside the stopword list, and min_confidence 0 accepts every prediction.
    assert all(out != text for out, text in zip(batched, texts, strict=True)), batched
    assert 0 < model_calls.count("batched") < model_calls.count("own")  # the model really ran across texts
