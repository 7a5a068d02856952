"""What a reference-setting BDPL fit on SST-2 would cost at most on OpenAI, before paying anything.

Uses the library's estimate (:meth:`bdpl.Optimizer.estimate_cost`) with the shipped price
table: every query is bounded by its example rendered with the longest candidate at every prompt
position, no cache hits, every label needing the exact fallback. No request is made, so the API
key below is a placeholder.

Run: ``python examples/openai_cost.py``
"""

from __future__ import annotations

from bdpl.backends.openai_chat import OpenAIChatBackend
from bdpl.backends.openai_completion import OpenAIBackend
from bdpl.data import load_split
from bdpl.optimizer import Optimizer
from bdpl.vocab import build_vocabulary

train = load_split("sst2", "train", seed=13)  # 16 per class (LM-BFF k-shot split)
dev = load_split("sst2", "dev", seed=13)
candidates = build_vocabulary([e.text_a for e in train], size=200)

backends = [
    OpenAIBackend("davinci-002", api_key="sk-placeholder"),  # top 5, exact echo fallback
    OpenAIBackend("davinci-002", api_key="sk-placeholder", fallback="none"),  # top 5, bounds
    OpenAIChatBackend("gpt-4o-mini", api_key="sk-placeholder"),  # top 20, one query a request
]
for backend in backends:
    # Reference settings (the Optimizer's defaults): prompt_length=10, sample_size=20,
    # batch_size=128, epochs=30.
    with Optimizer(backend, candidates=candidates, cache=False) as optimizer:
        estimate = optimizer.estimate_cost(train, dev)
    print(f"{backend.identity}: {estimate}")
