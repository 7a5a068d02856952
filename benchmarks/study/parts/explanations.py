"""Case study: what the learned prompts hold (``bdpl explain`` of each run, on dev).

For each data seed's learned prompt: each position's phrase and its probability, the top
candidates there, and the dev metric's change when the phrase is removed or replaced by the
next most probable candidate (:mod:`bdpl.explain`; ``bdpl explain RUN --split dev``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import common
from parts import _cases

TITLE = "Case study: explanations of learned prompts"
SWEEP = None
FILE = "explanations.toml"
TOP = 5


def shrink(config: dict[str, Any]) -> dict[str, Any]:
    """The ``--tiny`` fits: one data seed, 1 epoch."""
    return _cases.shrink(config)


def run(out: Path, backend: str | None, tiny: bool) -> None:
    """Fit (or reuse) each cell, explain its prompt on dev; write ``results/explanations.json``."""
    from bdpl.cli.explaining import explain_run

    config = _cases.sweep_config(FILE, backend, tiny, shrink)
    records = _cases.run_grid(out, "explanations", config)
    for record in records:
        if record["status"] == "done":
            record["explanation"] = explain_run(
                Path(record["run"]), split="dev", top=TOP, cache=_cases.cache_of(out)
            )
    common.write_results(out, "explanations", {"cells": records, "sweep_config": config})


def _positions_table(records: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for r in records:
        e = r["explanation"]
        seed = _cases.value(r, _cases.SEED)
        for p in e["positions"]:
            tops = ", ".join(f"`{c}` {w:.3f}" for c, w in p["top"][:3])
            rows.append([
                str(seed), str(p["position"] + 1), f"`{p['phrase']}`",
                common.fmt(p["probability"]), tops, f"{p['removed_change']:+.3f}",
                f"`{p['replacement']}`", f"{p['replaced_change']:+.3f}",
            ])  # fmt: skip
    return common.markdown_table(
        ["data seed", "position", "phrase", "p", "top 3 there (p)", "removed: change",
         "next-best", "replaced: change"], rows,
    )  # fmt: skip


def _prompts_table(records: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for r in records:
        e = r["explanation"]
        rows.append([
            str(_cases.value(r, _cases.SEED)), " ".join(f"`{p}`" for p in e["prompt"]),
            "yes" if e["kept_manual"] else "no", common.fmt(e["manual_score"]),
            common.fmt(e["score"]), common.fmt(e["queries"]),
        ])  # fmt: skip
    return common.markdown_table(
        ["data seed", "learned prompt", "run kept the template", "dev: template alone",
         "dev: with the prompt", "queries"], rows,
    )  # fmt: skip


def summary(records: Sequence[Mapping[str, Any]]) -> str:
    """How many positions matter: removal or replacement lowering the dev metric."""
    positions = [p for r in records for p in r["explanation"]["positions"]]
    if not positions:
        return ""
    hurt = sum(1 for p in positions if p["removed_change"] < 0)
    helped = sum(1 for p in positions if p["removed_change"] > 0)
    swapped = sum(1 for p in positions if p["replaced_change"] < 0)
    removed = common.fmt_mean_std(p["removed_change"] for p in positions)
    sizes = sorted({int(r["config"]["vocab_size"]) for r in records if r.get("config")})
    uniform = " or ".join(f"{1 / n:.4f}" for n in sizes)
    return (
        f"Over {len(positions)} positions: removing the phrase lowered the dev metric at "
        f"{hurt}, raised it at {helped} and left it unchanged at {len(positions) - hurt - helped} "
        f"(mean change {removed}); the next-best candidate in its place lowered it at "
        f"{swapped}. A uniform distribution gives each candidate p = {uniform} (1 / "
        "vocabulary size)."
    )


def report(results: Path, figures: Path) -> str:
    records = common.load_results(results, "explanations")
    if not records:
        return common.skipped_section(TITLE, "no results yet (run this part)")
    explained = [r for r in common.done(records) if r.get("explanation")]
    metric = next((r["explanation"]["metric"] for r in explained), "metric")
    intro = (
        f"`bdpl explain RUN --split dev --top {TOP}` of each learned prompt: the dev {metric} "
        "with the whole prompt and with the template alone, then per position the phrase, "
        "its probability under the learned distribution, the most probable candidates "
        "there, and the change of the dev metric when the phrase is removed or replaced by "
        "the next most probable candidate (negative: the phrase helps). When a run kept the "
        "template (paired selection), the learned prompt it rejected is explained."
    )
    parts = [intro, _cases.scale(records)]
    if explained:
        parts += [_prompts_table(explained), _positions_table(explained), summary(explained)]
    return common.section(TITLE, "\n\n".join(p for p in parts if p))
