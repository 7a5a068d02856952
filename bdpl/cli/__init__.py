"""The ``bdpl`` command line (``bdpl --help``); see :mod:`bdpl.cli.app`."""

from bdpl.cli.app import main

__all__ = ["main"]
