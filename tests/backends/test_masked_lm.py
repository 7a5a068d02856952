"""MaskedLMBackend on a small randomly initialised RoBERTa (no download)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from bdpl.errors import ConfigError
from bdpl.tasks import Example, Task
from bdpl.types import Query
from tests.backends.tiny_models import TEXTS, tiny_mlm, tiny_tokenizer

torch = pytest.importorskip("torch")

from bdpl.backends.masked_lm import MaskedLMBackend  # noqa: E402

LABELS = (" terrible", " great")
SST2 = Task("sst2", "<s1> It was <slot>.", {"0": "terrible", "1": "great"})


@pytest.fixture(scope="module")
def backend(mlm: Any, tok: Any) -> MaskedLMBackend:
    return MaskedLMBackend(mlm, tok, device="cpu", batch_size=3)


def queries(prompt: list[str] | None = None) -> list[Query]:
    return [SST2.render(prompt or [], Example(t)) for t in TEXTS]


def reference(mlm: Any, tok: Any, q: Query, label_ids: list[int]) -> list[float]:
    """Full-model logits on the plainly tokenised text, log-softmax at the mask."""
    text = q.before + (" " if q.labels[0].startswith(" ") else "") + tok.mask_token + q.after
    ids = tok(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = mlm(input_ids=ids).logits[0]
    pos = int((ids[0] == tok.mask_token_id).nonzero()[0, 0])
    lp = torch.log_softmax(logits[pos], dim=-1)
    return [float(lp[i]) for i in label_ids]


def test_scores_equal_log_softmax_at_the_mask(backend: MaskedLMBackend, mlm: Any, tok: Any) -> None:
    ids = [tok(w, add_special_tokens=False)["input_ids"][0] for w in LABELS]
    for q, got in zip(
        queries(["great", "good"]), backend.score(queries(["great", "good"])), strict=True
    ):
        assert got.logprobs == pytest.approx(reference(mlm, tok, q, ids), abs=1e-5)
        assert got.exact


def test_mask_swallows_the_label_space_like_roberta(tok: Any) -> None:
    """The text the reference tokenises has the mask where the label's token would be."""
    a = tok("it was <mask>.")["input_ids"]
    b = tok("it was great.")["input_ids"]
    assert len(a) == len(b)
    assert a.index(tok.mask_token_id) == b.index(
        tok(" great", add_special_tokens=False)["input_ids"][0]
    )


def test_head_only_at_mask_equals_full_head(mlm: Any, tok: Any) -> None:
    fast = MaskedLMBackend(mlm, tok, device="cpu")
    full = MaskedLMBackend(mlm, tok, device="cpu")
    full._head_only = False  # the full-head path, on a model whose head is known
    assert fast.head_only
    for a, b in zip(fast.score(queries()), full.score(queries()), strict=True):
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-5)


def test_mixed_length_batch_equals_one_at_a_time(backend: MaskedLMBackend) -> None:
    qs = queries(["wonderful"])
    batched = backend.score(qs)
    for q, b in zip(qs, batched, strict=True):
        (single,) = backend.score([q])
        assert b.logprobs == pytest.approx(single.logprobs, abs=1e-5)


def test_usage_counts_tokens_and_forward_passes(backend: MaskedLMBackend, tok: Any) -> None:
    qs = queries()
    got = backend.score(qs)
    texts = [q.before + " <mask>" + q.after for q in qs]
    assert [s.usage.prompt_tokens for s in got] == [len(tok(t)["input_ids"]) for t in texts]
    assert sum(s.usage.requests for s in got) == 2  # 5 queries, batch_size 3
    total = backend.estimate(qs)
    assert total.prompt_tokens == sum(s.usage.prompt_tokens for s in got)
    assert total.requests == 2
    assert backend.score([]) == []


