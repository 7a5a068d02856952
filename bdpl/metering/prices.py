"""Prices per token, from a dated table shipped with the package (``prices.json``).

Cost is always computed from the usage a backend reports. A local backend is free; a paid
model that is not in the table is an error unless the caller passes a :class:`Price`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from bdpl.backends.base import capabilities_of
from bdpl.errors import ConfigError, UnknownPriceError
from bdpl.types import Usage

__all__ = ["FREE", "Price", "PriceTable", "price_for", "price_table"]


@dataclass(frozen=True, slots=True)
class Price:
    """USD per one million tokens.

    >>> price = Price(input_per_1m=2.0, output_per_1m=8.0)
    >>> price.cost(Usage(prompt_tokens=1000, completion_tokens=10))
    0.00208
    """

    input_per_1m: float
    output_per_1m: float

    def __post_init__(self) -> None:
        for name in ("input_per_1m", "output_per_1m"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value < 0
            ):
                raise ConfigError(f"Price({name}=...) must be a non-negative number, got {value!r}")

    def cost(self, usage: Usage) -> float:
        """Dollars for ``usage``: prompt tokens at the input price, completion at the output's."""
        return (
            usage.prompt_tokens * self.input_per_1m + usage.completion_tokens * self.output_per_1m
        ) / 1e6


FREE = Price(0.0, 0.0)


@dataclass(frozen=True)
class PriceTable:
    """The shipped price table: when it was updated and one :class:`Price` per model name."""

    updated: str
    prices: dict[str, Price]
    sources: dict[str, str]

    def get(self, model: str) -> Price | None:
        """The price of ``model`` (exact name, as the API spells it), or ``None``."""
        return self.prices.get(model)


@lru_cache(maxsize=1)
def price_table() -> PriceTable:
    """Load ``bdpl/metering/prices.json`` (once per process)."""
    text = resources.files("bdpl.metering").joinpath("prices.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    models: dict[str, dict[str, Any]] = data["models"]
    return PriceTable(
        updated=str(data["updated"]),
        prices={m: Price(float(e["input"]), float(e["output"])) for m, e in models.items()},
        sources={m: str(e["source"]) for m, e in models.items()},
    )


def price_for(backend: object, override: Price | None = None) -> Price:
    """The price the meter charges for ``backend``'s usage.

    Args:
        backend: any backend; its capabilities' ``is_local`` and ``model`` are read.
        override: a price that takes precedence over everything else.

    Returns:
        ``override`` if given; :data:`FREE` for a local backend; else the table's price for the
        backend's ``model`` (its ``identity`` when it has no ``model``).

    Raises:
        UnknownPriceError: a paid backend whose model is not in the table and no ``override``.
    """
    if override is not None:
        return override
    caps = capabilities_of(backend)
    if caps.is_local:
        return FREE
    model = caps.model or str(getattr(backend, "identity", "?"))
    table = price_table()
    found = table.get(model)
    if found is None:
        raise UnknownPriceError(
            f"no price for model {model!r} in bdpl's price table (updated {table.updated}); "
            "pass one in USD per 1M tokens to the meter, "
            "Meter(backend, price=Price(input_per_1m=..., output_per_1m=...)), and give that "
            "meter to the optimizer: Optimizer(meter=meter, ...)"
        )
    return found
