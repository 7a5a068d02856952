"""The methods' comparison at equal query budgets: the tables, verdicts and figure of the
``main`` and ``reduced`` parts (one code path, two sweeps)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import common

# The 8 tasks of the BDPL paper's tables (the goal counts over these).
PAPER_TASKS = ("sst2", "rte", "mrpc", "cola", "qnli", "citation_intent", "sciie", "hyperpartisan")
VARIANTS = ("manual", "in-context", "random", "bdpl (loo)", "bdpl (reference)")
Records = Sequence[Mapping[str, Any]]


Tiny = Callable[[dict[str, Any]], dict[str, Any]]
Report = Callable[[Path, Path], str]


def hooks(
    part: str, title: str, *, tasks: int, seeds: int, also: Sequence[str] = ()
) -> tuple[Tiny, Report]:
    """A comparison part's ``tiny`` and ``report``: ``--tiny`` keeps the first ``tasks`` and
    ``seeds``, 1 epoch and 8 test rows, every method, estimator and calibration (so every
    table has its columns); the report is :func:`section`."""

    def tiny(config: dict[str, Any]) -> dict[str, Any]:
        grid = dict(config.get("grid", {}))
        grid["task"] = grid["task"][:tasks]
        grid["data_seed"] = grid["data_seed"][:seeds]
        base = {**config.get("base", {}), "epochs": 1, "test_rows": 8}
        return {"base": base, "grid": grid}

    def report(results: Path, figures: Path) -> str:
        return section(part, title, results, figures, also)

    return tiny, report


def calibrations(records: Records) -> list[str]:
    return list(dict.fromkeys(str(r.get("calibration")) for r in records))


def tasks(records: Records) -> list[str]:
    return list(dict.fromkeys(str(r.get("task")) for r in records))


def scores(records: Records, task: str, calibration: str, variant: str, key: str) -> list[float]:
    """``key`` (``dev``/``test``) of one variant's cells, one value per seed."""
    return common.finite(
        r.get(key)
        for r in records
        if r.get("task") == task
        and r.get("calibration") == calibration
        and common.label(r) == variant
    )


def best_bdpl(records: Records, task: str, calibration: str) -> str | None:
    """The bdpl variant (estimator) with the higher mean dev score at ``calibration``: the
    choice is made on dev, never on test."""
    best, best_dev = None, -math.inf
    for variant in ("bdpl (loo)", "bdpl (reference)"):
        dev, _ = common.mean_std(scores(records, task, calibration, variant, "dev"))
        if not math.isnan(dev) and dev > best_dev:
            best, best_dev = variant, dev
    return best


def verdict(records: Records, task: str, calibration: str, best: str, other: str) -> dict[str, Any]:
    """Whether ``best`` beats ``other`` on test at the same calibration, by how much, and
    whether the gap exceeds one std over seeds (the larger of the two methods' stds)."""
    return gap(scores(records, task, calibration, best, "test"),
               scores(records, task, calibration, other, "test"))  # fmt: skip


def gap(mine: Sequence[float], theirs: Sequence[float]) -> dict[str, Any]:
    """Mean of ``mine`` minus mean of ``theirs`` (one value per seed each), the spread (the
    larger of the two stds over seeds), and whether the gap is positive and exceeds it; one
    seed on either side has no spread to exceed, so its gap is never ``clear``."""
    m1, s1 = common.mean_std(mine)
    m2, s2 = common.mean_std(theirs)
    if math.isnan(m1) or math.isnan(m2):
        return {"gap": math.nan, "spread": math.nan, "beats": False, "clear": False}
    diff, spread = m1 - m2, max(s1, s2)
    seeds = min(len(common.finite(mine)), len(common.finite(theirs)))
    return {"gap": diff, "spread": spread, "beats": diff > 0, "clear": seeds >= 2 and diff > spread}


