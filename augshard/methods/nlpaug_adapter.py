"""Adapter from an nlpaug augmenter (char, word, or contextual-embedding family) to the `Augmenter` protocol."""

from __future__ import annotations

import importlib

from augshard.errors import MethodError
from augshard.methods.base import PerTextAugmenter, batch_seed, first_text, method_version, seed_everything
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
    "ContextualWordEmbsAug": "nlpaug.augmenter.word",
}
BATCHED = {"ContextualWordEmbsAug"}


def _build(spec: MethodSpec, args: dict) -> object:
    module_name = FAMILIES.get(spec.kind)
    if module_name is None:
        raise MethodError(
            f"method '{spec.id}': nlpaug class '{spec.kind}' is not supported "
            f"(supported: {', '.join(sorted(FAMILIES))})"
        )
    return getattr(importlib.import_module(module_name), spec.kind)(**args)


class NlpaugAugmenter(PerTextAugmenter):
    """One nlpaug augmenter, built once per shard and called once per (text, seed)."""

    def __init__(self, spec: MethodSpec) -> None:
        super().__init__(spec, method_version(spec))
        self._aug = _build(spec, spec.args)

    def _augment_one(self, text: str) -> str:
        return first_text(self._aug.augment(text), text)


class BatchedNlpaugAugmenter:
    """A model-based nlpaug augmenter: one model call per batch of texts, the model loaded once per shard.

    nlpaug draws its random choices for a whole batch in sequence, so an output depends on the batch it was made
    in: the batch is seeded as a whole, and the pipeline keys its cache on the batch (`batch_dependent`).
    """

    batch_dependent = True

    def __init__(self, spec: MethodSpec, device: str = "auto") -> None:
        from augshard.methods.models import resolve_device, resolve_model

        self.spec = spec
        self.version = method_version(spec)
        args = spec.args
        self.batch_size = int(args.pop("batch_size", 32))
        args["model_path"] = resolve_model(spec.model_path or args.get("model_path", "roberta-base"))
        wanted = args.get("device", "auto")
        args["device"] = resolve_device(device if wanted == "auto" else wanted)
        self.device = args["device"]
        self._aug = _build(spec, {**args, "batch_size": self.batch_size})

    def augment(self, texts: list[str], seeds: list[int]) -> list[str | Exception]:
        out: list[str | Exception] = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            seed_everything(batch_seed(seeds[start : start + self.batch_size]))
            try:
                result = self._aug.augment(batch)
                if len(result) != len(batch):
                    raise RuntimeError(f"nlpaug returned {len(result)} outputs for {len(batch)} texts")
                out += [first_text(r, t) for r, t in zip(result, batch, strict=True)]
            except Exception as exc:  # noqa: BLE001 - the batch's rows fail, the combo goes on
                out += [exc] * len(batch)
        return out


def make(spec: MethodSpec, device: str = "auto") -> object:
    return BatchedNlpaugAugmenter(spec, device) if spec.kind in BATCHED else NlpaugAugmenter(spec)
