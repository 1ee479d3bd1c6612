"""Adapter from an nlpaug augmenter (char, word, or contextual-embedding family) to the `Augmenter` protocol."""

from __future__ import annotations

from augshard.methods.base import PerTextAugmenter, batch_seed, first_text, seed_everything
from augshard.methods.models import resolve_device, resolve_model
from augshard.methods.registry import Batching, Family, import_class, method_version
from augshard.methods.spec import MethodSpec


def _build(fam: Family, args: dict) -> object:
    return import_class(fam)(**args)


class NlpaugAdapter:
    """Builds any registered nlpaug family: per text, or per batch for a family that batches (model methods)."""

    @staticmethod
    def build(spec: MethodSpec, fam: Family, device: str = "auto") -> object:
        return BatchedNlpaugAugmenter(spec, fam, device) if fam.batching else NlpaugAugmenter(spec, fam)


class NlpaugAugmenter(PerTextAugmenter):
    """One nlpaug augmenter, built once per shard and called once per (text, seed)."""

    def __init__(self, spec: MethodSpec, fam: Family) -> None:
        super().__init__(spec, method_version(spec))
        self._aug = _build(fam, spec.args)

    def _augment_one(self, text: str) -> str:
        return first_text(self._aug.augment(text), text)


class BatchedNlpaugAugmenter:
    """A model-based nlpaug augmenter: one model call per batch of texts, the model loaded once per shard.

    nlpaug draws its random choices for a whole batch in sequence, so an output depends on the batch it was made
    in: the batch is seeded as a whole, and the pipeline keys its cache on the batch (`batch_dependent`).
    """

    batch_dependent = True

    def __init__(self, spec: MethodSpec, fam: Family, device: str = "auto") -> None:
        batching = fam.batching or Batching("batch_size", 32)
        self.spec = spec
        self.version = method_version(spec)
        args = spec.args
        self.batch_size = int(args.pop(batching.arg, batching.default))
        if fam.model_arg:
            args[fam.model_arg] = resolve_model(fam.model(spec))
        wanted = args.get("device", "auto")
        args["device"] = resolve_device(device if wanted == "auto" else wanted)
        self.device = args["device"]
        self._aug = _build(fam, {**args, batching.arg: self.batch_size})

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
