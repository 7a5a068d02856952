"""How strongly a prompt steers the label, by where it goes (embedded SmolLM2, SST-2 dev).

Draws ``--prompts`` random prompts of ``--length`` candidates from the 16-shot vocabulary and
puts each at the start of ``<s1> It was <slot>.`` (the paper's placement), between the input
and the template, or just before the slot. For each placement it reports, over the first
``--rows`` dev examples (seed 13), the mean absolute change of the label log-odds
(great vs terrible, uncalibrated) that a prompt causes against the template alone, and the
spread (standard deviation across prompts) of the content-free-calibrated dev accuracy: the
larger both are, the more a learned prompt can move the answer from there.

Run: ``python benchmarks/prompt_placement.py``
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from bdpl.backends.causal_lm import CausalLMBackend
from bdpl.calibration import calibrated_scores
from bdpl.data import load_split
from bdpl.metering import Meter
from bdpl.tasks import Task
from bdpl.vocab import build_vocabulary

PLACEMENTS = {
    "start": "<s1> It was <slot>.",
    "after input": "<s1> <prompt> It was <slot>.",
    "before slot": "<s1> It was <prompt> <slot>.",
}

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--prompts", type=int, default=8)
parser.add_argument("--length", type=int, default=3)
parser.add_argument("--rows", type=int, default=32)
args = parser.parse_args()

train, dev = load_split("sst2", "train", seed=13), load_split("sst2", "dev", seed=13)
texts = [e.text_a for e in (*train.examples, *dev.examples)]
candidates = build_vocabulary(texts, size=200, min_count=2, min_freq=2)
rng = np.random.default_rng(0)
prompts = [list(rng.choice(candidates, args.length)) for _ in range(args.prompts)]
examples = list(dev.examples[: args.rows])
meter = Meter(CausalLMBackend())
y = np.array([int(str(e.label)) for e in examples])
rows = {}
for name, template in PLACEMENTS.items():
    task = Task("sst2", template, {"0": "terrible", "1": "great"})

    def score(queries: list, task: Task = task) -> np.ndarray:
        return np.array([s.logprobs for s in meter.score(queries)])

    raw = calibrated_scores(score, task, [[], *prompts], examples, method=None)
    odds = raw[..., 1] - raw[..., 0]
    shift = float(np.abs(odds[1:] - odds[:1]).mean())
    cal = calibrated_scores(score, task, prompts, examples, method="content-free")
    acc = (cal.argmax(-1) == y).mean(axis=1)
    rows[name] = {
        "mean_abs_logodds_shift": round(shift, 3),
        "cf_dev_acc_mean": round(float(acc.mean()), 3),
        "cf_dev_acc_std": round(float(acc.std()), 3),
        "cf_dev_acc_max": round(float(acc.max()), 3),
    }
    print(name, json.dumps(rows[name]), flush=True)
print(json.dumps({"prompts": [" ".join(p) for p in prompts], "rows": len(examples), **rows}))
