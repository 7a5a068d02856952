"""A sweep file: a grid of ``bdpl fit`` settings, expanded into cells (one run folder each).

A sweep file is TOML::

    [base]                      # settings every cell shares (any key of ``bdpl fit``)
    backend = "fake"
    epochs = 2

    [grid]                      # each key a list: every combination is one cell
    task = ["sst2", "rte"]
    seed = [0, 1]
    method = ["bdpl", "random", "manual", "in-context"]
    estimator = ["loo", "reference"]

    [when.task.rte]             # settings only the cells with this grid value take
    epochs = 3                  # (optional; any key of [base] that is not a grid key)

    [budget]                    # the sweep-wide limit, never overshot (optional)
    max_queries = 20000

Every key of ``[grid]`` and ``[base]`` is a key of :class:`~bdpl.cli.config.RunConfig`, or
``method`` (``bdpl``, ``random``, ``manual``, ``in-context``: :mod:`bdpl.cli.methods`) or
``demonstrations`` (examples the ``in-context`` baseline shows, 4 by default); a
cell is named after its grid values (``task=sst2,seed=0,estimator=loo``) and its run folder
is ``<sweep folder>/cells/<name>``. Cells that differ only in ``seed`` form a group, whose
mean and standard deviation the results table reports.

The sweep-wide budget is split up front: every cell's budget is ``limit / cells`` (queries and
tokens rounded down), or the cell's own limit when that is smaller. The cells' spending
adds up to at most the sum of their limits, so the sweep's never passes its own, on any
number of hosts and through any kill and resume (a resumed cell's budget is charged with its
ledger). Cached answers are free, so cells that share queries leave part of their share
unspent: the price of a guarantee that needs no coordination between workers.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bdpl.cli.config import RunConfig, read_toml
from bdpl.cli.methods import METHODS
from bdpl.errors import ConfigError

__all__ = ["Cell", "Sweep", "read_sweep"]

_LIMITS = ("max_queries", "max_tokens", "max_dollars")
_SECTIONS = {"base", "grid", "when", "budget"}


@dataclass(frozen=True)
class Cell:
    """One run of a sweep: its name (its folder's), its grid values, its settings, and its
    method (:mod:`bdpl.cli.methods`) with the in-context baseline's ``demonstrations``."""

    name: str
    values: tuple[tuple[str, Any], ...]
    config: RunConfig
    method: str = "bdpl"
    demonstrations: int = 4

    @property
    def group(self) -> str:
        """The cell's group: its name without the seed (seeds are averaged over)."""
        rest = [f"{k}={_show(v)}" for k, v in self.values if k != "seed"]
        return ",".join(rest) or "all"


@dataclass(frozen=True)
class Sweep:
    """The cells of a sweep file, in grid order, and the sweep-wide limits."""

    cells: tuple[Cell, ...]
    limits: Mapping[str, float | int]

    @classmethod
    def build(
        cls,
        base: Mapping[str, Any],
        grid: Mapping[str, Any],
        limits: Mapping[str, Any] | None = None,
        when: Mapping[str, Any] | None = None,
    ) -> Sweep:
        """Expand ``grid`` over ``base`` and split ``limits`` among the cells; ``when`` maps a
        grid key and one of its values to settings the cells with that value take
        (``{"task": {"rte": {"epochs": 3}}}``), over ``base``.

        Raises:
            ConfigError: a grid value is not a non-empty list, a ``when`` entry names a key
                or value the grid lacks or sets a grid key, two ``when`` entries set one
                setting of the same cell, a key is not a setting of
                ``bdpl fit``, a cell's settings are invalid, or a limit is not a
                non-negative number.
        """
        keys = list(grid)
        for key, values in grid.items():
            if not isinstance(values, list) or not values:
                raise ConfigError(f"grid.{key}: give a non-empty list, e.g. {key} = [0, 1]")
        extra = _when(when or {}, grid)
        limits = dict(limits or {})
        unknown = sorted(set(limits) - set(_LIMITS))
        if unknown:
            raise ConfigError(f"budget: unknown keys {unknown}; use {list(_LIMITS)}")
        combos = list(itertools.product(*(grid[k] for k in keys)))
        share = _shares(limits, len(combos))
        cells = []
        for combo in combos:
            values = tuple(zip(keys, combo, strict=True))
            name = ",".join(f"{k}={_show(v)}" for k, v in values) or "cell"
            settings = {**base, **dict(values), **_taken(name, values, extra)}
            for limit, part in share.items():
                own = settings.get(limit)
                settings[limit] = part if own is None else min(own, part)
            method = settings.pop("method", "bdpl")
            shown = settings.pop("demonstrations", 4)
            if method not in METHODS:
                raise ConfigError(f"sweep cell {name}: method {method!r} is not one of "
                                  f"{', '.join(METHODS)}")  # fmt: skip
            if isinstance(shown, bool) or not isinstance(shown, int) or shown < 1:
                raise ConfigError(f"sweep cell {name}: demonstrations must be an integer >= 1")
            try:
                config = RunConfig.build(settings)
            except ConfigError as exc:
                raise ConfigError(f"sweep cell {name}: {exc}") from None
            cells.append(Cell(_safe_name(name), values, config, method, shown))
        names = [c.name for c in cells]
        if len(set(names)) != len(names):
            raise ConfigError("grid: two cells have the same name; remove repeated values")
        return cls(tuple(cells), limits)


def _when(when: Mapping[str, Any], grid: Mapping[str, Any]) -> dict[tuple[str, str], Any]:
    """``[when.<key>.<value>]`` sections as ``{(key, value): settings}``, checked against the
    grid (a misspelt value would silently change nothing)."""
    out: dict[tuple[str, str], Any] = {}
    for key, by_value in when.items():
        if key not in grid or not isinstance(by_value, Mapping):
            raise ConfigError(f"when.{key}: {key!r} is not a grid key; use [when.<grid key>."
                              f"<value>], e.g. [when.task.rte]")  # fmt: skip
        shown = [_show(v) for v in grid[key]]
        for value, settings in by_value.items():
            if value not in shown or not isinstance(settings, Mapping):
                raise ConfigError(f"when.{key}.{value}: {value!r} is not one of grid.{key}'s "
                                  f"values {shown}")  # fmt: skip
            clash = sorted(set(settings) & set(grid))
            if clash:
                raise ConfigError(f"when.{key}.{value}: {clash} are grid keys; a cell takes "
                                  "those from the grid")  # fmt: skip
            out[(key, value)] = dict(settings)
    return out


def _taken(
    name: str, values: tuple[tuple[str, Any], ...], extra: Mapping[tuple[str, str], Any]
) -> dict[str, Any]:
    """The ``when`` settings cell ``name`` (with grid ``values``) takes; two sections that
    set one key for the same cell are an error (neither silently wins)."""
    out: dict[str, Any] = {}
    setters: dict[str, str] = {}
    for key, value in values:
        where = f"when.{key}.{_show(value)}"
        for setting, given in extra.get((key, _show(value)), {}).items():
            if setting in setters:
                raise ConfigError(f"sweep cell {name}: {setting} is set by both "
                                  f"{setters[setting]} and {where}; set it in one")  # fmt: skip
            setters[setting], out[setting] = where, given
    return out


def _shares(limits: Mapping[str, Any], cells: int) -> dict[str, float | int]:
    out: dict[str, float | int] = {}
    for name, value in limits.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise ConfigError(f"budget.{name}: give a number >= 0, got {value!r}")
        if name == "max_dollars":
            # Rounded down to the micro-dollar: the shares never add up past the limit.
            out[name] = math.floor(value / cells * 1e6) / 1e6
        else:
            out[name] = int(value) // cells
    return out


def _show(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _safe_name(name: str) -> str:
    """A folder name on every system: only letters, digits and ``=,.-_+``."""
    return re.sub(r"[^A-Za-z0-9=,.+_-]", "_", name)


def read_sweep(path: str | Path) -> Sweep:
    """Read a sweep file (see the module's documentation).

    Raises:
        ConfigError: the file is missing, not TOML, has an unknown section or a bad value.
    """
    file = Path(path)
    doc = read_toml(file, "sweep file")
    unknown = sorted(set(doc) - _SECTIONS)
    if unknown:
        raise ConfigError(f"sweep file {file}: unknown sections {unknown}; use [base], [grid], "
                          "[when], [budget]")  # fmt: skip
    try:
        return Sweep.build(
            doc.get("base", {}), doc.get("grid", {}), doc.get("budget"), doc.get("when")
        )
    except ConfigError as exc:
        raise ConfigError(f"{file}: {exc}") from None