def section(part: str, title: str, results: Path, figures: Path, also: Sequence[str] = ()) -> str:
    """The Markdown section of a comparison part; the goal is also counted over the tasks
    that only the comparison parts ``also`` ran (when there are such tasks)."""
    doc = common.load_part(results, part)
    if doc is None:
        return common.skipped_section(title, f"`results/{part}.json` not found; run "
                                      f"`python benchmarks/study/study.py run {part}`")  # fmt: skip
    cells = doc.get("cells", [])
    records = common.comparable(cells)
    failed = [c for c in cells if c.get("status") == "failed"]
    finished = len(common.done(cells))
    if not records:
        return common.skipped_section(title, "no finished cell")
    sweep = doc.get("sweep_config", {})
    seeds = sorted({r.get("data_seed") for r in records})
    parts = [
        f"Settings: {_settings(sweep.get('base', {}))}{_when(sweep.get('when', {}))}; split "
        f"seeds {', '.join(map(str, seeds))}; backend "
        f"`{records[0].get('backend')}`. Each entry is the test metric (the task's own: see "
        "the metric column), mean ± sample std over the split seeds; the prompt and every "
        "setting were chosen on dev.",
    ]
    if finished < len(cells):
        parts.append(
            f"**A partial run:** {finished} of the sweep's {len(cells)} cells have finished "
            f"(commands in the runs table above); only they are in the tables below, and a "
            f"method or calibration with no finished cell shows `-`."
        )
    if failed:
        parts.append(
            f"**{len(failed)} cell(s) failed** and are left out: "
            + "; ".join(f"`{c['cell']}`: {c.get('error')}" for c in failed[:5])
        )
    parts += [
        _scores_table(records).strip(),
        _budget_line(records),
        _verdicts(records, results, also),
    ]
    link = _figure(part, records, figures)
    if link:
        parts.append(f"![{title}: test metric per task and method]({link})")
    return common.section(title, "\n\n".join(parts))


def _settings(config: Mapping[str, Any]) -> str:
    keys = ("epochs", "prompt_length", "sample_size", "batch_size", "test_rows", "demonstrations",
            "max_input_tokens")  # fmt: skip
    return ", ".join(f"{k} {config[k]}" for k in keys if k in config)


def _when(when: Mapping[str, Any]) -> str:
    """The sweep file's ``[when.<key>.<value>]`` settings, as the settings line shows them."""
    shown = [
        f"; {key} {value} only: " + ", ".join(f"{k} {v}" for k, v in settings.items())
        for key, by_value in when.items()
        for value, settings in by_value.items()
        if settings
    ]
    return "".join(shown)


def _scores_table(records: Records) -> str:
    header = ["task", "metric", "calibration", *VARIANTS]
    rows = []
    for task in tasks(records):
        metric = next((r.get("metric") for r in records if r.get("task") == task), None)
        for cal in calibrations(records):
            cells = [common.fmt_mean_std(scores(records, task, cal, v, "test")) for v in VARIANTS]
            rows.append([task, str(metric), cal, *cells])
    return common.markdown_table(header, rows)


def _budget_line(records: Records) -> str:
    """Equal budgets, checked: random search sent as many training queries as bdpl."""
    pairs = common.group_by(records, "task", "data_seed", "calibration")
    same = differ = 0
    for group in pairs.values():
        sent = {common.label(r): _training_sent(r) for r in group}
        bdpl = [sent[v] for v in ("bdpl (loo)", "bdpl (reference)") if v in sent]
        if "random" in sent and bdpl:
            if all(b == sent["random"] for b in bdpl):
                same += 1
            else:
                differ += 1
    return (f"Equal budgets: in {same} of {same + differ} (task, seed, calibration) groups random "
            "search sent exactly as many training queries as each bdpl fit (paid + cached + "
            f"deduplicated, from the runs' histories); {differ} differ.")  # fmt: skip


def _training_sent(record: Mapping[str, Any]) -> int:
    """Queries sent in training (through the last step): what the budget counts."""
    steps = [h for h in record.get("history", []) if h.get("kind") == "step"]
    return common.sent(steps[-1]) if steps else 0


