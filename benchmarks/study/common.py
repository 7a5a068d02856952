"""Shared helpers of the benchmark study's parts: results records, statistics, tables, figures.

A part's compact results live in ``<out>/results/<part>.json``, written by ``study.py run``:

    {"part": ..., "title": ..., "sweep": "<part>.toml" | null, "tiny": bool,
     "backend": "<override or null>", "commands": [...], "machine": {...},
     "started": "<UTC ISO date>", "finished": "<UTC ISO date>", "versions": {...},
     "cells": [<record>, ...], "extra": {...}}

Each record (one sweep cell) holds the keys listed in :data:`RECORD_FIELDS`. A part that runs
itself writes its own ``cells``/``extra`` with :func:`write_results`.

Parts import this module as ``common`` (``study.py`` runs from this folder, so it is on
``sys.path``).
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

#: The keys of one cell record (see :func:`load_results`).
RECORD_FIELDS = (
    "cell",  # the cell's name (its run folder), e.g. "task=sst2,seed=13,method=bdpl"
    "group",  # the sweep's group: the name without a grid key "seed" (parts group their own)
    "status",  # "done" or "failed"
    "error",  # the failure, or None
    "values",  # the grid values of the cell: {"task": "sst2", "seed": 13, ...}
    "config",  # the full run configuration (RunConfig fields) plus "method", "demonstrations"
    "task", "data_seed", "seed", "method", "estimator", "calibration", "backend",  # config
    # data_seed is the 16-shot split's seed (the study's "seeds"), seed the optimizer's
    "metric",  # the task's metric name ("accuracy", "f1", "mcc", ...)
    "dev_manual", "dev_learned", "test_manual", "test_learned",  # final scores (or None)
    "dev", "test",  # the method's own final score: dev_learned / test_learned
    "test_rows",  # test examples scored (None without a test set)
    "prompt",  # the learned prompt (list of phrases; [] for manual/in-context)
    "stop_reason",
    "paid_queries", "cached_queries", "duplicates", "dollars",  # whole run, evaluation included
    "train_paid_queries",  # paid queries at the last training step (0 without steps)
    "steps",  # training steps taken
    "nonfinite",  # steps whose distribution held a NaN/inf (sum over steps)
    "floored",  # probabilities at the reference estimator's floor (sum over steps)
    "final_entropy",  # the last step's entropy, mean over positions (nats); None without steps
    "wall_seconds",  # the run's metrics.json seconds (a resumed run: its last process); or None
    "history",  # the run's history.jsonl, compacted (no distributions)
)  # fmt: skip

# A table entry that is a number: "0.812", "1,024", "+0.031 (> std)", "0.81 ± 0.03", "12/16".
_NUMBER = re.compile(r"^[-+]?[\d,]*\.?\d+(?:%| ± [\d.]+|/\d+)?(?: \(.*\))?$")

# Set by ``study.py report``: the folder of the Markdown file figures are linked from.
MARKDOWN_DIR: Path = ROOT


def write_results(out: Path, part: str, doc: Mapping[str, Any]) -> Path:
    """Write ``<out>/results/<part>.json`` atomically; return its path."""
    folder = out / "results"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{part}.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True, default=str) + "\n", "utf-8")
    os.replace(tmp, path)
    return path


def load_part(results: Path, part: str) -> dict[str, Any] | None:
    """The whole results document of ``part`` (metadata and cells), or None if not run."""
    path = results / f"{part}.json"
    if not path.is_file():
        return None
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def load_results(results: Path, part: str) -> list[dict[str, Any]]:
    """One record per cell of ``part`` (keys: :data:`RECORD_FIELDS`); [] if it was not run."""
    doc = load_part(results, part)
    return [] if doc is None else list(doc.get("cells", []))


def done(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The finished records."""
    return [r for r in records if r.get("status") == "done"]


