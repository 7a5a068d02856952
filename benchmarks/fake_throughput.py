"""Queries per second of FakeBackend, plain and planted, in batches of 64.

Run: ``python benchmarks/fake_throughput.py`` (from the repository root).
"""

from __future__ import annotations

import random
import time

from bdpl.tasks import Dataset, Example, get_task
from bdpl.testing import FakeBackend, Planted


def main(n_batches: int = 1000, batch: int = 64) -> None:
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
        wall, cpu = [], []
        for _ in range(3):  # best of three: the machine may be shared
            start, start_cpu = time.perf_counter(), time.process_time()
            for i in range(0, len(queries), batch):
                fake.score(queries[i : i + batch])
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        print(
            f"{name:8s} {len(queries) / min(wall):10,.0f} queries/s wall, "
            f"{len(queries) / min(cpu):10,.0f} queries/s CPU"
        )


if __name__ == "__main__":
    main()
