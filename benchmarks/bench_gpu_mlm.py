"""Throughput of the masked-LM scoring path on roberta-large's architecture (random weights).

Measures, on the same model and inputs:

- ``full``: plain transformers, MLM head over every position (``model(...).logits``);
- ``mask``: the encoder, then the MLM head only at the mask (what MaskedLMBackend computes);
- ``backend``: ``MaskedLMBackend.score`` end to end (tokenising, padding, scoring, results).

Each as tokens per second and as a fraction of the GPU's dense bf16 peak (989 TFLOP/s on H100
and H200 SXM), counting the encoder's matmuls (and the head where it is computed).

    python benchmarks/bench_gpu_mlm.py                  # GPU: bf16, batch 256, 128 tokens
    python benchmarks/bench_gpu_mlm.py --smoke          # any machine, tiny model, seconds

Needs torch, transformers and tokenizers; no download (the tokenizer is synthetic).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.synthetic import (
    ROBERTA,
    encoder_flops_per_token,
    head_flops,
    random_roberta,
    sentence,
    word_tokenizer,
)


def timed(fn: Callable[[], object], steps: int, warmup: int, sync: Callable[[], None]) -> float:
    """Seconds per call of ``fn``, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    sync()
    return (time.perf_counter() - t0) / steps


def sig(x: float) -> float:
    """``x`` to 4 significant digits (tiny CPU fractions of a GPU's peak stay non-zero)."""
    return float(f"{x:.4g}")


def main(argv: list[str] | None = None) -> dict[str, object]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", default="roberta-large", choices=sorted(ROBERTA))
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--tokens", type=int, default=128, help="tokens per sequence, specials included")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--dtype", default=None, help="default: bf16 on GPU, float32 on CPU")
    p.add_argument("--device", default="auto")
    p.add_argument("--peak-tflops", type=float, default=989.0)
    p.add_argument("--smoke", action="store_true", help="tiny model and sizes, to test the script")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    if args.smoke:
        args.arch, args.batch, args.tokens, args.steps, args.warmup = "tiny", 4, 24, 2, 1

    import torch

    from bdpl.backends import _hf
    from bdpl.backends.masked_lm import MaskedLMBackend
    from bdpl.types import Query

    device = _hf.resolve_device(args.device)
    dtype = _hf.resolve_dtype(args.dtype, device)
    arch = ROBERTA[args.arch]
    model = random_roberta(args.arch).to(device=device, dtype=dtype)
    tok = word_tokenizer(arch["vocab_size"])
    B, L = args.batch, args.tokens

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(10, arch["vocab_size"] - 1, (B, L), generator=g)
    ids[:, 0], ids[:, -1], ids[:, -3] = 0, 2, tok.mask_token_id
    ids = ids.to(device)
    attn = torch.ones_like(ids)
    rows = torch.arange(B, device=device)
    cols = torch.full((B,), L - 3, device=device)

    def full() -> object:
        with torch.inference_mode():
            logits = model(input_ids=ids, attention_mask=attn).logits
            return torch.log_softmax(logits[rows, cols].float(), dim=-1)

    def mask() -> object:
        with torch.inference_mode():
            hidden = model.base_model(input_ids=ids, attention_mask=attn).last_hidden_state
            return torch.log_softmax(model.lm_head(hidden[rows, cols]).float(), dim=-1)

    # Queries of exactly L tokens: <s> + 5 prompt words + sentence + 2 template words +
    # <mask> + 1 word + </s>.
    words = L - 11
    queries = []
    for i in range(B):
        prompt = sentence(5, 1000 + i) + " "
        text = sentence(words, i)
        before = prompt + text + " w5 w6"
        queries.append(
            Query(before, " w7", (" w1", " w2"), ((len(prompt), len(prompt) + len(text)),))
        )
    backend = MaskedLMBackend(model, tok, device=str(device), dtype=dtype, batch_size=B,
                              max_input_tokens=None)  # fmt: skip
    assert backend.estimate(queries).prompt_tokens == B * L

    def score() -> object:
        return backend.score(queries)

    enc = encoder_flops_per_token(args.arch, L) * B * L
    flops = {"full": enc + head_flops(args.arch) * B * L, "mask": enc + head_flops(args.arch) * B,
             "backend": enc + head_flops(args.arch) * B}  # fmt: skip
    results: dict[str, object] = {
        "arch": args.arch, "batch": B, "tokens": L, "dtype": str(dtype).removeprefix("torch."),
        "device": torch.cuda.get_device_name() if device.type == "cuda" else device.type,
        "peak_tflops": args.peak_tflops,
    }  # fmt: skip
    for name, fn in (("full", full), ("mask", mask), ("backend", score)):
        sec = timed(fn, args.steps, args.warmup, sync)
        tflops = flops[name] / sec / 1e12
        results[name] = {
            "tokens_per_s": round(B * L / sec),
            "tflops": sig(tflops),
            "fraction_of_peak": sig(tflops / args.peak_tflops),
            "encoder_fraction_of_peak": sig(enc / sec / 1e12 / args.peak_tflops),
        }
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
