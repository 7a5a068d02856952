"""Dev-set sweep behind the main job's settings (SST-2, embedded SmolLM2, 16-shot seeds).

Each run fits one setting on one seed's 16-shot train set, selects the epoch on that seed's
dev set, and appends one JSON line (dev accuracy of the manual and of the learned prompt,
optionally test accuracy on the first ``--test-rows`` rows) to ``--out``. Settings are chosen
on dev only; test rows are for the final check. Answers come from the disk cache on reruns.

Run: ``python benchmarks/main_job_sweep.py --template paper --calibration content-free``
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

from bdpl.backends.causal_lm import CausalLMBackend
from bdpl.data import load_split
from bdpl.optimizer import Optimizer
from bdpl.tasks import Dataset, Task
from bdpl.vocab import build_vocabulary

TEMPLATES = {
    "review": ("Review: <s1> Sentiment: <slot>", ("negative", "positive")),
    "paper": ("<s1> It was <slot>.", ("terrible", "great")),
    "paper-near": ("<s1> It was <prompt> <slot>.", ("terrible", "great")),
    "paper-mid": ("<s1> <prompt> It was <slot>.", ("terrible", "great")),
    "review-near": ("Review: <s1> Sentiment: <prompt> <slot>", ("negative", "positive")),
    "review-mid": ("Review: <s1> <prompt> Sentiment: <slot>", ("negative", "positive")),
}

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--template", choices=sorted(TEMPLATES), default="paper")
parser.add_argument("--calibration", choices=["none", "content-free", "batch"], default="none")
parser.add_argument("--seeds", type=int, nargs="+", default=[13])
parser.add_argument("--prompt-length", type=int, default=3)
parser.add_argument("--sample-size", type=int, default=8)
parser.add_argument("--batch-size", type=int, default=16)
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--learning-rate", type=float, default=None)
parser.add_argument("--vocab", choices=["fewshot", "pool"], default="fewshot")
parser.add_argument("--vocab-size", type=int, default=200)
parser.add_argument("--test-rows", type=int, default=0)
parser.add_argument("--out", default="benchmarks/results/main_job_sweep.jsonl")
args = parser.parse_args()

template, words = TEMPLATES[args.template]
task = Task("sst2", template, {"0": words[0], "1": words[1]})
calibration = None if args.calibration == "none" else args.calibration
backend = CausalLMBackend()
for seed in args.seeds:
    start = time.perf_counter()
    train, dev, test = (
        Dataset(task, load_split("sst2", s, seed=seed, k=16).examples)
        for s in ("train", "dev", "test")
    )
    if args.vocab == "pool":
        texts = [e.text_a for e in load_split("sst2", "pool").examples]
        candidates = build_vocabulary(texts, size=args.vocab_size)
    else:
        texts = [e.text_a for e in (*train.examples, *dev.examples)]
        candidates = build_vocabulary(texts, size=args.vocab_size, min_count=2, min_freq=2)
    opt = Optimizer(
        backend,
        task=task,
        candidates=candidates,
        prompt_length=args.prompt_length,
        sample_size=args.sample_size,
        batch_size=args.batch_size,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        calibration=calibration,
        seed=0,
        progress=False,
    )
    manual_dev = opt.evaluate(dev, prompt=[])
    result = opt.fit(train, dev)
    row = {
        "setting": {k: v for k, v in vars(args).items() if k not in ("seeds", "out")},
        "seed": seed,
        "candidates": len(candidates),
        "manual_dev": manual_dev,
        "learned_dev": result.dev_score,
        "prompt": result.prompt,
        "dev_by_epoch": [r.dev_score for r in result.history],
        "queries": result.queries,
    }
    if args.test_rows:
        rows = Dataset(task, test.examples[: args.test_rows])
        row["test_rows"] = len(rows)
        row["manual_test"] = opt.evaluate(rows, prompt=[])
        row["learned_test"] = opt.evaluate(rows, prompt=result.prompt)
    row["seconds"] = round(time.perf_counter() - start, 1)
    row["machine"] = f"{platform.node()} {platform.machine()}"
    row["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    print(json.dumps(row), flush=True)
    with Path(args.out).open("a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
