"""Does the learned prompt generalise beyond 32 dev examples? Before and after the paired selection.

For each paper preset and 16-shot seed, one fit on the embedded model with the library's
defaults (plus the calibration named below) gives both rules at once: the best-dev epoch's
prompt ("before": the paper's rule and the default, ``selection="best-dev"``) and the paired
selection's choice ("after": ``selection="paired"``, which keeps the manual prompt unless the
learned one wins clearly; the fit's report says which it would keep). Both and the manual
prompt are scored on the test set (its first ``--test-rows`` rows).

Run: ``python benchmarks/selection_study.py --out benchmarks/results/selection.json`` (hours at
full scale on 2 CPUs; ``--tasks``, ``--seeds``, ``--epochs`` and ``--test-rows`` cut it down).
``--report`` turns the JSON into the Markdown table in ``benchmarks/results/selection.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

PAPER_TASKS = ("sst2", "rte", "mrpc", "cola", "qnli", "citation_intent", "sciie", "hyperpartisan")


def run(args: argparse.Namespace) -> None:
    from bdpl import CausalLMBackend, Dataset, Optimizer, load_split
    from bdpl.metering import Meter

    out = Path(args.out)
    done: list[dict[str, Any]] = json.loads(out.read_text())["runs"] if out.exists() else []
    seen = {(r["task"], r["seed"]) for r in done}
    backend = CausalLMBackend()
    meter = Meter(backend)  # the default disk cache: a rerun pays (and waits) for nothing twice
    for task in args.tasks:
        for seed in args.seeds:
            if (task, seed) in seen:
                continue
            start = time.perf_counter()
            train, dev = load_split(task, "train", seed=seed), load_split(task, "dev", seed=seed)
            test = load_split(task, "test", seed=seed)
            test = Dataset(test.task, test.examples[: args.test_rows])
            opt = Optimizer(
                meter=meter,
                prompt_length=args.prompt_length,
                sample_size=8,
                batch_size=16,
                epochs=args.epochs,
                seed=0,
                **({"calibration": args.calibration} if args.calibration != "none" else {}),
            )
            result = opt.fit(train, dev)
            selection = result.selection
            before = selection.candidate if selection is not None else result.prompt
            wins = selection is not None and selection.comparison is not None
            after = before if wins and selection.comparison.better else []
            row = {
                "task": task,
                "seed": seed,
                "metric": train.task.metric,
                "test_rows": len(test),
                "manual": opt.evaluate(test, prompt=[]),
                "before": opt.evaluate(test, prompt=before),
                "after": opt.evaluate(test, prompt=after),
                "kept_manual": not after,
                "prompt_before": before,
                "dev_manual": selection.manual_dev if selection else None,
                "dev_before": max((h.dev_score or 0.0) for h in result.history),
                "seconds": round(time.perf_counter() - start, 1),
            }
            done.append(row)
            print(json.dumps(row), flush=True)
            out.write_text(json.dumps(_meta(args) | {"runs": done}, indent=1))


def _meta(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "machine": f"{platform.node()} {platform.machine()} ({__import__('os').cpu_count()} CPUs)",
        "date": datetime.now(timezone.utc).isoformat(timespec="minutes"),
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "report")},
    }


def report(path: Path) -> str:
    """The Markdown table of a study's JSON: per pair, and how often each rule lost."""
    data = json.loads(path.read_text())
    rows = data["runs"]
    lines = [
        f"Machine: {data['machine']}; date: {data['date']}; settings: {data['settings']}.",
        "",
        "| task | seed | metric | manual | before (best dev) | after (paired) | kept manual |",
        "|---|---:|---|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['seed']} | {r['metric']} | {r['manual']:.3f} | "
            f"{r['before']:.3f} | {r['after']:.3f} | {'yes' if r['kept_manual'] else 'no'} |"
        )
    for rule in ("before", "after"):
        diffs = [100 * (r[rule] - r["manual"]) for r in rows]
        worse = [d for d in diffs if d < 0]
        lines.append("")
        lines.append(
            f"**{rule}**: worse than the manual prompt in {len(worse)} of {len(rows)} pairs "
            f"(worst {min(diffs, default=0):+.1f} points); mean change "
            f"{sum(diffs) / max(1, len(diffs)):+.2f} points."
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="benchmarks/results/selection.json")
    parser.add_argument("--tasks", nargs="+", default=list(PAPER_TASKS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[13, 21, 42, 87, 100])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--prompt-length", type=int, default=3)
    parser.add_argument("--test-rows", type=int, default=500)
    parser.add_argument("--calibration", default="content-free")
    parser.add_argument("--report", action="store_true", help="print the Markdown table only")
    args = parser.parse_args()
    if args.report:
        print(report(Path(args.out)))
        return
    run(args)


if __name__ == "__main__":
    main()
