"""Small randomly initialised models and a tokenizer built offline, for backend tests."""

from __future__ import annotations

from typing import Any

CORPUS = [
    "a fine film with a great cast . it was great .",
    "a dull movie , the plot was terrible and the acting bad .",
    "it was good , not bad , and the music was wonderful .",
    "the story is awful ; it was terrible from start to end .",
    "review : an excellent and moving picture . sentiment : positive",
    "review : a boring , tedious mess . sentiment : negative",
    "question ? yes , no , maybe . the answer is correct .",
    "terrific performances and a terrible script , great and grating .",
    "It was fine. This film is GOOD! Review: Sentiment:",
    "A B C D E F G H I J K L M N O P Q R S T U V W X Y Z",
]
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]
# Inputs for the backends' tests: short and long (long enough to be cut), words in and out of
# CORPUS.
TEXTS = [
    "a fine film",
    "a dull movie , the plot was terrible and the acting bad and the music was awful",
    "it was good",
    "the story is awful ; it was terrible from start to end , a boring , tedious mess",
    "wonderful",
]


def tiny_tokenizer(vocab_size: int = 400) -> Any:
    """A byte-level BPE tokenizer with RoBERTa's special tokens and post-processing.

    Its alphabet is only the characters of :data:`CORPUS`, so other characters (e.g. "Ω")
    become ``<unk>``, which real byte-level tokenizers never do but tests need.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    from tokenizers.trainers import BpeTrainer
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False)
    tok.train_from_iterator(CORPUS * 3, trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    mask = AddedToken("<mask>", lstrip=True, rstrip=False, special=True)
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


def legacy_llama_tokenizer() -> Any:
    """A SentencePiece-style BPE tokenizer that, like legacy Llama-2/Mistral, prepends ``▁``.

    As in those tokenizers' ``tokenizer.json``, the normalizer puts a ``▁`` before the text and
    turns spaces into ``▁``, so a label with a leading space tokenised on its own gets an extra
    token (``" great"`` is ``▁ ▁great``) that it does not have in context (``"it was great"``
    is ``▁it ▁was ▁great``). A ``<s>`` starts every sequence.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers.trainers import BpeTrainer
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    # Splitting before each ▁ keeps BPE merges within words, as SentencePiece's do.
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    specials = ["<unk>", "<s>", "</s>"]
    trainer = BpeTrainer(vocab_size=300, special_tokens=specials, show_progress=False)
    tok.train_from_iterator(CORPUS * 3, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


def _tiny_fields(tokenizer: Any) -> dict[str, Any]:
    """Config fields both tiny models share: two narrow layers, sized for ``tokenizer``."""
    return {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }


def tiny_mlm(tokenizer: Any, *, seed: int = 0, max_positions: int = 66) -> Any:
    """A randomly initialised ``RobertaForMaskedLM`` sized for ``tokenizer``'s vocabulary."""
    import torch
    from transformers import RobertaConfig, RobertaForMaskedLM

    torch.manual_seed(seed)
    config = RobertaConfig(max_position_embeddings=max_positions, **_tiny_fields(tokenizer))
    return RobertaForMaskedLM(config).eval()


def tiny_causal_lm(tokenizer: Any, *, seed: int = 0) -> Any:
    """A randomly initialised ``LlamaForCausalLM`` sized for ``tokenizer``'s vocabulary."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        num_key_value_heads=2, max_position_embeddings=128, **_tiny_fields(tokenizer)
    )
    return LlamaForCausalLM(config).eval()
