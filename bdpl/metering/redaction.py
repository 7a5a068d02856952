"""Keep secrets out of what the metering layer writes: logs, ledger records, error messages.

Backends must not put credentials in their identity or messages; this is the second line of
defence for messages that pass through the meter (e.g. a provider echoing a key back).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["redact", "redact_exception"]

MASK = "[REDACTED]"

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


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with the given ``secrets`` and anything shaped like a credential masked."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, MASK)
    text = _PATTERNS[0].sub(MASK, text)
    text = _PATTERNS[1].sub(lambda m: f"{m.group(1)} {MASK}", text)
    return _PATTERNS[2].sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)


def redact_exception(exc: BaseException, secrets: Iterable[str] = ()) -> None:
    """Mask secrets in the string arguments of ``exc`` and of the exceptions it chains, in place."""
    secrets = tuple(secrets)
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.args = tuple(redact(a, secrets) if isinstance(a, str) else a for a in current.args)
        current = current.__cause__ or current.__context__
