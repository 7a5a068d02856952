"""What the case-study parts share (not a part itself: its name starts with ``_``).

- :func:`shrink`: the ``--tiny`` form of a case study's grid (one data seed, 1 epoch, 16 test
  rows, the studied values cut to ``keep``).
- :func:`run_grid`: the fits of a part that runs itself (``budget``, ``transfer``,
  ``explanations``), as the sweep parts' (resumable cells under ``OUT/runs/<part>``, the
  study's query cache ``OUT/runs/cache``), before the part works on their run folders.
- :func:`factor_section`: the report of a one-factor study (a table of mean ± std over data
  seeds per studied value, the value dev would choose, and a figure), every number computed
  from the records; :func:`scale` says the scale a part ran at.

The case studies vary one setting of the main job (SST-2 on the embedded SmolLM2, the paper's
template, content-free calibration, prompt length 3, 8 samples, batch 16, 10 epochs: the
settings ``benchmarks/results/main_job.md`` chose on dev) over the 16-shot data seeds 13, 21
and 42; their seed is the data seed (``data_seed``), the optimizer's ``seed`` stays 0.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import common

if TYPE_CHECKING:
    from bdpl.cli.config import RunConfig

SEED = "data_seed"
# The settings a case study's scale line names when they are the same in every cell.
_SHOWN = (
    ("task", "task"), ("backend", "backend"), ("k", "k per class"),
    ("calibration", "calibration"), ("template", "template"), ("prompt_length", "prompt length"),
    ("sample_size", "sample size"), ("batch_size", "batch"), ("epochs", "epochs"),
    ("loss", "loss"), ("estimator", "estimator"), ("vocab_size", "vocabulary size"),
    ("vocab_source", "vocabulary source"), ("test_rows", "test rows"), ("seed", "optimizer seed"),
)  # fmt: skip


def plain(key: str, value: Any) -> str:
    """A setting's value as a table shows it (parts with named values pass their own)."""
    return str(value)


def shrink(config: Mapping[str, Any], keep: Mapping[str, int] | None = None) -> dict[str, Any]:
    """``config`` (a sweep file as a dict) cut to a smoke test: the first task and data seed,
    1 epoch, 16 test rows, and each grid key of ``keep`` cut to its first ``keep[key]``
    values."""
    grid = {k: list(v) for k, v in config.get("grid", {}).items()}
    for key in ("task", "seed", SEED):
        if key in grid:
            grid[key] = grid[key][:1]
    for key, n in (keep or {}).items():
        grid[key] = grid[key][:n]
    base = {**config.get("base", {}), "epochs": 1, "test_rows": 16}
    return {**config, "base": base, "grid": grid}


sweep_config = common.sweep_config


def run_grid(out: Path, part: str, config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Run (or resume) the fits ``config`` describes, as a sweep part's (``sweeps.run``:
    cells one by one in this process, finished ones skipped, a killed one resumed, answers
    from and to the study's cache ``OUT/runs/cache``); one record per cell, with ``run``,
    its run folder, added."""
    import sweeps

    records: list[dict[str, Any]] = sweeps.run(part, config, out)["cells"]
    for r in records:
        r["run"] = str(run_folder(out, part, r["cell"]))
    return records


def run_config(record: Mapping[str, Any]) -> RunConfig:
    """The record's :class:`~bdpl.cli.config.RunConfig` (its config less the sweep's
    ``method`` and ``demonstrations``)."""
    from bdpl.cli.config import RunConfig

    skipped = ("method", "demonstrations")
    return RunConfig.build({k: v for k, v in record["config"].items() if k not in skipped})


def run_folder(out: Path, part: str, cell: str) -> Path:
    """The run folder of a cell of ``part`` (as ``sweeps.run`` lays them out)."""
    return out / "runs" / part / "cells" / cell


def cache_of(out: Path) -> str:
    """The study's query cache directory (shared by every part)."""
    return str(out / "runs" / "cache")


# ------------------------------------------------------------------------------ reports
def value(record: Mapping[str, Any], key: str) -> Any:
    """The record's value of setting ``key``: its grid value, else its configuration's."""
    values = record.get("values") or {}
    return values[key] if key in values else (record.get("config") or {}).get(key)


