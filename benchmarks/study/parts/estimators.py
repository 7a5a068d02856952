"""The default estimator (``loo``) against the reference's, side by side, on the comparison
parts' bdpl cells (report only: it reads ``results/main.json`` and ``results/reduced.json``).

Stability is read from the runs' histories: each step records how many probabilities were
non-finite (NaN or inf) after the update and how many the reference estimator raised to its
floor (each one a ``1/p`` the unfloored reference code would have turned into NaN).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import common

TITLE = "Estimators: the default (loo) against the reference"
SWEEP = None
SOURCES = ("main", "reduced")
ESTIMATORS = ("loo", "reference")
Records = Sequence[Mapping[str, Any]]


def report(results: Path, figures: Path) -> str:
    parts = []
    for source in SOURCES:
        records = [r for r in common.comparable(common.load_results(results, source))
                   if r.get("method") == "bdpl"]  # fmt: skip
        if records:
            parts.append(_source(source, records, figures))
    if not parts:
        return common.skipped_section(
            TITLE,
            "no bdpl cell in `results/main.json` or "
            "`results/reduced.json`: run `main` or `reduced` first",
        )
    intro = (
        "Per task and calibration, over the split seeds: the test and dev metric (mean ± std), "
        "the steps whose distribution held a NaN or inf (`non-finite`), the probabilities the "
        "reference estimator floored (summed over steps and seeds; each would be a NaN in the "
        "unfloored reference code; always 0 for loo), and the queries sent (paid + cached + "
        "deduplicated) until the dev "
        "metric first reached the score both estimators reached in that seed (the lower of "
        "their best dev scores): median over seeds."
    )
    return common.section(TITLE, "\n\n".join([intro, *parts]))


def _source(source: str, records: Records, figures: Path) -> str:
    header = ["task", "calibration", "estimator", "test", "dev", "non-finite steps", "floored",
              "queries to the common dev score"]  # fmt: skip
    rows = []
    by = common.group_by(records, "task", "calibration")
    for (task, cal), group in by.items():
        reach = _to_common_score(group)
        for est in ESTIMATORS:
            mine = [r for r in group if r.get("estimator") == est]
            if not mine:
                continue
            nonfinite = sum(
                1 for r in mine for h in r.get("history", [])
                if h.get("kind") == "step" and h.get("nonfinite", 0) > 0
            )  # fmt: skip
            floored = sum(int(r.get("floored") or 0) for r in mine)
            rows.append(
                [
                    str(task),
                    str(cal),
                    est,
                    common.fmt_mean_std(r.get("test") for r in mine),
                    common.fmt_mean_std(r.get("dev") for r in mine),
                    common.fmt(nonfinite),
                    common.fmt(floored),
                    reach.get(est, "-"),
                ]
            )
    text = f"From `{source}`:\n\n" + common.markdown_table(header, rows).strip()
    link = _figure(source, records, figures)
    if link:
        text += f"\n\n![{source}: best dev metric so far against queries sent]({link})"
    return text


def _to_common_score(group: Records) -> dict[str, str]:
    """Per estimator: median queries sent to reach, per seed, the lower of the two estimators'
    best dev scores (``k/n`` seeds that reached it when not all did)."""
    spent: dict[str, list[int]] = {e: [] for e in ESTIMATORS}
    seeds = common.group_by(group, "data_seed", "seed")
    for cells in seeds.values():
        by_est = {r.get("estimator"): r for r in cells}
        if not all(e in by_est for e in ESTIMATORS):
            continue
        bests = [max(common.curve(by_est[e].get("history", []))[1], default=math.nan)
                 for e in ESTIMATORS]  # fmt: skip
        if any(math.isnan(b) for b in bests):
            continue
        target = min(bests)
        for e in ESTIMATORS:
            got = common.first_reaching(by_est[e].get("history", []), target)
            if got is not None:
                spent[e].append(got)
    n = len(seeds)
    out = {}
    for e, xs in spent.items():
        if xs:
            shown = f"{statistics.median(xs):,.0f}"
            out[e] = shown if len(xs) == n else f"{shown} ({len(xs)}/{n} seeds)"
    return out


def _figure(source: str, records: Records, figures: Path) -> str | None:
    plt = common.pyplot()
    by = common.group_by(records, "task", "calibration")
    if not by:
        return None
    cols = min(4, len(by))
    rows = math.ceil(len(by) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.6 * rows), squeeze=False)
    for ax, ((task, cal), group) in zip(axes.flat, by.items(), strict=False):
        for est, colour in zip(ESTIMATORS, ("tab:blue", "tab:orange"), strict=True):
            for i, r in enumerate(r for r in group if r.get("estimator") == est):
                xs, ys = common.curve(r.get("history", []))
                ax.plot(xs, ys, color=colour, alpha=0.6, marker=".",
                        label=est if i == 0 else None)  # fmt: skip
        ax.set_title(f"{task}, {cal}", fontsize=9)
        ax.set_xlabel("queries sent", fontsize=8)
        ax.set_ylabel("best dev so far", fontsize=8)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(by) :]:
        ax.axis("off")
    fig.tight_layout()
    return common.save_figure(fig, figures, f"estimators_{source}")
