"""Local backends on this machine's CPU: the batched path vs a one-example-at-a-time loop.

For each backend, on the same model and the same queries (SST-2 test sentences with a
5-word prompt):

- ``batched``: the backend's ``score`` (length-sorted, padded batches; the output head only
  where it is read);
- ``loop``: a straightforward loop, one example per forward pass, plain transformers, full
  logits, log-softmax at the slot.

Each measurement runs in its own process so that its peak memory is its own: peak RSS
(``getrusage``), the RSS growth over the loaded model, and the Python-heap peak (tracemalloc;
tensors live outside it).

    python benchmarks/bench_local.py                # full run (a few minutes on 2 cores)
    python benchmarks/bench_local.py --n 8          # quick

The masked LM is roberta-base's architecture with random weights and a synthetic word-level
vocabulary of RoBERTa's size (speed does not depend on the weights); the causal LM is the
embedded SmolLM2-135M-Instruct.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.synthetic import ROBERTA, random_roberta, word_tokenizer  # noqa: E402

PROMPT = ["wonderful", "amazing", "film", "really", "truly"]


def rss_mib() -> float:
    """Current resident set size (Linux /proc), in MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def sst2_sentences(n: int) -> list[str]:
    path = Path(os.environ.get("BDPL_DATA_DIR", ROOT.parent / "shared" / "data"))
    with open(path / "SST-2" / "k-shot" / "test.tsv", newline="") as f:
        rows = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [r["sentence"] for _, r in zip(range(n), rows, strict=False)]


def mlm_setup(n: int) -> tuple[Any, Any, list[Any]]:
    from bdpl.tasks import Example, Task
    from benchmarks.synthetic import sentence

    tok = word_tokenizer(ROBERTA["roberta-base"]["vocab_size"])
    model = random_roberta("roberta-base")
    # Same word counts as the SST-2 sentences, in synthetic words the vocabulary knows.
    task = Task("bench", "<s1> w5 w6 <slot>", {"0": "w1", "1": "w2"})
    prompt = sentence(5, 99).split()
    texts = [sentence(len(s.split()), i) for i, s in enumerate(sst2_sentences(n))]
    return model, tok, [task.render(prompt, Example(t)) for t in texts]


def causal_setup(n: int) -> tuple[Any, Any, list[Any]]:
    from bdpl.backends.causal_lm import CausalLMBackend
    from bdpl.tasks import Example, Task

    backend = CausalLMBackend(device="cpu")
    task = Task("sst2-review", "Review: <s1> Sentiment: <slot>", {"0": "negative", "1": "positive"})
    qs = [task.render(PROMPT, Example(s)) for s in sst2_sentences(n)]
    return backend, None, qs


def run_one(which: str, n: int, batch_size: int, repeats: int) -> dict[str, Any]:
    """One measurement in this process; returns its numbers."""
    import torch

    kind, mode = which.split("-")
    if kind == "mlm":
        from bdpl.backends.masked_lm import MaskedLMBackend

        model, tok, qs = mlm_setup(n)
        backend = MaskedLMBackend(model, tok, device="cpu", batch_size=batch_size)
    else:
        backend, _, qs = causal_setup(n)
        backend._batch_size = batch_size
        model, tok = backend._model, backend._tokenizer
    tokens = backend.estimate(qs).prompt_tokens
    base_rss = rss_mib()
    tracemalloc.start()

    if mode == "batched":

        def work() -> list[list[float]]:
            return [list(s.logprobs) for s in backend.score(qs)]

    else:
        label_ids = [
            [tok(lab, add_special_tokens=False)["input_ids"][0] for lab in q.labels] for q in qs
        ]

        def work() -> list[list[float]]:
            out = []
            with torch.inference_mode():
                for q, ids in zip(qs, label_ids, strict=True):
                    if kind == "mlm":
                        text = q.before + " " + tok.mask_token + q.after
                        enc = tok(text, return_tensors="pt")
                        pos = int((enc["input_ids"][0] == tok.mask_token_id).nonzero()[0, 0])
                    else:
                        enc = tok(q.before, return_tensors="pt")
                        pos = -1
                    logits = model(**enc).logits[0, pos]
                    lp = torch.log_softmax(logits.float(), dim=-1)
                    out.append([float(lp[i]) for i in ids])
            return out

    scores = work()  # warm-up
    # The best of several runs: other processes on a shared machine only ever slow a run down.
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        work()
        times.append(time.perf_counter() - t0)
    sec = min(times)
    _, py_peak = tracemalloc.get_traced_memory()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "which": which,
        "queries": len(qs),
        "tokens": tokens,
        "seconds": round(sec, 3),
        "seconds_all_runs": [round(t, 3) for t in times],
        "queries_per_s": round(len(qs) / sec, 2),
        "tokens_per_s": round(tokens / sec, 1),
        "peak_rss_mib": round(peak, 1),
        "rss_growth_mib": round(peak - base_rss, 1),
        "python_heap_peak_mib": round(py_peak / 2**20, 2),
        "scores": scores,
    }


def machine() -> dict[str, Any]:
    import torch

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=64, help="queries per measurement")
    p.add_argument("--mlm-batch", type=int, default=32)
    p.add_argument("--causal-batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3, help="timed runs; the best counts")
    p.add_argument("--only", choices=["mlm", "causal"], help="one backend only")
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one measurement
    p.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one, args.n, args.batch, args.repeats)))
        return
    results: dict[str, Any] = {"machine": machine(), "runs": {}}
    kinds = [args.only] if args.only else ["mlm", "causal"]
    for kind in kinds:
        batch = args.mlm_batch if kind == "mlm" else args.causal_batch
        for mode in ("batched", "loop"):
            which = f"{kind}-{mode}"
            cmd = [
                sys.executable,
                __file__,
                "--one",
                which,
                "--n",
                str(args.n),
                "--batch",
                str(batch),
            ]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
            results["runs"][which] = json.loads(out.stdout.strip().splitlines()[-1])
        b, lo = results["runs"][f"{kind}-batched"], results["runs"][f"{kind}-loop"]
        diff = max(
            abs(x - y)
            for sb, sl in zip(b["scores"], lo["scores"], strict=True)
            for x, y in zip(sb, sl, strict=True)
        )
        results[kind] = {
            "speedup": round(b["queries_per_s"] / lo["queries_per_s"], 2),
            "max_abs_score_difference": diff,
            "batch_size": batch,
        }
    for r in results["runs"].values():
        del r["scores"]
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
