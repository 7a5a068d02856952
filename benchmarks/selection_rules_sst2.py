"""Three ways to pick the prompt a fit keeps, on the main job's SST-2 seeds (13, 21, 42).

For each seed the main job's fit (``examples/sst2_smollm2.py`` settings, content-free
calibration) is run once; then the rules are compared on all 872 test rows:

- best-dev: the epoch prompt with the best dev accuracy (the paper; bdpl's default);
- paired: best-dev, kept only if it beats the manual prompt clearly on dev (lower loss by a
  paired bootstrap, Bonferroni over the epoch prompts looked at; ``selection="paired"``);
- train-selected: the epoch prompt with the lowest training loss (dev untouched).

Run: ``python benchmarks/selection_rules_sst2.py > benchmarks/results/selection_rules_sst2.md``
(the disk cache makes a rerun cost nothing).
"""

from __future__ import annotations

import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from sst2_smollm2 import SETTINGS, TEMPLATE, VERBALIZER

from bdpl import CausalLMBackend, Dataset, Optimizer, Task, load_split
from bdpl.vocab import build_vocabulary


def main() -> None:
    backend = CausalLMBackend()
    task = Task("sst2", TEMPLATE, VERBALIZER)
    test = Dataset(task, load_split("sst2", "test").examples)
    print("# Which prompt to keep: three rules on the main job's SST-2 seeds\n")
    print(
        f"Machine: {platform.node()} {platform.machine()} ({os.cpu_count()} CPUs); date: "
        f"{datetime.now(timezone.utc).isoformat(timespec='minutes')}; settings: {SETTINGS}, "
        f"template `{TEMPLATE}`; test: all {len(test)} rows. Dev: 32 rows per seed.\n"
    )
    print("| seed | manual test | best-dev test | paired test (kept manual?) | loss p / level |"
          " train-selected test |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|")
    for seed in (13, 21, 42):

        def split(name: str, s: int = seed) -> Dataset:
            return Dataset(task, load_split("sst2", name, seed=s).examples)

        train, dev = split("train"), split("dev")
        texts = [e.text_a for e in (*train.examples, *dev.examples)]
        candidates = build_vocabulary(texts, size=200, min_count=2, min_freq=2)
        opt = Optimizer(backend, task=task, candidates=candidates, seed=0, **SETTINGS)
        result = opt.fit(train, dev)
        chosen = result.selection
        assert chosen is not None and chosen.comparison is not None
        level = chosen.alpha / chosen.candidates
        paired_keeps = chosen.candidate if chosen.comparison.better else []
        prompts = list(dict.fromkeys(tuple(h.prompt) for h in result.history))
        by_train = min(prompts, key=lambda p: opt.report(train, p).loss)
        manual = opt.evaluate(test, prompt=[])
        best = opt.evaluate(test, prompt=chosen.candidate)
        paired = opt.evaluate(test, prompt=paired_keeps)
        trained = opt.evaluate(test, prompt=list(by_train))
        print(
            f"| {seed} | {manual:.3f} | {best:.3f} | {paired:.3f} "
            f"({'yes' if not paired_keeps else 'no'}) | {chosen.comparison.loss_p:.3f} / "
            f"{level:.4f} | {trained:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
