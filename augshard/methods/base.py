"""The one `Augmenter` protocol every library adapter implements, and per-call seeding."""

from __future__ import annotations

import random
import sys
from typing import Protocol

from augshard.methods.spec import MethodSpec


class Augmenter(Protocol):
    """Turns texts into one augmented candidate each; the same (text, seed) always gives the same output.

    A text the library cannot handle yields the exception in its place, so one odd row never costs a chunk.
    """

    spec: MethodSpec
    version: str

    def augment(self, texts: list[str], seeds: list[int]) -> list[str | Exception]: ...


def seed_everything(seed: int, torch_too: bool = True) -> None:
    """nlpaug and TextAttack draw from the global RNGs: seed them right before each call.

    torch is seeded only for the methods that draw from it (`torch_too`: the model methods); while CUDA is not
    initialised its CPU generator alone is seeded, which is what `torch.manual_seed` does there, without queueing
    a CUDA seeding call (with a stack trace: ~0.5 ms each) that nothing would use."""
    random.seed(seed)
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed(seed % (2**32))
    torch = sys.modules.get("torch")
    if torch is not None and torch_too:
        if torch.cuda.is_initialized():
            torch.manual_seed(seed)
        else:
            torch.random.default_generator.manual_seed(seed)


def batch_seed(seeds: list[int]) -> int:
    """One seed for a batch, from the seeds of its calls (a batched library draws for the batch as a whole)."""
    import hashlib

    blob = ",".join(map(str, seeds)).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "big")


class PerTextAugmenter:
    """Shared bookkeeping: seed, call the library on one text, keep its first output or its error."""

    def __init__(self, spec: MethodSpec, version: str) -> None:
        self.spec = spec
        self.version = version

    def _augment_one(self, text: str) -> str:  # pragma: no cover - implemented by adapters
        raise NotImplementedError

    def augment(self, texts: list[str], seeds: list[int]) -> list[str | Exception]:
        out: list[str | Exception] = []
        for text, seed in zip(texts, seeds, strict=True):
            seed_everything(seed, torch_too=self.spec.requires_gpu)
            try:
                out.append(self._augment_one(text))
            except Exception as exc:  # noqa: BLE001 - a library failure on one text is data, not a crash
                out.append(exc)
        return out


def first_text(result: object, original: str) -> str:
    """Libraries answer with a string, a list of strings, or nothing when no change was possible."""
    if isinstance(result, str):
        return result
    if isinstance(result, (list, tuple)):
        return str(result[0]) if result else original
    if result is None:
        return original
    raise TypeError(f"unexpected augmenter output of type {type(result).__name__}")
