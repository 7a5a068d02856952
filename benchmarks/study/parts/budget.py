"""Case study: the budget: dev and test metric against the queries sent.

A run folder records the dev metric after every epoch (``history.jsonl``) and the test metric
of the final prompt only. So this part runs its fits, then scores on test, through the same
metering layer, the prompt each run would have kept had its budget ended after epoch ``e``:
the best dev prompt of epochs ``0..e`` (the optimizer keeps the later of equal scores). The
curves put both against the queries sent through the meter up to the last training step of
each epoch (paid, cached or deduplicated: ``common.sent``, the count a budget limits); the dev
evaluation after that step is not counted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import common
from parts import _cases

TITLE = "Case study: budget (metric against queries sent)"
SWEEP = None
FILE = "budget.toml"


def shrink(config: dict[str, Any]) -> dict[str, Any]:
    """The ``--tiny`` fits: one data seed, 2 epochs (two points on the curve)."""
    shrunk = _cases.shrink(config)
    shrunk["base"]["epochs"] = 2
    return shrunk


def curve(history: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per epoch: queries sent (paid or cached), the epoch's dev metric, and the best dev
    prompt so far."""
    points: list[dict[str, Any]] = []
    sent, best, kept = 0, None, None
    for h in history:
        if h.get("kind") == "step":
            sent = common.sent(h)
        elif h.get("kind") == "epoch" and h.get("dev_metric") is not None:
            score = float(h["dev_metric"])
            if best is None or score >= best:
                best, kept = score, list(h["prompt"])
            points.append({"epoch": h["epoch"], "queries": sent, "dev": score,
                           "best_dev": best, "kept": kept})  # fmt: skip
    return points


def _score_on_test(out: Path, record: dict[str, Any]) -> None:
    """Add ``test`` (the kept prompt's test metric) to each point of the record's curve."""
    from bdpl.cli.runs import build_meter, load_data
    from bdpl.optimizer import Optimizer

    config = _cases.run_config(record)
    test = load_data(config).test
    if test is None:
        return
    scores: dict[tuple[str, ...], float] = {}
    with build_meter(config, ledger=None, cache=_cases.cache_of(out)) as meter:
        optimizer = Optimizer.load(Path(record["run"]) / "prompt.json", meter=meter)
        for point in record["curve"]:
            key = tuple(point["kept"])
            if key not in scores:
                scores[key] = optimizer.evaluate(test, prompt=list(key))
            point["test"] = scores[key]


def run(out: Path, backend: str | None, tiny: bool) -> None:
    """Fit, then score each epoch's kept prompt on test; write ``results/budget.json``."""
    config = _cases.sweep_config(FILE, backend, tiny, shrink)
    records = _cases.run_grid(out, "budget", config)
    for record in records:
        if record["status"] == "done":
            record["curve"] = curve(record["history"])
            _score_on_test(out, record)
    common.write_results(out, "budget", {"cells": records, "sweep_config": config})


def _mean_curve(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    by_epoch: dict[int, list[Mapping[str, Any]]] = {}
    for r in records:
        for p in r.get("curve") or []:
            by_epoch.setdefault(int(p["epoch"]), []).append(p)
    return [
        {"epoch": e, "runs": len(ps),
         "queries": common.mean_std(p["queries"] for p in ps)[0],
         "dev": [p["dev"] for p in ps], "best_dev": [p["best_dev"] for p in ps],
         "test": [p.get("test") for p in ps]}
        for e, ps in sorted(by_epoch.items())
    ]  # fmt: skip


def _figure(records: Sequence[Mapping[str, Any]], figures: Path) -> str:
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for i, r in enumerate(records):
        pts = r.get("curve") or []
        xs = [p["queries"] for p in pts]
        seed = _cases.value(r, _cases.SEED)
        ax.plot(xs, [p["dev"] for p in pts], color=f"C{i}", alpha=0.35, linewidth=1)
        ax.plot(xs, [p["best_dev"] for p in pts], color=f"C{i}", linestyle="--",
                label=f"seed {seed}: best dev so far")  # fmt: skip
        ax.plot(xs, [p.get("test") for p in pts], color=f"C{i}", marker="o", markersize=3,
                label=f"seed {seed}: test of the kept prompt")  # fmt: skip
        if r.get("test_manual") is not None:
            ax.axhline(r["test_manual"], color=f"C{i}", linestyle=":", linewidth=1)
    metric = next((r.get("metric") for r in records if r.get("metric")), "metric")
    ax.set_xlabel("queries sent (paid, cached or deduplicated)")
    ax.set_ylabel(str(metric))
    ax.set_title("thin: each epoch's dev; dotted: test of the template alone", fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    link = common.save_figure(fig, figures, "budget")
    return f"![dev and test {metric} against paid queries]({link})"


def report(results: Path, figures: Path) -> str:
    records = common.load_results(results, "budget")
    if not records:
        return common.skipped_section(TITLE, "no results yet (run this part)")
    done = [r for r in common.done(records) if r.get("curve")]
    rows = []
    for p in _mean_curve(done):
        rows.append([
            str(p["epoch"] + 1), str(p["runs"]), common.fmt(round(p["queries"])),
            common.fmt_mean_std(p["dev"]), common.fmt_mean_std(p["best_dev"]),
            common.fmt_mean_std(p["test"]),
        ])  # fmt: skip
    table = common.markdown_table(
        ["epochs", "runs", "queries (mean)", "dev of the epoch", "best dev so far",
         "test of the kept prompt"], rows,
    )  # fmt: skip
    final = ""
    if done:
        sent = round(common.mean_std(_cases.queries(r) for r in done)[0])
        learned = common.fmt_mean_std(r.get("test_learned") for r in done)
        manual = common.fmt_mean_std(r.get("test_manual") for r in done)
        final = (
            f"At the end (closing evaluations included): {common.fmt(sent)} queries on "
            f"average; test learned {learned}, template alone {manual}."
        )
    intro = (
        "The run folder records dev after every epoch and test only at the end, so after "
        "the fits this part scored on test the prompt each run would have kept had it "
        "stopped after each epoch (its best dev prompt so far), from the same cache. Queries: "
        "sent through the meter up to the epoch's last training step (paid, cached or "
        "deduplicated: the count a budget limits); the dev evaluation after that step is "
        "not counted."
    )
    body = "\n\n".join(x for x in (intro, _cases.scale(records), table, final,
                                   _figure(done, figures) if done else "") if x)  # fmt: skip
    return common.section(TITLE, body)
