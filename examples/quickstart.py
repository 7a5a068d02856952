"""Quickstart: learn a discrete prompt on the offline fake backend, in a few seconds.

The fake backend is built with a planted structure: some candidate words at some prompt
positions raise the probability of the correct label, so there is a known best prompt.
Swap ``FakeBackend(...)`` for a real backend to learn a prompt for a real model.

Run: ``python examples/quickstart.py``
"""

from __future__ import annotations

from bdpl.optimizer import Optimizer
from bdpl.tasks import Dataset, Example, get_task
from bdpl.testing import FakeBackend, Planted

task = get_task("sst2")  # template "<s1> It was <slot>.", verbalizer 0 -> terrible, 1 -> great
reviews = [f"Review number {i} of the film." for i in range(48)]
examples = tuple(Example(text, label=str(i % 2)) for i, text in enumerate(reviews))
train, dev = Dataset(task, examples[:32]), Dataset(task, examples[32:])

candidates = ["truly", "honest", "film", "review", "amazing", "plot", "overall", "verdict"]
# Plant over train and dev together: the fake must know every input it is asked about.
planted = Planted.for_dataset([train, dev], candidates, prompt_length=3, best=[1, 6, 7], seed=0)
backend = FakeBackend(planted=planted)

optimizer = Optimizer(
    backend, candidates=candidates, prompt_length=3, sample_size=10, batch_size=16, epochs=20
)
print(f"worst-case queries: {optimizer.max_queries(len(train), len(dev))}")
print(f"dev accuracy without a prompt: {optimizer.evaluate(dev, prompt=[]):.3f}")
result = optimizer.fit(train, dev)

print(f"learned prompt: {' '.join(result.prompt)!r} (planted: {' '.join(planted.best_prompt)!r})")
print(f"dev accuracy with it: {optimizer.evaluate(dev):.3f}")
print(f"queries used: {result.queries}, steps: {result.steps}, stopped: {result.stop_reason}")
