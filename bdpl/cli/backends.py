"""Backends named by one string on the command line: ``fake``, ``local``, ``openai:<model>``..."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bdpl.backends.base import Backend
from bdpl.errors import ConfigError

__all__ = ["BACKEND_FORMS", "is_local", "make_backend"]

BACKEND_FORMS = (
    "fake[:seed=N,latency=S,noise=X]",
    "local",
    "hf-causal:<name-or-path>",
    "hf-mlm:<name-or-path>",
    "openai:<model>",
    "openai-chat:<model>",
)
_LOCAL = frozenset({"local", "hf-causal", "hf-mlm"})


def is_local(spec: str) -> bool:
    """Whether the backend ``spec`` names runs a model in this process (``local``,
    ``hf-causal:``, ``hf-mlm:``): the only ones ``max_input_tokens`` applies to."""
    return spec.partition(":")[0] in _LOCAL


def make_backend(
    spec: str,
    *,
    base_url: str | None = None,
    call_log: str | Path | None = None,
    check: bool = True,
    max_input_tokens: int | None = None,
) -> Backend:
    """The backend ``spec`` names (see :data:`BACKEND_FORMS`).

    ``local`` is the embedded SmolLM2-135M-Instruct (offline); ``openai:`` and ``openai-chat:``
    read the API key from ``OPENAI_API_KEY`` and take ``base_url`` for any OpenAI-compatible
    server (checked to be reachable first, unless ``check`` is false); ``call_log`` (the fake
    only) records every answered call in a JSONL file; ``max_input_tokens`` (the local
    backends only) cuts each query's inputs to that many tokens (``None``: the backend's
    default).

    Raises:
        ConfigError: an unknown form, a missing name after the colon, or an option the
            backend does not take.
    """
    kind, _, name = spec.partition(":")
    if max_input_tokens is not None and not is_local(spec):
        raise ConfigError(
            "--max-input-tokens applies to the local backends only (local, hf-causal:, hf-mlm:); "
            f"remove it for {spec!r}"
        )
    if kind == "fake":
        return _fake(spec, name, call_log, base_url)
    needs_name = {"hf-causal", "hf-mlm", "openai", "openai-chat"}
    if kind in needs_name and not name:
        raise ConfigError(f"backend {spec!r} needs a name after the colon, e.g. {kind}:<name>")
    if kind not in needs_name | {"fake", "local"} or (kind in {"fake", "local"} and name):
        raise ConfigError(f"unknown backend {spec!r}; use one of: {', '.join(BACKEND_FORMS)}")
    if base_url is not None and kind not in {"openai", "openai-chat"}:
        raise ConfigError("--base-url applies to the openai: and openai-chat: backends only")
    if call_log is not None:
        raise ConfigError("--call-log applies to the fake backend only")
    cut: dict[str, Any] = {} if max_input_tokens is None else {"max_input_tokens": max_input_tokens}
    if kind in {"local", "hf-causal"}:
        from bdpl.backends.causal_lm import CausalLMBackend

        return CausalLMBackend(name or None, **cut)
    if kind == "hf-mlm":
        from bdpl.backends.masked_lm import MaskedLMBackend

        return MaskedLMBackend(name, **cut)
    if base_url is not None and check:
        check_reachable(base_url)
    if kind == "openai":
        from bdpl.backends.openai_completion import OpenAIBackend

        return OpenAIBackend(name, base_url=base_url)
    from bdpl.backends.openai_chat import OpenAIChatBackend

    return OpenAIChatBackend(name, base_url=base_url)


_FAKE_OPTIONS = {"seed": int, "latency": float, "noise": float}


def _fake(spec: str, options: str, call_log: str | Path | None, base_url: str | None) -> Backend:
    """The deterministic fake, with ``seed``, ``latency`` or ``noise`` given as ``k=v,...``."""
    from bdpl import FakeBackend

    if base_url is not None:
        raise ConfigError("--base-url applies to the openai: and openai-chat: backends only")
    kwargs: dict[str, int | float] = {}
    for item in filter(None, options.split(",")):
        key, sep, value = item.partition("=")
        kind = _FAKE_OPTIONS.get(key)
        if not sep or kind is None:
            raise ConfigError(
                f"backend {spec!r}: options are {', '.join(_FAKE_OPTIONS)} as key=value, "
                "e.g. fake:seed=1,latency=0.01"
            )
        try:
            kwargs[key] = kind(value)
        except ValueError:
            raise ConfigError(f"backend {spec!r}: {key} must be a number, got {value!r}") from None
    return FakeBackend(call_log=call_log, **kwargs)  # type: ignore[arg-type]


def check_reachable(base_url: str, timeout: float = 5.0) -> None:
    """Fail fast, before any query, when nothing listens at ``base_url``'s host and port.

    Raises:
        ConfigError: the URL has no host, or a TCP connection to it fails.
    """
    parts = urlsplit(base_url)
    if not parts.hostname:
        raise ConfigError(f"--base-url {base_url!r} has no host (e.g. http://127.0.0.1:8000/v1)")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"cannot reach the server at {base_url} ({reason}); check that it is running and "
            "that --base-url is right"
        ) from None