def test_truncation_keeps_prompt_template_and_mask(mlm: Any, tok: Any) -> None:
    backend = MaskedLMBackend(mlm, tok, device="cpu", max_input_tokens=6)
    long = "a dull movie , the plot was terrible and the acting bad"
    q = SST2.render(["great", "fine"], Example(long))
    cut_text = tok.decode(tok(long, add_special_tokens=False)["input_ids"][:6])
    short = SST2.render(["great", "fine"], Example(cut_text))
    assert backend.score([q])[0].logprobs == pytest.approx(backend.score([short])[0].logprobs)
    _, rows, starts, _ = backend._plan([q])
    row = rows[0]
    assert tok.decode(row, skip_special_tokens=False) == (
        "<s>great fine " + cut_text + " It was<mask>.</s>"
    )
    assert row[starts[0]] == tok.mask_token_id


def test_pair_inputs_share_the_budget_evenly(mlm: Any, tok: Any) -> None:
    pair = Task("p", "<s1> <sep> <s2>? <slot>,", {"0": "no", "1": "yes"})
    backend = MaskedLMBackend(mlm, tok, device="cpu", max_input_tokens=8)
    a = "the story is awful ; it was terrible from start to end"
    b = "a fine film with a great cast . it was great"
    q = pair.render(["good"], Example(a, b), separator=backend.pair_separator)
    cut = [tok.decode(tok(t, add_special_tokens=False)["input_ids"][:4]) for t in (a, b)]
    expected = pair.render(["good"], Example(*cut), separator=backend.pair_separator)
    assert backend._plan([q])[1] == backend._plan([expected])[1]


def test_model_length_limit_cuts_only_the_input(mlm: Any, tok: Any) -> None:
    backend = MaskedLMBackend(mlm, tok, device="cpu", max_input_tokens=None, max_length=20)
    q = SST2.render(["great"], Example(" ".join(TEXTS)))
    (row,) = backend._plan([q])[1]
    assert len(row) == 20
    assert tok.decode(row).startswith("<s>great a fine film")
    assert tok.decode(row).endswith(" It was<mask>.</s>")


def test_prompt_too_long_for_the_model_is_a_clear_error(mlm: Any, tok: Any) -> None:
    from bdpl.errors import UnsupportedQueryError

    backend = MaskedLMBackend(mlm, tok, device="cpu", max_length=8)
    q = SST2.render(["great"] * 10, Example("fine"))
    with pytest.raises(UnsupportedQueryError, match="takes 8"):
        backend.score([q])


def test_unknown_label_word_is_a_config_error(backend: MaskedLMBackend) -> None:
    with pytest.raises(ConfigError, match="cannot represent"):
        backend.label_token_ids((" great", " Ωmega"))
    with pytest.raises(ConfigError, match="cannot represent"):
        backend.score([Query("it was", ".", (" great", " Ωmega"))])


def test_first_policy_rejects_labels_sharing_a_first_subtoken(mlm: Any, tok: Any) -> None:
    labels = (" greatly", " great")
    ids = [tok(w, add_special_tokens=False)["input_ids"] for w in labels]
    assert ids[0][0] == ids[1][0] and len(ids[0]) > 1  # the premise of this test
    backend = MaskedLMBackend(mlm, tok, device="cpu")
    with pytest.raises(ConfigError, match="share their first sub-token"):
        backend.label_token_ids(labels)


