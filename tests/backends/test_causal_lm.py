"""CausalLMBackend: a tiny random Llama (always) and the real SmolLM2 weights (marked ``model``)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from bdpl.errors import ConfigError
from bdpl.tasks import Example, Task
from bdpl.types import Query, is_trailing_punctuation
from tests.backends.tiny_models import TEXTS, legacy_llama_tokenizer, tiny_causal_lm, tiny_tokenizer

torch = pytest.importorskip("torch")

from bdpl.backends.causal_lm import CausalLMBackend  # noqa: E402

REVIEW = Task("sst2-review", "Review: <s1> Sentiment: <slot>", {"0": "negative", "1": "positive"})


def reference(model: Any, tok: Any, before: str, cont: str) -> float:
    """log p(cont | before) from the full logits of the unpadded, plainly tokenised text."""
    # The tokenizer's own encoding, less any special tokens it appends (nothing follows a label).
    n = _prefix_len(tok) + len(tok(before, add_special_tokens=False)["input_ids"])
    ctx = tok(before)["input_ids"][:n]
    c = tok(cont, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([ctx + c])
    with torch.no_grad():
        lp = torch.log_softmax(model(input_ids=ids).logits[0].double(), dim=-1)
    return sum(float(lp[len(ctx) - 1 + j, t]) for j, t in enumerate(c))


def _prefix_len(tok: Any) -> int:
    full = tok("hello")["input_ids"]
    plain = tok("hello", add_special_tokens=False)["input_ids"]
    return full.index(plain[0])


def queries(prompt: list[str] | None = None) -> list[Query]:
    return [REVIEW.render(prompt or [], Example(t)) for t in TEXTS]


def check_against_reference(
    backend: CausalLMBackend, model: Any, tok: Any, qs: list[Query], abs: float = 1e-5
) -> None:
    for q, got in zip(qs, backend.score(qs), strict=True):
        tail = "" if is_trailing_punctuation(q.after) else q.after
        want = [reference(model, tok, q.before, lab + tail) for lab in q.labels]
        assert got.logprobs == pytest.approx(want, abs=abs)


def check_batching(backend: CausalLMBackend, qs: list[Query], abs: float = 1e-5) -> None:
    batched = backend.score(qs)
    for q, b in zip(qs, batched, strict=True):
        (single,) = backend.score([q])
        assert b.logprobs == pytest.approx(single.logprobs, abs=abs)


# --- tiny random Llama: fast, always run -------------------------------------------------


@pytest.fixture(scope="module")
def tiny(lm: Any, tok: Any) -> CausalLMBackend:
    return CausalLMBackend(lm, tok, device="cpu", batch_size=3)


def test_tiny_next_token_scores_equal_reference(tiny: CausalLMBackend, lm: Any, tok: Any) -> None:
    qs = [Query(q.before, ".", (" bad", " good")) for q in queries(["great"])]
    check_against_reference(tiny, lm, tok, qs)


def test_tiny_continuations_equal_reference(tiny: CausalLMBackend, lm: Any, tok: Any) -> None:
    labels = (" terrific", " great")  # " terrific" is two tokens here
    assert len(tok(" terrific", add_special_tokens=False)["input_ids"]) == 2
    qs = [Query(q.before, ".", labels) for q in queries()]
    qs.append(Query("it was", " and the film too.", labels))
    check_against_reference(tiny, lm, tok, qs)


def test_tiny_mixed_batches_equal_one_at_a_time(tiny: CausalLMBackend) -> None:
    qs = [Query(q.before, "", (" bad", " good")) for q in queries()]
    qs += [Query(q.before, "", (" terrific", " great")) for q in queries(["wonderful"])]
    check_batching(tiny, qs)


def test_left_and_right_padding_agree(lm: Any, tok: Any) -> None:
    left = CausalLMBackend(lm, tok, device="cpu", batch_size=4)
    right = CausalLMBackend(lm, tok, device="cpu", batch_size=4)
    right._left_pad = False  # the right-padding path, on a model that could pad left
    assert left.left_pad
    qs = [Query(q.before, "", (" terrific", " great", " bad")) for q in queries()]
    qs += [Query(q.before, "", (" bad", " good")) for q in queries()]
    for a, b in zip(left.score(qs), right.score(qs), strict=True):
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-5)


def test_next_token_path_equals_continuation_path(tiny: CausalLMBackend) -> None:
    q = queries()[1]
    fast = tiny.score([Query(q.before, "", (" bad", " good"))])[0]
    slow = tiny.score([Query(q.before, "", (" bad", " good", " terrific"))])[0]
    assert fast.usage.requests == 1 and fast.logprobs == pytest.approx(slow.logprobs[:2], abs=1e-5)


def test_usage_counts_tokens_and_forward_passes(tiny: CausalLMBackend, tok: Any) -> None:
    qs = [Query(q.before, "", (" bad", " good")) for q in queries()]
    got = tiny.score(qs)
    prefix = _prefix_len(tok)
    assert [s.usage.prompt_tokens for s in got] == [
        prefix + len(tok(q.before, add_special_tokens=False)["input_ids"]) for q in qs
    ]
    assert sum(s.usage.requests for s in got) == 2
    est = tiny.estimate(qs)
    assert (est.prompt_tokens, est.requests) == (sum(s.usage.prompt_tokens for s in got), 2)


def test_truncation_cuts_only_the_input(lm: Any, tok: Any) -> None:
    backend = CausalLMBackend(lm, tok, device="cpu", max_input_tokens=4)
    long = "a dull movie , the plot was terrible and the acting bad"
    q = REVIEW.render(["great"], Example(long))
    cut = tok.decode(tok(long, add_special_tokens=False)["input_ids"][:4])
    short = REVIEW.render(["great"], Example(cut))
    assert backend._plan([q]).rows == backend._plan([short]).rows
    assert backend.score([q])[0].logprobs == pytest.approx(backend.score([short])[0].logprobs)


def test_unknown_label_is_a_config_error(tiny: CausalLMBackend) -> None:
    with pytest.raises(ConfigError, match="cannot represent"):
        tiny.score([Query("it was", "", (" good", " Ωmega"))])


def in_context_reference(model: Any, tok: Any, before: str, cont: str) -> float:
    """log p(cont | before) with cont's tokens as ``tok(before + cont)`` has them after before."""
    ctx = tok(before)["input_ids"]
    full = tok(before + cont)["input_ids"]
    assert full[: len(ctx)] == ctx  # the premise: no merge across the boundary
    ids = torch.tensor([full])
    with torch.no_grad():
        lp = torch.log_softmax(model(input_ids=ids).logits[0].double(), dim=-1)
    return sum(float(lp[j - 1, full[j]]) for j in range(len(ctx), len(full)))