def scale(records: Sequence[Mapping[str, Any]], varied: Sequence[str] = ()) -> str:
    """One sentence: the cells, data seeds and the settings every cell shares."""
    if not records:
        return ""
    seeds = sorted({value(r, SEED) for r in records}, key=lambda s: (str(type(s)), s))
    shared = []
    for key, name in _SHOWN:
        if key in varied:
            continue
        seen = {json.dumps(value(r, key), sort_keys=True) for r in records}
        if len(seen) == 1:
            shown = value(records[0], key)
            if shown is not None:
                shared.append(f"{name} `{shown}`")
            elif key == "template":
                shared.append("the preset's template")
    done = common.done(records)
    runs = f"{len(records)} run" + ("" if len(records) == 1 else "s")
    text = (
        f"Scale: {runs} ({len(done)} finished), data seeds "
        f"{', '.join(str(s) for s in seeds)}; {', '.join(shared)}."
    )
    failed = [str(r["cell"]) for r in records if r.get("status") != "done"]
    if failed:
        text += f" Not finished: {', '.join(failed)}."
    return text


def _gain(rows: Sequence[Mapping[str, Any]]) -> list[float]:
    return [
        float(r["test_learned"]) - float(r["test_manual"])
        for r in rows
        if r.get("test_learned") is not None and r.get("test_manual") is not None
    ]


def _minutes(rows: Sequence[Mapping[str, Any]]) -> str:
    walls = common.finite(r.get("wall_seconds") for r in rows)
    return common.fmt(sum(walls) / 60, 1) if walls else "-"


def queries(record: Mapping[str, Any]) -> int | None:
    """Queries the run sent through the meter: paid, cached or deduplicated (as
    ``common.sent`` counts a step). The study's cells share one cache, so the paid count
    depends on which cell ran first; this does not."""
    paid = record.get("paid_queries")
    if paid is None:
        return None
    return int(paid) + int(record.get("cached_queries") or 0) + int(record.get("duplicates") or 0)


def factor_rows(
    records: Sequence[Mapping[str, Any]], keys: Sequence[str]
) -> list[tuple[tuple[Any, ...], list[Mapping[str, Any]]]]:
    """Finished records grouped by their values of ``keys``, in grid order."""
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for r in common.done(records):
        groups.setdefault(tuple(value(r, k) for k in keys), []).append(r)
    return list(groups.items())


def factor_table(
    records: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    names: Sequence[str],
    show: Callable[[str, Any], str] = plain,
) -> str:
    """Mean ± std over data seeds per value of ``keys``: dev and test of the manual and the
    learned prompt, the test gain, the distribution's final entropy, :func:`queries` (mean)
    and minutes (summed over seeds)."""
    header = [*names, "runs", "dev manual", "dev learned", "test manual", "test learned",
              "test gain", "final entropy", "queries", "minutes"]  # fmt: skip
    rows = []
    for combo, group in factor_rows(records, keys):
        sent = common.mean_std(queries(r) for r in group)[0]
        rows.append([
            *(show(k, v) for k, v in zip(keys, combo, strict=True)),
            str(len(group)),
            common.fmt_mean_std(r.get("dev_manual") for r in group),
            common.fmt_mean_std(r.get("dev_learned") for r in group),
            common.fmt_mean_std(r.get("test_manual") for r in group),
            common.fmt_mean_std(r.get("test_learned") for r in group),
            common.fmt_mean_std(_gain(group)),
            common.fmt_mean_std(r.get("final_entropy") for r in group),
            common.fmt(round(sent) if sent == sent else None),
            _minutes(group),
        ])  # fmt: skip
    return common.markdown_table(header, rows)


def chosen_on_dev(
    records: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    show: Callable[[str, Any], str] = plain,
) -> str:
    """A sentence: the value with the best mean learned dev metric, and its test metric."""
    best: tuple[float, tuple[Any, ...], list[Mapping[str, Any]]] | None = None
    for combo, group in factor_rows(records, keys):
        dev = common.mean_std(r.get("dev_learned") for r in group)[0]
        if dev == dev and (best is None or dev > best[0]):
            best = (dev, combo, group)
    if best is None:
        return ""
    dev, combo, group = best
    setting = ", ".join(f"{k} = {show(k, v)}" for k, v in zip(keys, combo, strict=True))
    test = common.fmt_mean_std(r.get("test_learned") for r in group)
    return (
        f"Chosen on dev (highest mean learned dev metric, {dev:.3f}): {setting}; its test "
        f"metric is {test} (test was not used to choose)."
    )


