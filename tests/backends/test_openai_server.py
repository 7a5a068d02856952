"""The OpenAI backends end to end against a real vLLM server (CPU) serving the embedded SmolLM2.

The same model also runs in-process through :class:`CausalLMBackend`; both must agree on the
winning label of SST-2 queries, and the log-probs must be close.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from bdpl.backends.openai_chat import OpenAIChatBackend
from bdpl.backends.openai_completion import OpenAIBackend
from bdpl.data import read_examples
from bdpl.metering import FREE, Ledger, Meter, QueryCache
from bdpl.tasks import get_task
from bdpl.types import LabelScores, Query, Usage
from tests.backends.vllm_server import VLLMServer

pytestmark = pytest.mark.server

N_SST2 = 200


@pytest.fixture(scope="module")
def sst2_queries(data_dir: Path) -> list[Query]:
    """The first 200 SST-2 test sentences, rendered by the preset task without a prompt."""
    task = get_task("sst2")
    path = data_dir / "SST-2" / "k-shot" / "test.tsv"
    examples = read_examples(path, text_a="sentence", label="label", task=task)[:N_SST2]
    return [task.render([], e) for e in examples]


@pytest.fixture(scope="module")
def reference(sst2_queries: list[Query]) -> list[LabelScores]:
    """The same model in-process (transformers), as the ground truth."""
    from bdpl.backends.causal_lm import CausalLMBackend

    return CausalLMBackend(batch_size=32).score(sst2_queries)


def winner(scores: LabelScores) -> int:
    return max(range(len(scores.logprobs)), key=lambda j: scores.logprobs[j])


def test_label_logprobs_from_many_prompts_per_request_match_the_in_process_model(
    vllm: VLLMServer,
    sst2_queries: list[Query],
    reference: list[LabelScores],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    backend = OpenAIBackend(
        vllm.model, base_url=vllm.base_url, top_logprobs=100, fallback="echo", max_batch_size=50
    )
    ledger = tmp_path / "ledger.jsonl"
    started = time.monotonic()
    with Meter(backend, cache=QueryCache(tmp_path / "cache"), ledger=ledger, price=FREE) as meter:
        got = meter.score(sst2_queries)
        elapsed = time.monotonic() - started
        stats = meter.stats

    agree = sum(winner(a) == winner(b) for a, b in zip(got, reference, strict=True)) / len(got)
    diffs = [
        abs(x - y)
        for a, b in zip(got, reference, strict=True)
        for x, y in zip(a.logprobs, b.logprobs, strict=True)
    ]
    with capsys.disabled():
        print(
            f"\n[vllm] {len(got)} SST-2 queries in {elapsed:.1f}s, {stats.requests} requests;"
            f" winner agreement {agree:.3f}; |logprob diff| max {max(diffs):.2e}"
            f" mean {sum(diffs) / len(diffs):.2e} over {len(diffs)} label scores"
        )
    assert agree >= 0.99
    assert max(diffs) < 1e-3
    assert all(s.exact for s in got)

    # Many prompts per request: 4 next-token requests of 50, plus the fallback's for labels
    # outside the top 100.
    records = Ledger.read(ledger)
    assert len(records) == 4 and all(r.ok and r.kind == "call" for r in records)
    total = sum((s.usage for s in got), Usage())
    assert sum(r.requests for r in records) == total.requests == stats.requests
    assert 4 <= total.requests <= 4 + math.ceil(2 * N_SST2 / 50)
    assert sum(r.prompt_tokens for r in records) == total.prompt_tokens > 0
    assert sum(r.completion_tokens for r in records) == total.completion_tokens
    # The provider's prompt-token counts agree with the model's own tokenizer.
    assert total.prompt_tokens >= sum(r.usage.prompt_tokens for r in reference)


def test_the_exact_fallbacks_agree_and_the_bound_holds(
    vllm: VLLMServer, sst2_queries: list[Query], reference: list[LabelScores]
) -> None:
    qs, ref = sst2_queries[:12], reference[:12]
    results = {}
    for fallback in ("echo", "prompt_logprobs", "none"):
        backend = OpenAIBackend(
            vllm.model,
            base_url=vllm.base_url,
            top_logprobs=5,
            fallback=fallback,  # type: ignore[arg-type]
        )
        results[fallback] = backend.score(qs)
    for echo, plp, bound, truth in zip(
        results["echo"], results["prompt_logprobs"], results["none"], ref, strict=True
    ):
        assert echo.exact and plp.exact
        assert echo.logprobs == pytest.approx(truth.logprobs, abs=1e-3)
        assert plp.logprobs == pytest.approx(truth.logprobs, abs=1e-3)
        for b, t in zip(bound.logprobs, truth.logprobs, strict=True):
            assert t <= b + 1e-4 and b <= 0
    # With only 5 top logprobs the SST-2 labels are rarely there: bounds, flagged inexact.
    assert any(not s.exact for s in results["none"])
    missing = sum(
        b != pytest.approx(e)
        for s, t in zip(results["none"], results["echo"], strict=True)
        for b, e in zip(s.logprobs, t.logprobs, strict=True)
    )
    assert sum(s.usage.requests for s in results["echo"]) == 1 + math.ceil(missing / 20)
    assert sum(s.usage.requests for s in results["none"]) == 1


def test_a_continuation_is_scored_whole(vllm: VLLMServer) -> None:
    from bdpl.backends.causal_lm import CausalLMBackend

    q = Query("The film was", " and I would see it again.", (" great", " terrible"))
    [got] = OpenAIBackend(vllm.model, base_url=vllm.base_url, top_logprobs=5).score([q])
    [truth] = CausalLMBackend().score([q])
    assert got.exact and got.logprobs == pytest.approx(truth.logprobs, abs=1e-3)


def test_chat_completions_read_the_reply_token(vllm: VLLMServer) -> None:
    backend = OpenAIChatBackend(
        vllm.model,
        base_url=vllm.base_url,
        top_logprobs=20,
        system="Answer with one word: Great or Terrible.",
    )
    qs = [
        Query("Review: a moving, beautifully acted film. Verdict?", "", (" Great", " Terrible")),
        Query("Review: dull, long and badly written. Verdict?", "", (" Great", " Terrible")),
    ]
    got = backend.score(qs)
    for s in got:
        assert all(v <= 0 for v in s.logprobs)
        assert s.usage.requests == 1 and s.usage.prompt_tokens > 0
    # "Great" is a likely first reply token for the positive review: read from the top-k.
    assert got[0].logprobs[0] > got[0].logprobs[1]


def test_a_short_fit_through_the_server_is_metered_and_recorded(
    vllm: VLLMServer, data_dir: Path, tmp_path: Path
) -> None:
    from bdpl.data import load_split
    from bdpl.optimizer import Optimizer
    from bdpl.tasks import Dataset

    task = get_task("sst2")
    train_all = load_split(task, "train", seed=13, data_dir=data_dir)
    train = Dataset(task, train_all.examples[:4] + train_all.examples[-4:])  # both classes
    dev = Dataset(task, load_split(task, "dev", seed=13, data_dir=data_dir).examples[:6])
    backend = OpenAIBackend(vllm.model, base_url=vllm.base_url, top_logprobs=100)
    ledger = tmp_path / "ledger.jsonl"
    candidates = ["truly", "honest", "film", "review", "amazing", "plot", "overall", "verdict"]
    meter = Meter(backend, cache=QueryCache(tmp_path / "cache"), ledger=ledger, price=FREE)
    with (
        meter,
        Optimizer(
            meter=meter,
            candidates=candidates,
            prompt_length=2,
            sample_size=3,
            batch_size=8,
            epochs=2,
            seed=0,
        ) as optimizer,
    ):
        result = optimizer.fit(train, dev)
        stats = optimizer.meter.stats
    assert result.stop_reason == "epochs" and result.steps == 2
    # The paired selection keeps the learned prompt or, when it does not win clearly on dev,
    # the manual one (the template alone).
    assert result.selection is not None
    learned = result.selection.candidate
    assert len(learned) == 2 and set(learned) <= set(candidates)
    assert result.prompt in ([], learned)
    assert result.dev_score is not None and 0.0 <= result.dev_score <= 1.0
    records = Ledger.read(ledger)
    calls = [r for r in records if r.kind == "call"]
    assert calls and all(r.ok for r in calls)
    assert sum(r.billed_queries for r in calls) == stats.paid_queries > 0
    assert sum(r.requests for r in calls) == stats.requests
    assert sum(r.prompt_tokens for r in calls) == stats.prompt_tokens
    assert sum(r.queries for r in records if r.kind == "hit") == stats.hits
    assert all(r.backend == backend.identity and r.dollars == 0 for r in records)
