"""Fewer candidates per position: BDPL against random search at equal budgets with 25 and
with 200 candidates, on the reduced comparison's tasks (``few_candidates.toml``).

The report: one table of every (task, candidates, method) over the data seeds, then per task
the candidates' count bdpl's mean dev metric chooses, and bdpl's test gap there to the
template alone (each fit's own template-only score) and to random search with the same
candidates; the goal's test (both gaps above one std over seeds) counted over the tasks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import common
import compare
from parts import _cases

TITLE = "Fewer candidates: BDPL against random search with 25 and 200 candidates"
SWEEP = "few_candidates.toml"
_KEYS = ["task", "vocab_size", "method"]
Records = Sequence[Mapping[str, Any]]


def tiny(config: dict[str, Any]) -> dict[str, Any]:
    """The first task and data seed, both counts and both methods, 1 epoch, 16 test rows."""
    return _cases.shrink(config)


def _values(records: Records, task: str, size: Any, method: str, key: str) -> list[float]:
    """``key`` of the finished cells of one (task, candidates, method), one value per seed."""
    return common.finite(
        r.get(key)
        for r in common.done(records)
        if r.get("task") == task
        and _cases.value(r, "vocab_size") == size
        and r.get("method") == method
    )


def _sizes(records: Records) -> list[Any]:
    return list(dict.fromkeys(_cases.value(r, "vocab_size") for r in common.done(records)))


def chosen_size(records: Records, task: str) -> Any:
    """The candidates' count with bdpl's highest mean dev metric on ``task`` (None if no bdpl
    cell finished): chosen on dev, never on test."""
    best, best_dev = None, -math.inf
    for size in _sizes(records):
        dev = common.mean_std(_values(records, task, size, "bdpl", "dev_learned"))[0]
        if not math.isnan(dev) and dev > best_dev:
            best, best_dev = size, dev
    return best


def _verdicts(records: Records) -> str:
    header = ["task", "candidates (on dev)", "bdpl dev", "bdpl test", "vs template alone",
              "vs random", "beats both by > 1 std"]  # fmt: skip
    rows, wins, tasks = [], [], compare.tasks(common.done(records))
    for task in tasks:
        size = chosen_size(records, task)
        if size is None:
            continue
        mine = _values(records, task, size, "bdpl", "test_learned")
        vs = {
            "manual": compare.gap(mine, _values(records, task, size, "bdpl", "test_manual")),
            "random": compare.gap(mine, _values(records, task, size, "random", "test_learned")),
        }
        both = all(v["clear"] for v in vs.values())
        wins += [task] if both else []
        rows.append([task, str(size),
                     common.fmt_mean_std(_values(records, task, size, "bdpl", "dev_learned")),
                     common.fmt_mean_std(mine), compare.show_gap(vs["manual"]),
                     compare.show_gap(vs["random"]), "yes" if both else "no"])  # fmt: skip
    return (
        "Per task: the number of candidates with bdpl's higher mean dev metric (a tie goes to "
        "the grid's first), and bdpl's test gap there to the template alone and to random "
        "search with the same candidates (mean difference; `(> std)` when it exceeds the "
        "larger of the two stds over seeds).\n\n"
        + common.markdown_table(header, rows)
        + f"\nbdpl, its candidates chosen on dev, beats both by more than one std on "
        f"{len(wins)} of {len(rows)} tasks" + (f" ({', '.join(wins)})" if wins else "") + "."
    )


def _pooled(records: Records) -> str:
    """The count dev chooses over every task and seed at once (mean bdpl dev metric)."""
    tasks = compare.tasks(common.done(records))
    means = {}
    for size in _sizes(records):
        devs = [v for t in tasks for v in _values(records, t, size, "bdpl", "dev_learned")]
        mean = common.mean_std(devs)[0]
        if not math.isnan(mean):
            means[size] = mean
    if not means:
        return ""
    shown = ", ".join(f"{s} candidates {m:.3f}" for s, m in means.items())
    return (
        f"Pooled over tasks and seeds, bdpl's mean dev metric is {shown}: dev alone, with "
        f"every task's dev examples together, would choose {max(means, key=means.__getitem__)}."
    )


def _figure(records: Records, figures: Path) -> str:
    tasks = compare.tasks(common.done(records))
    sizes = _sizes(records)
    if not tasks or not sizes:
        return ""
    plt = common.pyplot()
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.4 * len(tasks), 3.2), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for i, method in enumerate(("random", "bdpl")):
            stats = [common.mean_std(_values(records, task, s, method, "test_learned"))
                     for s in sizes]  # fmt: skip
            ax.errorbar([j + (i - 0.5) * 0.15 for j in range(len(sizes))],
                        [m for m, _ in stats], yerr=[s for _, s in stats], marker="o",
                        capsize=3, linestyle="none", label=method)  # fmt: skip
        manual = common.mean_std(_values(records, task, sizes[0], "bdpl", "test_manual"))[0]
        ax.axhline(manual, linestyle="--", color="grey", linewidth=1, label="template alone")
        ax.set_xticks(range(len(sizes)), [str(s) for s in sizes])
        ax.set_xlabel("candidates per position")
        metric = next((r.get("metric") for r in records if r.get("task") == task), "metric")
        ax.set_title(f"{task} (test {metric})")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    link = common.save_figure(fig, figures, "few_candidates")
    return f"![test metric of bdpl and random search by candidates per position]({link})"


def report(results: Path, figures: Path) -> str:
    """The part's Markdown section (every number from ``results/few_candidates.json``)."""
    records = common.load_results(results, "few_candidates")
    if not records:
        return common.skipped_section(TITLE, "no results yet (run this part)")
    parts = [
        "BDPL and random search over the same candidates at the same budget, with 25 "
        "candidates per prompt position and with the default 200 (`--vocab-size`, source "
        "`train`). With 200 candidates, 8 samples and 20 steps each candidate is drawn about "
        "0.8 times per position over a whole fit, too few for the gradient to average over; "
        "with 25, about 6 times.",
        _cases.scale(records, _KEYS),
        _cases.factor_table(records, _KEYS, ["task", "candidates", "method"]),
        "Mean ± std over data seeds; `learned` is the method's chosen prompt (best on dev), "
        "`manual` the template alone in the same fit. Final entropy: of bdpl's prompt "
        "distribution after the last step, in nats (uniform: 3.22 for 25 candidates, 5.30 "
        "for 200; random search never moves it). Queries: sent per run (paid, cached or "
        "deduplicated). Minutes: summed over the seeds (cells an earlier part had paid for "
        "take seconds).",
        _verdicts(records),
        _pooled(records),
        _figure(records, figures),
    ]
    return common.section(TITLE, "\n\n".join(p.strip() for p in parts if p))