def factor_figure(
    records: Sequence[Mapping[str, Any]],
    key: str,
    figures: Path,
    name: str,
    *,
    line: str | None = None,
    show: Callable[[str, Any], str] = plain,
    tick: Callable[[str, Any], str] | None = None,
    log_x: bool = False,
) -> str:
    """Learned dev and test metric (mean ± std over data seeds) against ``key``, one curve
    per value of ``line`` when given (named by ``show``; the x ticks by ``tick``, else
    ``show``); returns the Markdown image link ("" if nothing ran)."""
    keys = [key] if line is None else [line, key]
    rows = factor_rows(records, keys)
    if not rows:
        return ""
    plt = common.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    numeric = all(isinstance(c[-1], int | float) for c, _ in rows)
    order = {v: i for i, v in enumerate(dict.fromkeys(c[-1] for c, _ in rows))}
    series: dict[Any, list[tuple[Any, list[Mapping[str, Any]]]]] = {}
    for combo, group in rows:
        series.setdefault(combo[0] if line is not None else None, []).append((combo[-1], group))
    for ax, split in zip(axes, ("dev", "test"), strict=True):
        for label, points in series.items():
            xs = [x if numeric else order[x] for x, _ in points]
            stats = [common.mean_std(r.get(f"{split}_learned") for r in g) for _, g in points]
            ax.errorbar(
                xs,
                [m for m, _ in stats],
                yerr=[s for _, s in stats],
                marker="o",
                capsize=3,
                linestyle="-" if numeric else "none",  # unordered values are not joined
                label="learned" if label is None else show(line or "", label),
            )
            manual = [common.mean_std(r.get(f"{split}_manual") for r in g)[0] for _, g in points]
            ax.plot(xs, manual, linestyle="--", color="grey", linewidth=1)
        ax.set_title(f"{split} (dashed: template alone)")
        ax.set_xlabel(key.replace("_", " "))
        if log_x and numeric:
            ax.set_xscale("log", base=2)
        if numeric:
            ax.set_xticks(list(order), [str(v) for v in order])
            ax.minorticks_off()
        else:
            names = [textwrap.fill((tick or show)(key, v), 22) for v in order]
            ax.set_xticks(list(order.values()), names, fontsize=7)
    metric = next((r.get("metric") for r in common.done(records) if r.get("metric")), "metric")
    axes[0].set_ylabel(str(metric))
    axes[-1].legend(fontsize=7)
    link = common.save_figure(fig, figures, name)
    return f"![learned dev and test {metric} by {key.replace('_', ' ')}]({link})"


def factor_section(
    title: str,
    records: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    names: Sequence[str],
    figures: Path,
    figure: str,
    *,
    intro: str,
    show: Callable[[str, Any], str] = plain,
    tick: Callable[[str, Any], str] | None = None,
    log_x: bool = False,
    not_chosen: str | None = None,
) -> str:
    """The Markdown section of a one-factor (or two-factor) case study; ``not_chosen``,
    when given, says why the studied value is not a setting to choose on dev and replaces
    the chosen-on-dev sentence."""
    if not records:
        return common.skipped_section(title, "no results yet (run this part)")
    line = keys[0] if len(keys) > 1 else None
    parts = [
        intro,
        scale(records, keys),
        factor_table(records, keys, names, show),
        "Mean ± std over data seeds. Test gain: learned minus template alone, per seed. "
        "Final entropy: of the prompt distribution after the last step, mean over positions, "
        "in nats (uniform over the candidates: log of their number, 5.30 for 200; one "
        "certain phrase: 0). "
        "Queries: per run, sent through the meter (paid, or answered by the study's shared "
        "cache or by an identical query of the same step). Minutes: wall time summed over "
        "the seeds, where recorded (a cell the cache answered from an earlier part's "
        "identical cell takes seconds).",
        not_chosen or chosen_on_dev(records, keys, show),
        factor_figure(
            records, keys[-1], figures, figure, line=line, show=show, tick=tick, log_x=log_x
        ),
    ]
    return common.section(title, "\n\n".join(p.strip() for p in parts if p))


def factor_part(
    part: str,
    title: str,
    keys: Sequence[str],
    names: Sequence[str],
    *,
    intro: str,
    keep: Mapping[str, int] | None = None,
    show: Callable[[str, Any], str] = plain,
    tick: Callable[[str, Any], str] | None = None,
    log_x: bool = False,
    not_chosen: str | None = None,
) -> tuple[Callable[[dict[str, Any]], dict[str, Any]], Callable[[Path, Path], str]]:
    """A one-factor sweep part's ``tiny`` (:func:`shrink` with ``keep``) and ``report``
    (:func:`factor_section` of its results, figure ``<part>.png``; ``not_chosen`` as
    there)."""

    def tiny(config: dict[str, Any]) -> dict[str, Any]:
        return shrink(config, keep)

    def report(results: Path, figures: Path) -> str:
        records = common.load_results(results, part)
        return factor_section(title, records, keys, names, figures, part, intro=intro,
                              show=show, tick=tick, log_x=log_x,
                              not_chosen=not_chosen)  # fmt: skip

    return tiny, report
