"""Learn a prompt for SST-2 (16-shot, seed 13) on the embedded SmolLM2, offline, on a CPU.

Prints the test accuracy of the manual prompt (the template alone, no learned tokens) and of
the learned prompt, and the time each part took. The template is ``Review: <s1> Sentiment:
<slot>`` with negative/positive: the paper's ``<s1> It was <slot>.`` with terrible/great is
degenerate on this small model (it answers "great" almost always: 47.5% on these rows).

To stay within about 10 minutes on a 2-core machine it tests on the first 200 rows of the
SST-2 test set (``--test-rows``, 872 for all) and trains for a few epochs with short prompts.

Run: ``python examples/sst2_smollm2.py``
"""

from __future__ import annotations

import argparse
import time

from bdpl.backends.causal_lm import CausalLMBackend
from bdpl.data import load_split
from bdpl.optimizer import Optimizer
from bdpl.tasks import Dataset, Task
from bdpl.vocab import build_vocabulary

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--test-rows", type=int, default=200, help="first N test rows (872: all)")
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--prompt-length", type=int, default=3)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

start = time.perf_counter()
task = Task("sst2", "Review: <s1> Sentiment: <slot>", {"0": "negative", "1": "positive"})


def with_task(split: str) -> Dataset:
    """A split of SST-2 (16 per class, seed 13) under this example's template."""
    return Dataset(task, load_split("sst2", split, seed=13, k=16).examples)


train, dev = with_task("train"), with_task("dev")
test = Dataset(task, with_task("test").examples[: args.test_rows])
# The prompt vocabulary: PMI n-grams of the 64 few-shot texts (counts >= 3, as they are few).
texts = [e.text_a for e in (*train.examples, *dev.examples)]
candidates = build_vocabulary(texts, size=200, min_count=2, min_freq=2)

backend = CausalLMBackend()  # the embedded SmolLM2-135M-Instruct, on the CPU here
print(f"model: {backend.model}  ({backend.identity})")
print(f"train {len(train)}, dev {len(dev)}, test {len(test)} (first {args.test_rows} rows)")
print(f"{len(candidates)} prompt candidates, e.g. {candidates[:8]}")
loaded = time.perf_counter()

optimizer = Optimizer(
    backend,
    task=task,
    candidates=candidates,
    prompt_length=args.prompt_length,
    sample_size=8,
    batch_size=16,
    epochs=args.epochs,
    seed=args.seed,
)
manual = optimizer.evaluate(test, prompt=[])
t_manual = time.perf_counter()
print(f"manual prompt (no learned tokens): test accuracy {manual:.3f}  [{t_manual - loaded:.0f} s]")

result = optimizer.fit(train, dev)
t_fit = time.perf_counter()
for r in result.history:
    print(f"  epoch {r.epoch}: train loss {r.train_loss:.4f}, dev {r.dev_score}, prompt {r.prompt}")
print(
    f"learned prompt {result.prompt!r}: dev {result.dev_score:.3f}, "
    f"{result.queries} queries, {result.steps} steps  [{t_fit - t_manual:.0f} s]"
)
learned = optimizer.evaluate(test, prompt=result.prompt)
end = time.perf_counter()
print(f"learned prompt: test accuracy {learned:.3f}  [{end - t_fit:.0f} s]")
print(f"total wall time {end - start:.0f} s (model load {loaded - start:.0f} s)")