@pytest.fixture(scope="module")
def legacy_tok() -> Any:
    return legacy_llama_tokenizer()


def test_legacy_sentencepiece_labels_use_their_tokens_in_context(legacy_tok: Any) -> None:
    tok = legacy_tok
    model = tiny_causal_lm(tok)
    backend = CausalLMBackend(model, tok, device="cpu", batch_size=4)
    # The premise: alone " great" gets an extra "▁" token that it does not have in context.
    assert tok.convert_ids_to_tokens(tok(" great", add_special_tokens=False)["input_ids"]) == [
        "▁",
        "▁great",
    ]
    assert tok.convert_ids_to_tokens(tok("it was great")["input_ids"])[-1] == "▁great"
    fast = [Query(q.before, ".", (" bad", " great")) for q in queries()]
    got = backend.score(fast)
    assert sum(s.usage.requests for s in got) == 2  # one token each in context: next-token path
    slow = [Query(q.before, "", (" bad", " great", " superb")) for q in queries()[:3]]
    slow.append(Query("it was", " and the film too.", (" bad", " great")))
    got += backend.score(slow)
    for q, s in zip(fast + slow, got, strict=True):
        text = "" if is_trailing_punctuation(q.after) else q.after
        want = [in_context_reference(model, tok, q.before, lab + text) for lab in q.labels]
        assert s.logprobs == pytest.approx(want, abs=1e-5)
        assert s.exact


def test_label_merged_with_the_text_before_is_scored_in_context_and_not_exact(
    tiny: CausalLMBackend, lm: Any, tok: Any
) -> None:
    # "it was gre" ends in " g" "re", but "it was gre" + "at" is "it" " was" " great".
    before, labels = "it was gre", ("at", " bad")
    full = tok(before + "at", add_special_tokens=False)["input_ids"]
    assert tok(before, add_special_tokens=False)["input_ids"][:3] != full  # the premise
    got = tiny.score([Query(before, ".", labels)])[0]
    assert not got.exact
    # "at" is scored as " great" after "it was", the tokens from where the two differ.
    merged = reference(lm, tok, "it was", " great")
    assert got.logprobs == pytest.approx([merged, reference(lm, tok, before, " bad")], abs=1e-5)
    assert tiny.score([Query("it was", ".", (" great", " bad"))])[0].exact


