"""FaultyBackend: each fault kind as the metering layer sees it; forwarding; call log; kill."""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from bdpl.backends.base import Capabilities, UsageBounded, capabilities_of, secrets_of
from bdpl.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigError,
    MalformedResponseError,
    RateLimitError,
    ServerError,
)
from bdpl.metering import Budget, Ledger, Meter, Price, QueryCache, RetryPolicy
from bdpl.metering.tokens import conservative_usage, estimate_usage
from bdpl.testing import (
    BadLogprob,
    ExtraAnswer,
    FakeBackend,
    FaultyBackend,
    Kill,
    MissingAnswer,
    NoUsage,
    Raise,
    WrongLabelCount,
)
from bdpl.types import Query, Usage
from tests.metering.helpers import KeyedStub

ROOT = Path(__file__).resolve().parents[2]
PRICE = Price(input_per_1m=1000.0, output_per_1m=2000.0)
FAST_RETRY = RetryPolicy(max_attempts=4, initial_wait=0.001, max_wait=0.005, jitter=0.001)


def queries(n: int, tag: str = "q") -> list[Query]:
    return [Query(f"{tag} {i} It was", ".", (" bad", " good")) for i in range(n)]


def truth(qs: Sequence[Query]) -> list[tuple[float, ...]]:
    """The log-probs an unfaulty fake gives."""
    return [s.logprobs for s in FakeBackend().score(qs)]


@pytest.mark.parametrize(
    "fault",
    [
        BadLogprob(answer=2),
        BadLogprob(answer=2, label=1, value=-math.inf),
        BadLogprob(answer=2, value=0.5),
        WrongLabelCount(answer=2),
    ],
    ids=["nan", "-inf", "positive", "label count"],
)
def test_a_bad_answer_is_retried_alone(tmp_path: Path, fault: BadLogprob) -> None:
    backend = FaultyBackend(FakeBackend(), faults={0: fault})
    qs = queries(5)
    with Meter(backend, cache=QueryCache(tmp_path / "c"), retry=FAST_RETRY) as meter:
        got = meter.score(qs)
        s = meter.stats
    assert [s.logprobs for s in got] == truth(qs)
    assert backend.calls == [tuple(qs), (qs[2],)]  # only the bad one asked again
    assert (s.attempts, s.retries, s.paid_queries, s.failed_calls) == (2, 1, 6, 0)


@pytest.mark.parametrize("fault", [MissingAnswer(), ExtraAnswer()], ids=["missing", "extra"])
def test_a_wrong_answer_count_retries_the_whole_call(tmp_path: Path, fault: object) -> None:
    backend = FaultyBackend(FakeBackend(), faults={0: fault})  # type: ignore[dict-item]
    qs = queries(3)
    with Meter(backend, cache=QueryCache(tmp_path / "c"), retry=FAST_RETRY) as meter:
        got = meter.score(qs)
        s = meter.stats
    assert [s.logprobs for s in got] == truth(qs)
    assert backend.calls == [tuple(qs)] * 2  # answers that cannot be matched are not kept
    assert (s.attempts, s.paid_queries) == (2, 6)


def test_a_malformed_reply_every_time_fails_after_the_retries() -> None:
    backend = FaultyBackend(FakeBackend(), every_call=BadLogprob())
    with (
        Meter(backend, cache=False, retry=FAST_RETRY) as meter,
        pytest.raises(MalformedResponseError, match="not finite"),
    ):
        meter.score(queries(2))
    assert backend.attempts == FAST_RETRY.max_attempts == meter.stats.attempts


def test_a_retryable_error_is_retried_and_nothing_is_billed_for_it() -> None:
    backend = FaultyBackend(
        FakeBackend(),
        faults={0: Raise(RateLimitError("429")), 1: Raise(ServerError("503", retryable=True))},
    )
    qs = queries(3)
    with Meter(backend, cache=False, retry=FAST_RETRY) as meter:
        got = meter.score(qs)
        s = meter.stats
    assert [s.logprobs for s in got] == truth(qs)
    assert backend.attempts == 3 and backend.calls == [tuple(qs)]
    assert (s.attempts, s.paid_queries, s.requests) == (3, 3, 1)