@pytest.mark.parametrize("policy", ["mean", "sum"])
def test_multi_token_policies_use_one_mask_per_subtoken(mlm: Any, tok: Any, policy: str) -> None:
    labels = (" terrific", " great")
    backend = MaskedLMBackend(mlm, tok, device="cpu", label_token_policy=policy)  # type: ignore[arg-type]
    q = Query("a fine film . it was", ".", labels)
    got = backend.score([q])[0].logprobs
    for label, value in zip(labels, got, strict=True):
        ids = tok(label, add_special_tokens=False)["input_ids"]
        text = q.before + " " + tok.mask_token * len(ids) + q.after
        enc = tok(text, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            lp = torch.log_softmax(mlm(input_ids=enc).logits[0], dim=-1)
        pos = (enc[0] == tok.mask_token_id).nonzero()[:, 0].tolist()
        vals = [float(lp[p, t]) for p, t in zip(pos, ids, strict=True)]
        want = sum(vals) / len(vals) if policy == "mean" else sum(vals)
        assert value == pytest.approx(want, abs=1e-5)


@pytest.mark.parametrize("policy", ["first", "mean", "sum"])
def test_exact_only_when_every_label_is_one_subtoken(mlm: Any, tok: Any, policy: str) -> None:
    """A several-sub-token label gets a bound (first) or no log-probability (mean, sum)."""
    assert len(tok(" terrific", add_special_tokens=False)["input_ids"]) == 2  # the premise
    backend = MaskedLMBackend(mlm, tok, device="cpu", label_token_policy=policy)  # type: ignore[arg-type]
    single, multi = backend.score(
        [Query("it was", ".", LABELS), Query("it was", ".", (" terrific", " bad"))]
    )
    assert single.exact and not multi.exact


def test_identity_includes_the_tokenizer(mlm: Any, tok: Any) -> None:
    a = MaskedLMBackend(mlm, tok, device="cpu")
    assert a.identity == MaskedLMBackend(mlm, tiny_tokenizer(), device="cpu").identity
    assert a.identity != MaskedLMBackend(mlm, tiny_tokenizer(vocab_size=250), device="cpu").identity


def test_identity_names_model_weights_and_settings(mlm: Any, tok: Any) -> None:
    a = MaskedLMBackend(mlm, tok, device="cpu")
    other = tiny_mlm(tok, seed=1)
    b = MaskedLMBackend(other, tok, device="cpu")
    c = MaskedLMBackend(mlm, tok, device="cpu", max_input_tokens=200)
    assert a.identity.startswith("masked_lm:RobertaForMaskedLM:")
    assert a.identity.endswith(":first:400:float32")
    assert len({a.identity, b.identity, c.identity}) == 3
    assert a.identity == MaskedLMBackend(mlm, tok, device="cpu").identity
    caps = a.capabilities
    assert caps.is_local and caps.max_concurrency == 1 and caps.pair_separator == "</s>"
    assert a.max_batch_size == 8 * 32


def test_weights_hash_of_a_saved_folder_hashes_its_files(mlm: Any, tok: Any, tmp_path: Any) -> None:
    mlm.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded = MaskedLMBackend(tmp_path, device="cpu")
    assert loaded.model == str(tmp_path)
    assert loaded.identity.startswith(f"masked_lm:{tmp_path}:")
    q = queries()
    got = [x for s in loaded.score(q) for x in s.logprobs]
    want = [x for s in MaskedLMBackend(mlm, tok, device="cpu").score(q) for x in s.logprobs]
    assert got == pytest.approx(want)


def test_bad_settings_are_config_errors(mlm: Any, tok: Any) -> None:
    with pytest.raises(ConfigError):
        MaskedLMBackend(mlm, tok, label_token_policy="last")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        MaskedLMBackend(mlm, tok, batch_size=0)
    with pytest.raises(ConfigError, match="tokenizer"):
        MaskedLMBackend(mlm)


def test_deterministic(backend: MaskedLMBackend) -> None:
    assert backend.score(queries()) == backend.score(queries())


def test_importing_the_backend_module_does_not_import_torch() -> None:
    code = (
        "import sys, bdpl.backends.masked_lm, bdpl.backends.causal_lm;"
        "print('torch' in sys.modules or 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_concurrent_score_calls_are_safe(backend: MaskedLMBackend) -> None:
    from concurrent.futures import ThreadPoolExecutor

    qs = queries()
    expected = backend.score(qs)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: backend.score(qs), range(8)))
    assert all(r == expected for r in results)
