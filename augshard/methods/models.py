"""Local models and data files for the model-based methods: resolve them offline, or say exactly what is missing."""

from __future__ import annotations

import os
from pathlib import Path

from augshard.core.errors import MethodError
from augshard.shard.encoders import resolve_device as decide

HOMOGLYPH_FILE = "intentional_homoglyphs.txt"


class MethodUnavailable(MethodError):
    """A method that cannot run here, with the fix a user should apply."""

    def __init__(self, reason: str, fix: str) -> None:
        super().__init__(reason)
        self.fix = fix


def resolve_model(name_or_path: str, what: str = "model") -> str:
    """A local directory as given, else the Hugging Face cache's copy of a hub name; never a download."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return str(path)
    if name_or_path.startswith((".", "/", "~")) or os.sep in name_or_path and path.parent.is_dir():
        raise MethodUnavailable(
            f"{what} directory {path} not found",
            "set model_path in the catalogue to a directory written by save_pretrained",
        )
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(name_or_path, local_files_only=True)
    except Exception:  # noqa: BLE001 - any failure means: not available offline
        raise MethodUnavailable(
            f"{what} '{name_or_path}' not found locally (nothing downloads at run time)",
            f"set model_path in the catalogue to a local copy, or populate the Hugging Face cache "
            f"(`huggingface-cli download {name_or_path}` on a connected machine, HF_HUB_CACHE={_hub_cache()})",
        ) from None


def _hub_cache() -> str:
    return os.environ.get("HF_HUB_CACHE") or str(Path("~/.cache/huggingface/hub").expanduser())


def resolve_device(device: str) -> str:
    """A model method's device: one it names is used as it is; `auto` is decided as the run decides `--device auto`
    (CUDA when torch sees a GPU, else the CPU)."""
    if device != "auto":
        return device

    return decide("auto")


def model_max_positions(path: str) -> int | None:
    """The number of positions a local transformers model takes (TextAttack must not ask for more)."""
    import json

    config = Path(path) / "config.json"
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    positions = data.get("max_position_embeddings")
    if positions and data.get("model_type") in ("roberta", "xlm-roberta", "camembert"):
        positions -= 2  # RoBERTa reserves two positions for the padding offset
    return positions


def homoglyph_file() -> Path:
    """Where TextAttack 0.3.11's WordSwapHomoglyphSwap reads its (unshipped) homoglyph table."""
    import importlib.util

    spec = importlib.util.find_spec("textattack")
    if spec is None or spec.origin is None:
        raise MethodUnavailable("Python package 'textattack' is not installed", "pip install textattack==0.3.11")
    return Path(spec.origin).parent / "shared" / HOMOGLYPH_FILE