def test_billed_then_failed_is_charged(tmp_path: Path) -> None:
    billed = Usage(40, 2, 1)
    backend = FaultyBackend(
        FakeBackend(is_local=False, model="m"),
        faults={0: Raise(BadRequestError("fallback refused"), billed=billed)},
    )
    budget = Budget(max_dollars=10.0)
    ledger = tmp_path / "ledger.jsonl"
    with Meter(backend, cache=False, budget=budget, price=PRICE, ledger=ledger) as meter:
        with pytest.raises(BadRequestError, match="fallback refused"):
            meter.score(queries(2))
        s = meter.stats
    assert backend.attempts == 1 and backend.calls == []  # not retried, not answered
    assert (s.prompt_tokens, s.completion_tokens, s.requests, s.paid_queries) == (40, 2, 1, 0)
    assert s.dollars == pytest.approx(PRICE.cost(billed)) == budget.spent.dollars
    (record,) = Ledger.read(ledger)
    assert (record.prompt_tokens, record.ok, record.error) == (40, False, "BadRequestError")


def test_billed_usage_needs_a_backend_error() -> None:
    with pytest.raises(ConfigError, match="BackendError"):
        Raise(TimeoutError("slow"), billed=Usage(1, 0, 1))


def test_missing_usage_is_charged_the_estimate(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeBackend(is_local=False, model="m")
    backend = FaultyBackend(fake, every_call=NoUsage())
    qs = queries(4)
    [answer, *_] = backend.score(qs)
    assert answer.usage == Usage(0, 0, 1)  # no tokens, the request still counted
    with (
        caplog.at_level(logging.WARNING, logger="bdpl.metering.meter"),
        Meter(backend, cache=False, price=PRICE) as meter,
    ):
        meter.score(qs)
        s = meter.stats
    expected = fake.estimate(qs)
    assert (s.prompt_tokens, s.completion_tokens, s.requests) == (
        expected.prompt_tokens,
        expected.completion_tokens,
        1,
    )
    assert s.dollars == pytest.approx(PRICE.cost(expected)) and s.dollars > 0
    assert "reported no token usage" in caplog.text


def test_estimate_factor_over_and_under(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeBackend()
    qs = queries(3)
    exact = fake.estimate(qs)
    over = FaultyBackend(fake, estimate=3.0).estimate(qs)
    assert over == Usage(3 * exact.prompt_tokens, 3 * exact.completion_tokens, exact.requests)
    under = FaultyBackend(fake, estimate=0.5)
    with caplog.at_level(logging.WARNING), Meter(under, cache=False) as meter:
        meter.score(qs)
    assert "used more than its estimate" in caplog.text


def test_estimate_is_forwarded_hidden_or_replaced() -> None:
    fake = FakeBackend()
    qs = queries(2)
    assert isinstance(FaultyBackend(fake), UsageBounded)
    assert FaultyBackend(fake).estimate(qs) == fake.estimate(qs)
    hidden = FaultyBackend(fake, estimate=None)
    assert not isinstance(hidden, UsageBounded)
    assert estimate_usage(hidden, qs) == conservative_usage(qs)
    fixed = FaultyBackend(fake, estimate=lambda q: Usage(7 * len(q), 0, 1))
    assert fixed.estimate(qs) == Usage(14, 0, 1)
    with pytest.raises(ConfigError, match="has none"):
        FaultyBackend(hidden, estimate=2.0)
    with pytest.raises(ConfigError, match="estimate"):
        FaultyBackend(fake, estimate="exact")  # type: ignore[arg-type]


def test_capabilities_are_forwarded_or_replaced() -> None:
    fake = FakeBackend(max_batch_size=64, model="fake-model")
    assert capabilities_of(FaultyBackend(fake)) == fake.capabilities
    paid = Capabilities(model="gpt-4o-mini", max_batch_size=3, max_concurrency=2)
    backend = FaultyBackend(fake, capabilities=paid)
    assert capabilities_of(backend) is paid
    with Meter(backend, cache=False) as meter:  # priced from the table: the model is known
        meter.score(queries(7))
        assert meter.stats.calls == 3 and meter.stats.dollars > 0
    assert sorted(len(c) for c in backend.calls) == [1, 3, 3]  # two run at once
    with pytest.raises(ConfigError, match="capabilities"):
        FaultyBackend(fake, capabilities={"max_batch_size": 3})  # type: ignore[arg-type]


def test_wraps_any_backend_and_forwards_what_it_has() -> None:
    key = "canary" + "0" * 20  # no known key shape: only the forwarded secret redacts it
    inner = KeyedStub(key, fail_at=[1])  # its own 2nd call fails, with the key in the message
    closed: list[bool] = []
    backend = FaultyBackend(inner, faults={0: Raise(ServerError("flaky", retryable=True))})
    assert backend.identity == inner.identity
    assert secrets_of(backend) == (key,)
    assert capabilities_of(backend) == inner.capabilities
    assert not isinstance(backend, UsageBounded)  # it has no estimate: none is made up
    with Meter(backend, cache=False, retry=FAST_RETRY) as meter:
        assert len(meter.score(queries(2))) == 2  # call 0 failed and was retried
        with pytest.raises(AuthenticationError) as failed:
            meter.score(queries(2, "again"))
        assert (meter.stats.attempts, meter.stats.paid_queries) == (3, 2)
    assert key not in str(failed.value)  # redacted: the wrapper passed the secret on
    backend.close()  # nothing to close: a no-op
    inner.close = lambda: closed.append(True)  # type: ignore[attr-defined]
    backend.close()
    assert closed == [True]


def test_latency_overlaps_across_the_meters_threads() -> None:
    backend = FaultyBackend(FakeBackend(max_batch_size=2), latency=0.1)
    with Meter(backend, cache=False, max_concurrency=4) as meter:
        start = time.perf_counter()
        meter.score(queries(8))  # four chunks of two, in flight together
        elapsed = time.perf_counter() - start
    assert backend.call_count == 4 and 0.1 <= elapsed < 4 * 0.1
    assert 2 <= backend.peak_concurrency <= 4


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"faults": {0: "malformed"}}, "fault at call 0"),
        ({"faults": {-1: Kill()}}, "call index"),
        ({"faults": [Kill()]}, "mapping"),
        ({"every_call": ValueError("x")}, "every_call"),
        ({"latency": -1.0}, "latency"),
        ({"latency": math.nan}, "latency"),
    ],
)
def test_bad_schedules_are_config_errors(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        FaultyBackend(FakeBackend(), **kwargs)  # type: ignore[arg-type]


def test_call_log_names_the_faults_of_each_answered_call(tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    backend = FaultyBackend(
        FakeBackend(),
        faults={0: Raise(ServerError("down")), 1: [NoUsage(), MissingAnswer()]},
        call_log=log,
    )
    qs = queries(2)
    with pytest.raises(ServerError):
        backend.score(qs)
    assert len(backend.score(qs)) == 1
    backend.score(qs)
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [x["call"] for x in lines] == [1, 2]  # a raised fault is no answer
    assert lines[0]["faults"] == ["NoUsage", "MissingAnswer"] and lines[0]["malformed"] is True
    assert "faults" not in lines[1] and "malformed" not in lines[1]
    assert all(x["queries"] == [q.to_json() for q in qs] for x in lines)


KILL_SCRIPT = """
import sys
from bdpl.metering import Meter
from bdpl.testing import FakeBackend, FaultyBackend, Kill
from bdpl.types import Query
backend = FaultyBackend(FakeBackend(), faults={int(sys.argv[2]): Kill()}, call_log=sys.argv[1])
with Meter(backend, cache=False) as meter:
    for i in range(10):
        meter.score([Query(f"q{i} It was", ".", (" bad", " good"))])
print("survived")
"""


@pytest.mark.parametrize("at", [0, 3])
def test_kill_at_call_n_leaves_exactly_n_answered_calls(tmp_path: Path, at: int) -> None:
    log = tmp_path / "calls.jsonl"
    run = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(log), str(at)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == -9 and "survived" not in run.stdout, run.stderr
    lines = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
    assert [x["call"] for x in lines] == list(range(at))
    assert [x["queries"][0]["before"] for x in lines] == [f"q{i} It was" for i in range(at)]