def comparable(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The finished records, each method once: a sweep grid crosses ``estimator`` with every
    method, but only bdpl has one; the other methods' repeats (same queries, all cached) are
    dropped, keeping the first of each (task, data_seed, seed, method, calibration)."""
    seen: set[tuple[Any, ...]] = set()
    out = []
    for r in done(records):
        if r.get("method") != "bdpl":
            key = tuple(r.get(k) for k in ("task", "data_seed", "seed", "method", "calibration"))
            if key in seen:
                continue
            seen.add(key)
        out.append(r)
    return out


def group_by(
    records: Iterable[Mapping[str, Any]], *keys: str
) -> dict[tuple[Any, ...], list[Mapping[str, Any]]]:
    """Records grouped by the values of ``keys`` (insertion order kept)."""
    out: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for r in records:
        out.setdefault(tuple(r.get(k) for k in keys), []).append(r)
    return out


def finite(values: Iterable[Any]) -> list[float]:
    """The values that are finite numbers (None, NaN and inf dropped)."""
    out = []
    for v in values:
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            out.append(float(v))
    return out


def mean_std(values: Iterable[Any]) -> tuple[float, float]:
    """Mean and sample standard deviation of the finite values (std 0 for one value, both
    NaN for none)."""
    xs = finite(values)
    if not xs:
        return math.nan, math.nan
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def fmt(value: Any, digits: int = 3) -> str:
    """A number for a table: ``digits`` decimals, thousands grouped for integers; ``-`` for
    None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def fmt_mean_std(values: Iterable[Any], digits: int = 3) -> str:
    """``mean ± std`` of the finite values; ``value (1 seed)`` for one (it has no spread to
    show); ``-`` for none."""
    xs = finite(values)
    m, s = mean_std(xs)
    if math.isnan(m):
        return "-"
    if len(xs) == 1:
        return f"{m:.{digits}f} (1 seed)"
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub Markdown table (``|`` in cells escaped); numeric-looking columns right-aligned."""

    def cell(text: Any) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    def numeric(col: int) -> bool:
        seen = [r[col] for r in rows if col < len(r) and str(r[col]) not in ("-", "")]
        return bool(seen) and all(_NUMBER.match(str(v)) for v in seen)

    align = ["---:" if numeric(i) else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, figures: Path, name: str) -> str:
    """Save ``fig`` as ``figures/<name>.png`` (closing it); return its link relative to the
    Markdown file's folder (:data:`MARKDOWN_DIR`), with ``/`` separators."""
    figures.mkdir(parents=True, exist_ok=True)
    file = figures / (name if name.endswith(".png") else f"{name}.png")
    fig.savefig(file, dpi=110, bbox_inches="tight")
    pyplot().close(fig)
    return Path(os.path.relpath(file.resolve(), MARKDOWN_DIR.resolve())).as_posix()


def sent(step: Mapping[str, Any]) -> int:
    """Queries sent through the meter up to a history step: paid + cached + deduplicated.

    The budget's count, and what code without a cache pays; unlike the paid count, it does
    not depend on which other cells filled the shared cache first.
    """
    return int(step.get("paid_queries") or 0) + int(step.get("cached_queries") or 0)


def first_reaching(history: Sequence[Mapping[str, Any]], target: float) -> int | None:
    """Queries sent (:func:`sent`) when an epoch's dev metric first reached ``target`` (the
    count at that epoch's last step), or None if it never did."""
    count = 0
    for h in history:
        if h.get("kind") == "step":
            count = sent(h)
        elif h.get("kind") == "epoch":
            score = h.get("dev_metric")
            if score is not None and score >= target:
                return count
    return None


def curve(history: Sequence[Mapping[str, Any]]) -> tuple[list[int], list[float]]:
    """(queries sent, best dev metric so far) after each epoch of a history."""
    xs: list[int] = []
    ys: list[float] = []
    count, best = 0, -math.inf
    for h in history:
        if h.get("kind") == "step":
            count = sent(h)
        elif h.get("kind") == "epoch" and h.get("dev_metric") is not None:
            best = max(best, float(h["dev_metric"]))
            xs.append(count)
            ys.append(best)
    return xs, ys


def label(record: Mapping[str, Any]) -> str:
    """A method's short name: ``bdpl (loo)``, ``bdpl (reference)``, ``random``, ``manual``..."""
    method = str(record.get("method"))
    if method == "bdpl":
        return f"bdpl ({record.get('estimator')})"
    return method


def section(title: str, body: str) -> str:
    """A part's Markdown section: ``## title`` then ``body``."""
    return f"## {title}\n\n{body.strip()}\n"


def skipped_section(title: str, why: str) -> str:
    """The section of a part that did not run (e.g. needs the real model under ``fake``)."""
    return section(title, f"_Not run: {why}_")


def sweep_config(
    file: str,
    backend: str | None,
    tiny: bool,
    tiny_fn: Callable[[dict[str, Any]], dict[str, Any]],
) -> dict[str, Any]:
    """The sweep file ``benchmarks/study/<file>`` as a dict, shrunk by ``tiny_fn`` when
    ``tiny`` (its ``[when.<key>.<value>]`` sections kept for the values the smaller grid
    still has), with every cell's backend replaced by ``backend`` when given (a backend
    that runs no model here drops ``max_input_tokens``, a setting only the local ones take).
    """
    from bdpl.cli.backends import is_local
    from bdpl.cli.config import read_toml

    config = read_toml(HERE / file, "sweep file")
    when = config.get("when", {})
    if tiny:
        config = tiny_fn(config)
        kept = {k: {str(v) for v in values} for k, values in config["grid"].items()}
        config["when"] = {
            key: {v: s for v, s in by_value.items() if v in kept.get(key, ())}
            for key, by_value in when.items()
        }
    if backend is not None:
        config.setdefault("base", {})["backend"] = backend
        config.get("grid", {}).pop("backend", None)
        if not is_local(backend):
            config["base"].pop("max_input_tokens", None)
            for by_value in config.get("when", {}).values():
                for settings in by_value.values():
                    settings.pop("max_input_tokens", None)
    return config