def goals(records: Records) -> tuple[list[list[str]], dict[str, bool]]:
    """The verdict table's rows (per task and calibration: the bdpl variant dev chose and its
    gaps to the manual prompt and random search), and per task whether the variant chosen on
    dev over estimators and calibrations beats both by more than one std."""
    rows = []
    goal: dict[str, bool] = {}
    for task in tasks(records):
        picks = []
        for cal in calibrations(records):
            best = best_bdpl(records, task, cal)
            if best is None:
                continue
            vs = {o: verdict(records, task, cal, best, o) for o in ("manual", "random")}
            both = all(v["clear"] for v in vs.values())
            dev, _ = common.mean_std(scores(records, task, cal, best, "dev"))
            picks.append((dev, both))
            rows.append([task, cal, best,
                         common.fmt_mean_std(scores(records, task, cal, best, "test")),
                         show_gap(vs["manual"]), show_gap(vs["random"]),
                         "yes" if both else "no"])  # fmt: skip
        if picks:  # the best variant over calibrations too, chosen on dev
            goal[task] = max(picks, key=lambda p: p[0])[1]
    return rows, goal


def goal_line(goal: Mapping[str, bool], where: str = "") -> str:
    """The goal's count over the paper tasks in ``goal`` (``where`` names the parts)."""
    paper = [t for t in PAPER_TASKS if t in goal]
    wins = [t for t in paper if goal[t]]
    text = (
        f"**Goal (best bdpl variant, estimator and calibration chosen on dev, beats both manual "
        f"and random search by more than one std over seeds on at least 6 of the 8 paper "
        f"tasks){where}: beaten on {len(wins)} of the {len(paper)} paper tasks run"
        + (f" ({', '.join(wins)})" if wins else "")
        + f"; {'met' if len(wins) >= 6 else 'not met'}.**"
    )
    if len(paper) < len(PAPER_TASKS):
        missing = [t for t in PAPER_TASKS if t not in goal]
        text += f" Not run here: {', '.join(missing)}."
    return text


def _verdicts(records: Records, results: Path, also: Sequence[str]) -> str:
    rows, goal = goals(records)
    header = ["task", "calibration", "best bdpl (on dev)", "test", "vs manual", "vs random",
              "beats both by > 1 std"]  # fmt: skip
    text = (
        "Per task and calibration: the bdpl variant with the higher mean dev score, and its "
        "test gap to the manual prompt and to random search at the same calibration "
        "(mean difference; `(> std)` when it exceeds the larger of the two methods' std over "
        "seeds).\n\n" + common.markdown_table(header, rows) + "\n" + goal_line(goal)
    )
    others = {}
    for part in also:  # the goal over this part's tasks and those only the others ran
        others.update(goals(common.comparable(common.load_results(results, part)))[1])
    if set(others) - set(goal):
        named = ", ".join(f"`{p}`" for p in also)
        text += "\n\n" + goal_line({**others, **goal}, f", with the tasks only {named} ran")
    return text


def show_gap(v: Mapping[str, Any]) -> str:
    """A :func:`gap` as a table shows it: ``+0.031``, ``+0.080 (> std)`` or ``-``."""
    if math.isnan(v["gap"]):
        return "-"
    return f"{v['gap']:+.3f}" + (" (> std)" if v["clear"] else "")


def _figure(part: str, records: Records, figures: Path) -> str | None:
    plt = common.pyplot()
    cals = calibrations(records)
    names = tasks(records)
    fig, axes = plt.subplots(len(cals), 1, figsize=(max(6, 1.6 * len(names)), 3.2 * len(cals)),
                             squeeze=False)  # fmt: skip
    width = 0.8 / len(VARIANTS)
    for ax, cal in zip(axes[:, 0], cals, strict=True):
        for i, variant in enumerate(VARIANTS):
            stats = [common.mean_std(scores(records, t, cal, variant, "test")) for t in names]
            xs = [j + (i - (len(VARIANTS) - 1) / 2) * width for j in range(len(names))]
            ax.bar(xs, [0 if math.isnan(m) else m for m, _ in stats], width,
                   yerr=[0 if math.isnan(s) else s for _, s in stats], label=variant,
                   capsize=2)  # fmt: skip
        ax.set_xticks(range(len(names)), names)
        ax.set_ylabel("test metric")
        ax.set_title(f"{part}: calibration {cal} (mean ± std over seeds)")
    handles, names_ = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names_, loc="lower center", ncol=len(VARIANTS), fontsize=8,
               bbox_to_anchor=(0.5, 1.0))  # fmt: skip
    fig.tight_layout()
    return common.save_figure(fig, figures, f"{part}_test")