def test_identity_includes_the_tokenizer(lm: Any, tok: Any, legacy_tok: Any) -> None:
    a = CausalLMBackend(lm, tok, device="cpu")
    assert a.identity == CausalLMBackend(lm, tok, device="cpu").identity
    assert a.identity == CausalLMBackend(lm, tiny_tokenizer(), device="cpu").identity
    assert a.identity != CausalLMBackend(lm, tiny_tokenizer(vocab_size=250), device="cpu").identity
    assert a.identity != CausalLMBackend(lm, legacy_tok, device="cpu").identity


def test_identity_and_options(lm: Any, tok: Any, tiny: CausalLMBackend) -> None:
    other = CausalLMBackend(tiny_causal_lm(tok, seed=1), tok, device="cpu")
    assert tiny.identity.startswith("causal_lm:LlamaForCausalLM:")
    assert tiny.identity != other.identity
    caps = tiny.capabilities
    assert caps.is_local and caps.max_concurrency == 1 and caps.pair_separator == "\n"
    assert caps.max_batch_size == 24  # 8 forward passes' worth, sorted by length together
    assert caps.model == "LlamaForCausalLM"
    assert CausalLMBackend(lm, tok, device="cpu", max_batch_size=5).max_batch_size == 5
    with pytest.raises(ConfigError):
        CausalLMBackend(lm, tok, batch_size=0)
    with pytest.raises(ConfigError):
        CausalLMBackend(lm, tok, max_batch_size=0)


# --- the real SmolLM2 weights ------------------------------------------------------------


@pytest.fixture(scope="module")
def smol() -> CausalLMBackend:
    return CausalLMBackend(device="cpu", batch_size=16)


@pytest.mark.model
def test_smollm2_scores_equal_reference_and_batch_exactly_in_float64() -> None:
    """In float64 padding and batching change nothing beyond 1e-5."""
    smol64 = CausalLMBackend(device="cpu", dtype="float64", batch_size=16)
    model, tok = smol64._model, smol64._tokenizer
    assert smol64.model == "SmolLM2-135M-Instruct"
    assert smol64.identity.startswith("causal_lm:SmolLM2-135M-Instruct:")
    assert smol64.identity.endswith(":float64")
    qs = queries(["great"])
    multi = [Query(q.before, "", (" negative", " positive", " so-so")) for q in qs]
    check_against_reference(smol64, model, tok, qs[:3] + multi[:2], abs=1e-5)
    check_batching(smol64, qs + multi)


@pytest.mark.model
def test_smollm2_float32_batching_is_within_rounding(smol: CausalLMBackend) -> None:
    """In float32 a padded batch differs from one at a time by rounding only (~1e-5)."""
    qs = queries(["great"])
    multi = [Query(q.before, "", (" negative", " positive", " so-so")) for q in qs]
    check_against_reference(smol, smol._model, smol._tokenizer, qs[:2] + multi[:1], abs=5e-5)
    check_batching(smol, qs + multi, abs=5e-5)


@pytest.mark.model
def test_smollm2_review_template_is_accurate_on_sst2(smol: CausalLMBackend, data_dir: Path) -> None:
    with open(data_dir / "SST-2" / "k-shot" / "test.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[:200]
    examples = [Example(r["sentence"], label=r["label"]) for r in rows]
    scores = smol.score([REVIEW.render([], e) for e in examples])
    correct = sum(
        max(range(2), key=lambda i: s.logprobs[i]) == REVIEW.label_index(e)
        for s, e in zip(scores, examples, strict=True)
    )
    assert correct / len(examples) >= 0.70


@pytest.mark.model
def test_a_gguf_file_loads_directly_and_scores_like_its_conversion(smol: CausalLMBackend) -> None:
    from bdpl.embedded import embedded_gguf_path

    gguf = embedded_gguf_path()
    direct = CausalLMBackend(gguf, device="cpu")
    assert direct.model == str(gguf)
    assert direct.identity.startswith(f"causal_lm:{gguf}:")
    qs = queries()[:3]
    for a, b in zip(direct.score(qs), smol.score(qs), strict=True):
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-5)
