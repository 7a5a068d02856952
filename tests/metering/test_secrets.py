"""A canary API key given to a backend appears in no file, log or error the meter produces."""

from __future__ import annotations

import logging
import secrets
import traceback
from pathlib import Path

import pytest

from bdpl.errors import AuthenticationError, BudgetExceededError
from bdpl.metering import Budget, Meter, QueryCache
from bdpl.metering.redaction import redact
from tests.metering.helpers import FAST_RETRY, KeyedStub, make_queries


def test_canary_key_leaks_nowhere(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    canary = "sk-canary-" + secrets.token_hex(16)
    stub = KeyedStub(canary, fail_at=[2])
    errors: list[BaseException] = []
    with caplog.at_level(logging.DEBUG):
        meter = Meter(
            stub,  # type: ignore[arg-type]
            cache=QueryCache(tmp_path / "cache"),
            ledger=tmp_path / "ledger.jsonl",
            budget=Budget(max_queries=14),
            retry=FAST_RETRY,
        )
        meter.score(make_queries(8))  # two paid calls, cached
        meter.score(make_queries(8))  # hits
        for attempt in (make_queries(4, "x"), make_queries(8, "y")):
            try:  # the 3rd call fails echoing the key; then the budget stops the run
                meter.score(attempt)
            except (AuthenticationError, BudgetExceededError) as exc:
                errors.append(exc)
        texts = [repr(meter), str(meter.stats), repr(meter.cache), repr(meter.budget)]
        meter.close()
    assert [type(e) for e in errors] == [AuthenticationError, BudgetExceededError]
    for exc in errors:
        texts += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    texts.append(caplog.text)
    assert "Incorrect API key provided" in texts[-1]  # the failure was logged, masked
    for text in texts:
        assert canary not in text and canary[-12:] not in text
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "ledger.jsonl" for p in written) and len(written) >= 2
    for path in written:
        data = path.read_bytes()
        assert canary.encode() not in data and canary[-12:].encode() not in data, path


@pytest.mark.parametrize(
    "text",
    [
        "key sk-proj-abcdefghijklmnop123 rejected",
        "Authorization: Bearer abcdefghijklmnopqrstuvwxyz",
        '{"api_key": "zzzzzzzzzzzzzzzzzzzzzz"}',
        "api-key=zzzzzzzzzzzzzzzzzzzzzz&x=1",
    ],
)
def test_redact_masks_credential_shapes(text: str) -> None:
    out = redact(text)
    assert "[REDACTED]" in out
    assert "abcdefghijklmnop" not in out and "zzzzzzzz" not in out


def test_redact_masks_given_secrets_anywhere() -> None:
    assert redact("token=plain, then plainsecret", ["plainsecret"]) == (
        "token=plain, then [REDACTED]"
    )
