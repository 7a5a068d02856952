"""OpenAI-style backends: settings fixed at construction, close() and context-manager use."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import bdpl
from bdpl.backends.base import Closeable
from bdpl.backends.openai_chat import OpenAIChatBackend
from bdpl.backends.openai_completion import OpenAIBackend, OpenAICompletionBackend
from bdpl.errors import ConfigError
from bdpl.types import Query
from tests.backends.openai_fakes import FaultServer, Recorder, mock_client

Q = Query("A fine film It was", ".", (" great", " terrible"))
KINDS = [OpenAICompletionBackend, OpenAIChatBackend]


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as s:
        yield s


def test_the_completion_backend_has_its_real_name_and_the_old_one() -> None:
    assert OpenAIBackend is OpenAICompletionBackend
    assert bdpl.OpenAIBackend is bdpl.OpenAICompletionBackend is OpenAICompletionBackend
    backend = OpenAICompletionBackend("davinci-002", api_key="sk-test")
    assert repr(backend).startswith("OpenAICompletionBackend(")


@pytest.mark.parametrize(
    ("kind", "settings"),
    [
        (OpenAICompletionBackend, ("model", "timeout", "top_logprobs", "fallback")),
        (OpenAIChatBackend, ("model", "timeout", "top_logprobs", "system", "max_tokens_param")),
    ],
)
def test_settings_cannot_be_assigned(kind: Any, settings: tuple[str, ...]) -> None:
    """The identity names the settings, so a setting that changed would mislabel the cache."""
    backend = kind("davinci-002", api_key="sk-test")
    identity = backend.identity
    for name in (*settings, "max_batch_size", "max_concurrency", "capabilities"):
        with pytest.raises(AttributeError):
            setattr(backend, name, getattr(backend, name))
    assert backend.identity == identity


@pytest.mark.parametrize("kind", KINDS)
def test_with_block_closes_the_client_it_built(kind: Any, server: FaultServer) -> None:
    with kind("fake-model", base_url=server.base_url, top_logprobs=5) as backend:
        assert isinstance(backend, Closeable)
        assert backend.score([Q])[0].logprobs  # a real request over a real connection
        http = backend._client._client  # the httpx client under the SDK client
        assert not http.is_closed
    assert http.is_closed and backend._client.is_closed()
    backend.close()  # idempotent
    assert http.is_closed
    with pytest.raises(ConfigError, match="closed"):
        backend.score([Q])


@pytest.mark.parametrize("kind", KINDS)
def test_an_injected_client_stays_open(kind: Any) -> None:
    """An injected client belongs to the caller, who may use it elsewhere."""
    rec = Recorder()
    client = mock_client(rec)
    with kind("fake-model", client=client, top_logprobs=5) as backend:
        backend.score([Q])
    backend.close()
    assert not client.is_closed()
    assert client.completions.with_raw_response.create(
        model="fake-model", prompt=Q.before, max_tokens=1, logprobs=5
    ).http_response.json()["choices"]
    client.close()


@pytest.mark.parametrize("module", ["openai_completion", "openai_chat"])
def test_doctests(module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import doctest
    import importlib

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = doctest.testmod(importlib.import_module(f"bdpl.backends.{module}"))
    assert result.attempted > 0 and result.failed == 0
