"""Efficiency: what the cache and deduplication save against the reference's accounting, the
queries each method needs to reach the reference estimator's final dev score, wall time per
fit, and each backend's queries per second.

It reads the comparison parts' results (``main``, ``reduced``) and runs one sweep of its own:
the reduced study's bdpl fits of one seed on the ``fake`` backend (whatever ``--backend``
says), to measure the metering layer's own throughput beside the model's.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import common
import sweeps

TITLE = "Efficiency: queries, cache savings, wall time and throughput"
SWEEP = None
SOURCES = ("main", "reduced")
VARIANTS = ("random", "bdpl (loo)", "bdpl (reference)")
Records = Sequence[Mapping[str, Any]]


def run(out: Path, backend: str | None, tiny: bool) -> None:
    """The fake backend's throughput on the reduced study's tasks (bdpl, default estimator),
    with a query cache of its own (``out/runs/efficiency/cache``)."""
    from bdpl.cli.config import read_toml

    config = read_toml(common.HERE / "reduced.toml", "sweep file")
    grid = config["grid"]
    base = {**config["base"], "backend": "fake"}
    if tiny:
        base.update(epochs=1, test_rows=8)
    fake_grid = {"task": grid["task"][:1] if tiny else grid["task"],
                 "data_seed": grid["data_seed"][:1], "method": ["bdpl"]}  # fmt: skip
    # A cache of its own, inside its run folder: the shared one may already hold these fake
    # answers (an earlier run of this part), and a throughput of cache hits measures nothing.
    # Finished cells are skipped on a rerun, so their paid counts stay what was paid.
    private = out / "runs" / "efficiency" / "cache"
    result = sweeps.run("efficiency", {"base": base, "grid": fake_grid}, out, cache=private)
    common.write_results(out, "efficiency", {"cells": result["cells"], "failed": result["failed"],
                                             "sweep_config": result["sweep_config"]})  # fmt: skip


def report(results: Path, figures: Path) -> str:
    parts = []
    for source in SOURCES:
        every = common.load_results(results, source)
        records = common.comparable(every)
        if any(r.get("method") in ("bdpl", "random") for r in records):
            parts.append(_source(source, records, figures, _total(every)))
    throughput = _throughput(results)
    if not parts and not throughput:
        return common.skipped_section(
            TITLE, "no results yet: run `main`, `reduced` or `efficiency`"
        )
    return common.section(TITLE, "\n\n".join([*parts, throughput]))


def _source(source: str, records: Records, figures: Path, total: str) -> str:
    fits = [r for r in records if r.get("method") in ("bdpl", "random")]
    text = [f"### From `{source}`", _savings(fits), _to_reference(records), _walls(records),
            total]  # fmt: skip
    link = _figure(source, fits, figures)
    if link:
        text.append(f"![{source}: paid queries per fit against the reference's accounting]({link})")
    return "\n\n".join(t for t in text if t)


def _training(record: Mapping[str, Any]) -> tuple[int, int]:
    """(paid, sent) queries through the last training step: sent = paid + cached +
    deduplicated, what the reference code pays (it has no cache and no deduplication)."""
    steps = [h for h in record.get("history", []) if h.get("kind") == "step"]
    if not steps:
        return 0, 0
    return int(steps[-1].get("paid_queries", 0)), common.sent(steps[-1])


def _savings(fits: Records) -> str:
    header = ["task", "method", "fits", "steps x sample x batch", "sent (reference accounting)",
              "paid (cache + dedup)", "paid / sent"]  # fmt: skip
    rows = []
    for (task, variant), group in common.group_by(
        [{**r, "variant": common.label(r)} for r in fits], "task", "variant"
    ).items():
        sampled = [int(r.get("steps") or 0) * int(r["config"]["sample_size"])
                   * int(r["config"]["batch_size"]) for r in group]  # fmt: skip
        paid = sum(_training(r)[0] for r in group)
        sent = sum(_training(r)[1] for r in group)
        rows.append([str(task), str(variant), str(len(group)), common.fmt(sum(sampled)),
                     common.fmt(sent), common.fmt(paid),
                     common.fmt(paid / sent if sent else math.nan)])  # fmt: skip
    return (
        "Training queries per method, summed over its fits (every seed and calibration): "
        "`steps x sample x batch` is the reference's accounting of its training steps (every "
        "sampled prompt x minibatch paid); `sent` adds the dev evaluations between epochs "
        "(all the reference code would pay for the same run, with no cache and no "
        "deduplication); `paid` is what bdpl paid with its cache (one cache for all the "
        "study's cells and parts, so a fit pays nothing for what an earlier one paid) and "
        "deduplication.\n\n" + common.markdown_table(header, rows).strip()
    )


def _to_reference(records: Records) -> str:
    """Per task: queries sent until each method's dev first reached the reference estimator's
    final dev score (per seed and calibration; median over them)."""
    header = ["task", *(f"{v}: queries (reached)" for v in VARIANTS)]
    rows = []
    for (task,), group in common.group_by(records, "task").items():
        spent: dict[str, list[int]] = {v: [] for v in VARIANTS}
        runs = 0
        for cells in common.group_by(group, "data_seed", "seed", "calibration").values():
            by = {common.label(r): r for r in cells}
            ref = by.get("bdpl (reference)")
            if ref is None or ref.get("dev") is None:
                continue
            runs += 1
            for v in VARIANTS:
                if v in by:
                    got = common.first_reaching(by[v].get("history", []), float(ref["dev"]))
                    if got is not None:
                        spent[v].append(got)
        if runs:
            rows.append([str(task), *(f"{statistics.median(spent[v]):,.0f} "
                                      f"({len(spent[v])}/{runs})" if spent[v] else f"- (0/{runs})"
                                      for v in VARIANTS)])  # fmt: skip
    if not rows:
        return ""
    return (
        "Queries sent (paid + cached + deduplicated: what a budget counts, whichever cell paid "
        "first) until the dev metric first reached the reference estimator's final dev score "
        "(same task, seed and calibration): median over the runs that reached it (`reached` "
        "counts them).\n\n" + common.markdown_table(header, rows).strip()
    )


def _walls(records: Records) -> str:
    methods = ["manual", "in-context", *VARIANTS]
    header = ["task", *(f"{m} (s)" for m in methods)]
    rows = []
    for (task,), group in common.group_by(records, "task").items():
        row = [str(task)]
        for m in methods:
            row.append(common.fmt_mean_std((r.get("wall_seconds") for r in group
                                            if common.label(r) == m), digits=2))  # fmt: skip
        rows.append(row)
    return (
        "Wall time per fit in seconds (mean ± std over seeds and calibrations; loading the "
        "backend, training, dev and test evaluation, as each run's `metrics.json` records it; "
        "`-`: not recorded, by runs from before bdpl recorded it):\n\n"
        + common.markdown_table(header, rows).strip()
    )


def _total(records: Records) -> str:
    """A sentence: the part's wall time, summed over every finished cell that recorded it
    (the repeats that only read the cache included), or "" if none did."""
    walls = [float(r["wall_seconds"]) for r in common.done(records) if r.get("wall_seconds")]
    if not walls:
        return ""
    return (
        f"In all, the {len(walls)} finished cells that recorded their wall time took "
        f"{sum(walls) / 60:.1f} minutes summed (the cells of a task "
        "and seed share the cache: the first to ask a query pays for it, so the fits' times "
        "vary with their order)."
    )


def _throughput(results: Path) -> str:
    """Paid queries per second of wall time, per backend, over every part's cells."""
    totals: dict[str, list[float]] = {}
    for file in sorted(results.glob("*.json")):
        for r in common.load_results(results, file.stem):
            wall, paid = r.get("wall_seconds"), r.get("paid_queries")
            if r.get("status") != "done" or not wall or not paid or "backend" not in r:
                continue
            entry = totals.setdefault(str(r["backend"]), [0.0, 0.0, 0.0])
            entry[0] += float(paid)
            entry[1] += float(wall)
            entry[2] += 1
    if not totals:
        return (
            "### Throughput per backend\n\nNo finished cell recorded both its wall time and "
            "paid queries (runs from before bdpl recorded its wall time, or every answer "
            "came from the cache): rerun the parts from an empty `out/runs/` to measure it."
        )
    rows = [[f"`{b}`", common.fmt(int(c)), common.fmt(int(p)), common.fmt(w, 1),
             common.fmt(p / w, 1)] for b, (p, w, c) in totals.items()]  # fmt: skip
    return (
        "### Throughput per backend\n\nPaid queries per second of wall time over every "
        "finished cell of every part (end to end: loading the backend, tokenising, metering, "
        "writing the run folder). The `fake` row is the metering layer's own ceiling (the "
        "`efficiency` part's sweep); earlier micro-benchmarks of the backends alone are in "
        "`benchmarks/results/local.md`.\n\n"
        + common.markdown_table(
            ["backend", "cells", "paid queries", "seconds", "queries/s"], rows
        ).strip()
    )


def _figure(source: str, fits: Records, figures: Path) -> str | None:
    if not fits:
        return None
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    for variant, marker in zip(VARIANTS, ("s", "o", "^"), strict=True):
        pts = [_training(r) for r in fits if common.label(r) == variant]
        if pts:
            ax.scatter([s for _, s in pts], [p for p, _ in pts], marker=marker, label=variant,
                       alpha=0.7)  # fmt: skip
    top = max(s for _, s in (_training(r) for r in fits)) or 1
    ax.plot([0, top], [0, top], color="grey", lw=0.8, ls="--", label="paid = sent")
    ax.set_xlabel("queries sent (reference accounting)")
    ax.set_ylabel("queries paid (cache + dedup)")
    ax.set_title(f"{source}: training queries per fit")
    ax.legend(fontsize=8)
    return common.save_figure(fig, figures, f"efficiency_{source}")
