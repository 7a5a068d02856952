"""Synthetic RoBERTa-style tokenizer and model for speed benchmarks (no download).

Speed does not depend on the weights or on which words are in the vocabulary, only on the
architecture and the sequence lengths, so benchmarks use random weights and a word-level
vocabulary of the real size: one word is one token, which makes sequence lengths exact.
"""

from __future__ import annotations

from typing import Any

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]

# Architectures by name (hidden size, layers, heads, feed-forward, vocabulary).
ROBERTA = {
    "roberta-large": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
                      "intermediate_size": 4096, "vocab_size": 50265},
    "roberta-base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                     "intermediate_size": 3072, "vocab_size": 50265},
    "tiny": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
             "intermediate_size": 128, "vocab_size": 1000},
}  # fmt: skip


def word_tokenizer(vocab_size: int) -> Any:
    """A word-level tokenizer with RoBERTa's special tokens and ``vocab_size`` entries.

    Words are ``w0``, ``w1``, ...; ``<mask>`` swallows the space before it, as RoBERTa's does.
    """
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    n_words = vocab_size - len(SPECIALS) - 1
    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    vocab.update({f"w{i}": len(SPECIALS) + i for i in range(n_words)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    mask = AddedToken("<mask>", lstrip=True, special=True)
    tok.add_special_tokens([mask])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token=mask,
    )


def random_roberta(arch: str, *, seed: int = 0, max_positions: int = 514) -> Any:
    """A ``RobertaForMaskedLM`` of the named architecture with random weights."""
    import torch
    from transformers import RobertaConfig, RobertaForMaskedLM

    torch.manual_seed(seed)
    config = RobertaConfig(
        **ROBERTA[arch], max_position_embeddings=max_positions, pad_token_id=1,
        bos_token_id=0, eos_token_id=2, type_vocab_size=1, layer_norm_eps=1e-5,
    )  # fmt: skip
    return RobertaForMaskedLM(config).eval()


def sentence(words: int, offset: int, vocab_words: int = 900) -> str:
    """A sentence of ``words`` distinct synthetic words."""
    return " ".join(f"w{10 + (offset * 7 + i) % vocab_words}" for i in range(words))


def encoder_flops_per_token(arch: str, seq_len: int) -> float:
    """Dense FLOPs of the encoder's matmuls per token (no MLM head).

    Per layer: Q, K, V and output projections (4 h^2 multiply-adds), the feed-forward
    (2 h f), and attention scores and mixing (2 L h); two FLOPs per multiply-add.
    """
    a = ROBERTA[arch]
    h, f, n = a["hidden_size"], a["intermediate_size"], a["num_hidden_layers"]
    return 2.0 * n * (4 * h * h + 2 * h * f + 2 * seq_len * h)


def head_flops(arch: str) -> float:
    """FLOPs of the MLM head for one position: dense h x h, then the h x V decoder."""
    a = ROBERTA[arch]
    h, v = a["hidden_size"], a["vocab_size"]
    return 2.0 * (h * h + h * v)
