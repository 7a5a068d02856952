"""Keep secrets out of what the metering layer writes (re-exported from :mod:`bdpl.redaction`).

>>> redact("token tok-2f9a11 refused", secrets=["tok-2f9a11"])
'token [REDACTED] refused'
"""

from __future__ import annotations

from bdpl.redaction import MASK, redact, redact_exception

__all__ = ["MASK", "redact", "redact_exception"]
