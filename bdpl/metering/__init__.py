"""The metering layer: every query to a backend goes through :class:`Meter`."""

from bdpl.metering.meter import Meter

__all__ = ["Meter"]
