"""Queries per second of FakeBackend, plain and planted, in batches of 64.

Run: ``python benchmarks/fake_throughput.py`` (from the repository root).
"""

from __future__ import annotations

import random
import time

from bdpl.backends.fake import FakeBackend, Planted
from bdpl.tasks import Dataset, Example, get_task


def main(n_batches: int = 2000, batch: int = 64) -> None:
    task = get_task("sst2")
    data = Dataset(
        task,
        tuple(
            Example(f"review number {i}, a fairly typical sentence", label=str(i % 2))
            for i in range(1000)
        ),
    )
    candidates = [f"token{i}" for i in range(200)]
    planted = Planted.for_dataset(data, candidates, prompt_length=5, seed=3)
    rng = random.Random(0)
    prompts = [[rng.choice(candidates) for _ in range(5)] for _ in range(50)]
    queries = [task.render(prompts[i % 50], data[i % 1000]) for i in range(n_batches * batch)]
    for name, fake in (("plain", FakeBackend()), ("planted", FakeBackend(planted=planted))):
        start = time.perf_counter()
        for i in range(0, len(queries), batch):
            fake.score(queries[i : i + batch])
        rate = len(queries) / (time.perf_counter() - start)
        print(f"{name:8s} {rate:10,.0f} queries/s")


if __name__ == "__main__":
    main()
