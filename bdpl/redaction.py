"""Keep secrets out of everything bdpl writes: error messages, logs, ledger records.

One module for the whole package: the backends' error translation and the metering layer both
use it. :func:`redact` masks the *actual* credentials it is given (the API key a backend holds,
whatever it looks like: OpenAI's ``sk-...``, an Azure key, a vLLM or proxy token) and, as a
second line of defence, anything shaped like a credential (``sk-...``, ``Bearer ...``,
``api_key=...``). Every message built from a server's reply passes through it with the
backend's own keys.

>>> redact("Bearer tok-2f9a11 was refused", secrets=["tok-2f9a11"])
'Bearer [REDACTED] was refused'
>>> redact("key sk-proj-abcdefghijklmnop rejected")
'key [REDACTED] rejected'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress

__all__ = ["MASK", "redact", "redact_exception", "redacting"]

MASK = "[REDACTED]"
# Shorter "secrets" (e.g. a placeholder key such as "x") would mask ordinary words.
_MIN_SECRET_LENGTH = 4

_PATTERNS = (
    # OpenAI-style keys (sk-..., sk-proj-...), and similar prefixed tokens.
    re.compile(r"\b(?:sk|rk|pk)-[A-Za-z0-9_\-]{8,}"),
    # HTTP authorization headers.
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{8,}"),
    # key=value / "api_key": "value" pairs.
    re.compile(
        r"(?i)\b(api[_-]?key|access[_-]?token|auth[_-]?token|secret|password)"
        r"([\"']?\s*[:=]\s*[\"']?)[^\s\"',;}]+"
    ),
)


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with the given ``secrets`` and anything shaped like a credential masked.

    Args:
        text: what is about to be written.
        secrets: the actual credentials in use; ``None`` and strings shorter than four
            characters are skipped. Longer ones are masked first, so that a key containing
            another is masked whole.
    """
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        if len(secret) >= _MIN_SECRET_LENGTH:
            text = text.replace(secret, MASK)
    text = _PATTERNS[0].sub(MASK, text)
    text = _PATTERNS[1].sub(lambda m: f"{m.group(1)} {MASK}", text)
    return _PATTERNS[2].sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)


def redact_exception(exc: BaseException, secrets: Iterable[str | None] = ()) -> None:
    """Mask secrets in ``exc`` and the exceptions it chains, in place.

    String arguments are redacted, and so is a string ``message`` attribute (SDK exceptions
    keep the server's text there); a ``body`` attribute (an SDK exception's decoded reply) that
    holds a secret is dropped.
    """
    secrets = tuple(secrets)
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.args = tuple(redact(a, secrets) if isinstance(a, str) else a for a in current.args)
        message = getattr(current, "message", None)
        if isinstance(message, str):
            _set(current, "message", redact(message, secrets))
        body = getattr(current, "body", None)
        if body is not None and redact(repr(body), secrets) != repr(body):
            _set(current, "body", None)
        current = current.__cause__ or current.__context__


@contextmanager
def redacting(secrets: Iterable[str | None]) -> Iterator[None]:
    """Redact ``secrets`` from any exception raised in the block (and its chain), then re-raise."""
    try:
        yield
    except Exception as exc:
        redact_exception(exc, secrets)
        raise


def _set(exc: BaseException, name: str, value: object) -> None:
    with suppress(AttributeError):  # a read-only attribute is left (its args are redacted)
        setattr(exc, name, value)
