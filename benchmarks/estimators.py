"""How often each estimator recovers a planted best prompt, and with how many queries.

For each setting (prompt length L, candidates N) and estimator, 20 seeds each plant a best
prompt in a FakeBackend over 16 sst2-style examples; the optimizer runs 40 epochs of
batch 8 (80 steps of 20 sampled prompts, worst case 12,800 queries). Prints a Markdown table:
recovered = seeds whose learned prompt equals the planted one at every position; queries =
mean queries actually sent (identical prompts in a step are scored once).

Run: ``python benchmarks/estimators.py`` (from the repository root; about two minutes).
"""

from __future__ import annotations

import time

from bdpl.optimizer import Optimizer
from bdpl.tasks import Dataset, Example, get_task
from bdpl.testing import FakeBackend, Planted

SETTINGS = [(4, 20), (5, 50), (8, 30)]
ESTIMATORS = [("loo", None), ("loo-rank", None), ("reference", None), ("reference", 1e-2)]


def main(seeds: int = 20) -> None:
    task = get_task("sst2")
    train = Dataset(task, tuple(Example(f"review {i} text", label=str(i % 2)) for i in range(16)))
    print("| L x N | estimator | learning rate | recovered | mean queries | seconds |")
    print("|---|---|---|---|---|---|")
    for length, n in SETTINGS:
        words = [f"w{i}" for i in range(n)]
        for name, lr in ESTIMATORS:
            found, queries, start = 0, 0, time.perf_counter()
            for seed in range(seeds):
                planted = Planted.for_dataset(train, words, prompt_length=length, seed=seed)
                opt = Optimizer(
                    FakeBackend(planted=planted, seed=seed),
                    candidates=words,
                    prompt_length=length,
                    sample_size=20,
                    batch_size=8,
                    epochs=40,
                    estimator=name,
                    learning_rate=lr,
                    seed=seed,
                )
                result = opt.fit(train)
                found += result.prompt == planted.best_prompt
                queries += result.queries
            print(
                f"| {length} x {n} | {name} | {opt.estimator.learning_rate:g} | {found}/{seeds} "
                f"| {queries / seeds:,.0f} | {time.perf_counter() - start:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
