"""Argument checks shared across the package, each raising a :class:`~bdpl.errors.ConfigError`
that names the argument and the value it got."""

from __future__ import annotations

import math
import numbers

from bdpl.errors import ConfigError

__all__ = ["finite_number", "positive_int"]


def positive_int(name: str, value: object, least: int = 1) -> int:
    """``value`` as an ``int`` if it is an integer (not a bool) ``>= least``.

    >>> positive_int("epochs", 3)
    3
    >>> positive_int("epochs", 2.5)
    Traceback (most recent call last):
    ...
    bdpl.errors.ConfigError: epochs must be an integer >= 1, got 2.5
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
        raise ConfigError(f"{name} must be an integer >= {least}, got {value!r}")
    return int(value)


def finite_number(name: str, value: object, *, least: float = 0.0) -> float:
    """``value`` as a ``float`` if it is a finite real number (not a bool) ``>= least``.

    >>> finite_number("max_time", float("nan"))
    Traceback (most recent call last):
    ...
    bdpl.errors.ConfigError: max_time must be a finite number >= 0.0, got nan
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(float(value))
        or float(value) < least
    ):
        raise ConfigError(f"{name} must be a finite number >= {least}, got {value!r}")
    return float(value)
