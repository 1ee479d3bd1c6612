"""Adapter from an nlpaug augmenter (char or word family) to the `Augmenter` protocol."""

from __future__ import annotations

import importlib

from augshard.errors import MethodError
from augshard.methods.base import PerTextAugmenter, first_text, library_version
from augshard.methods.catalogue import MethodSpec

# nlpaug keeps its augmenters in two families; the catalogue names the class only.
FAMILIES = {
    "RandomCharAug": "nlpaug.augmenter.char",
    "KeyboardAug": "nlpaug.augmenter.char",
    "OcrAug": "nlpaug.augmenter.char",
    "RandomWordAug": "nlpaug.augmenter.word",
    "SynonymAug": "nlpaug.augmenter.word",
    "AntonymAug": "nlpaug.augmenter.word",
    "SpellingAug": "nlpaug.augmenter.word",
    "SplitAug": "nlpaug.augmenter.word",
}


class NlpaugAugmenter(PerTextAugmenter):
    """One nlpaug augmenter, built once per shard and called once per (text, seed)."""

    def __init__(self, spec: MethodSpec) -> None:
        super().__init__(spec, library_version("nlpaug"))
        module_name = FAMILIES.get(spec.kind)
        if module_name is None:
            raise MethodError(
                f"method '{spec.id}': nlpaug class '{spec.kind}' is not supported "
                f"(supported: {', '.join(sorted(FAMILIES))})"
            )
        cls = getattr(importlib.import_module(module_name), spec.kind)
        self._aug = cls(**spec.args)

    def _augment_one(self, text: str) -> str:
        return first_text(self._aug.augment(text), text)
