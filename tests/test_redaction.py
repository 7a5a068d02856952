"""The one redaction module: actual keys of any shape, credential patterns, exception chains."""

from __future__ import annotations

import doctest

import pytest

import bdpl.redaction
from bdpl.metering import redaction as metering_redaction
from bdpl.redaction import MASK, redact, redact_exception, redacting


def test_doctests() -> None:
    assert doctest.testmod(bdpl.redaction).failed == 0


def test_the_metering_path_is_the_same_module() -> None:
    assert metering_redaction.redact is redact
    assert metering_redaction.redact_exception is redact_exception


def test_actual_keys_of_any_shape_are_masked_longest_first() -> None:
    key, longer = "tok-2f9a11", "tok-2f9a11-extra"
    assert redact(f"a {longer} b {key}", [key, longer]) == f"a {MASK} b {MASK}"
    assert redact("vllm-token-abc", ["vllm-token-abc"]) == MASK
    assert redact("ab cd", ["ab", None, ""]) == "ab cd"  # too short to mask safely


class _SDKError(Exception):
    def __init__(self, message: str, body: object) -> None:
        super().__init__(message)
        self.message = message
        self.body = body


def test_redacting_masks_the_chain_message_and_drops_a_body_holding_the_key() -> None:
    key = "azure0123456789abcdef"
    inner = _SDKError(f"bad key {key}", {"echo": key})
    with pytest.raises(ValueError) as info, redacting([key]):
        try:
            raise inner
        except _SDKError as exc:
            raise ValueError(f"wrapped: {key}") from exc
    assert key not in str(info.value) and MASK in str(info.value)
    cause = info.value.__cause__
    assert isinstance(cause, _SDKError)
    assert key not in cause.message and key not in str(cause) and cause.body is None
