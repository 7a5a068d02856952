"""Baselines a learned prompt must beat, with the :class:`~bdpl.optimizer.Optimizer`'s surface.

Both are optimizers in their own right: they score through the same metering layer (cache,
budget, ledger), so a comparison at equal cost is one line each::

    for method in (bdpl.ManualPrompt(backend), bdpl.RandomSearch(backend, seed=0),
                   bdpl.Optimizer(backend, seed=0)):
        print(type(method).__name__, method.fit(train, dev).dev_score)

- :class:`ManualPrompt`: the template alone, no prompt in front.
- :class:`RandomSearch`: uniform random prompts from the same vocabulary, under the same
  query structure as BDPL (``sample_size`` prompts scored per step, the best one so far
  evaluated on dev each epoch), so the same ``epochs`` or the same
  :class:`~bdpl.metering.Budget` gives it the same number of queries.

In-context demonstrations are a property of the task, not of the search: see
:func:`bdpl.demonstrations.with_demonstrations`.

>>> from bdpl.backends.fake import FakeBackend, Planted
>>> from bdpl.tasks import Dataset, Example, get_task
>>> train = Dataset(get_task("sst2"), tuple(Example(f"review {i}", label=str(i % 2))
...                                         for i in range(16)))
>>> words = ["good", "bad", "film", "plot", "truly", "meh"]
>>> fake = FakeBackend(planted=Planted.for_dataset(train, words, prompt_length=2, best=[0, 4],
...                                                 strength=2.0))
>>> search = RandomSearch(fake, candidates=words, prompt_length=2, sample_size=8, epochs=5,
...                       seed=0, cache=False)
>>> result = search.fit(train, train)
>>> result.dev_score, result.queries
(1.0, 656)
>>> ManualPrompt(fake, cache=False).fit(train, train).dev_score
0.6875
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bdpl.backends.base import Backend
from bdpl.errors import BudgetExceededError, ConfigError
from bdpl.estimators import IntArray
from bdpl.metering import Budget, Ledger, Meter, QueryCache
from bdpl.optimizer import FitResult, LossName, Optimizer
from bdpl.tasks import Dataset, Task


class RandomSearch(Optimizer):
    """Random search over prompts: the BDPL paper's sanity baseline, ask/tell like BDPL.

    :meth:`ask` draws ``sample_size`` prompts uniformly (every position independently) from
    the candidates; :meth:`tell` records each prompt's mean loss; :meth:`recommend` is the
    prompt with the lowest mean loss told so far. :meth:`fit` is :meth:`Optimizer.fit
    <bdpl.optimizer.Optimizer.fit>` unchanged: per epoch, one step per minibatch, then the
    recommended prompt is evaluated on dev and the best on dev kept. Every query goes through
    the same metering layer, so a :class:`~bdpl.metering.Budget` is never overshot and a
    budget stop returns the best prompt so far.

    The arguments are the :class:`~bdpl.optimizer.Optimizer`'s that apply to a search without
    a distribution (no estimator, no learning rate). The same ``seed`` gives the same prompts.
    The table of told losses is not part of :attr:`state`: a saved and reloaded search keeps
    its best prompt but starts a new table.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        task: Task | None = None,
        candidates: Sequence[str] | None = None,
        prompt_length: int = 10,
        sample_size: int = 20,
        loss: LossName = "ce",
        margin: float = 1.0,
        batch_size: int = 128,
        epochs: int = 30,
        vocab_size: int = 200,
        seed: int = 0,
        budget: Budget | None = None,
        ledger: Ledger | str | Path | None = None,
        cache: QueryCache | str | Path | bool | None = None,
        meter: Meter | None = None,
        meter_options: Mapping[str, Any] | None = None,
        progress: bool = False,
    ) -> None:
        super().__init__(
            backend,
            task=task,
            candidates=candidates,
            prompt_length=prompt_length,
            sample_size=sample_size,
            loss=loss,
            margin=margin,
            batch_size=batch_size,
            epochs=epochs,
            vocab_size=vocab_size,
            seed=seed,
            budget=budget,
            ledger=ledger,
            cache=cache,
            meter=meter,
            meter_options=meter_options,
            progress=progress,
        )
        # prompt -> (sum of told losses, times told); a prompt drawn again refines its mean.
        self._told: dict[tuple[int, ...], tuple[float, int]] = {}

    def ask(self) -> list[IntArray]:
        """Draw ``sample_size`` prompts uniformly, each an array of ``L`` candidate indices."""
        n = self._need_state().params.shape[1]
        draws = self._rng.integers(0, n, size=(self.sample_size, self.prompt_length))
        return [row.astype(np.int64) for row in draws]

    def tell(
        self, prompts: Sequence[Sequence[int]] | Sequence[IntArray], losses: Sequence[float]
    ) -> None:
        """Record each prompt's loss (prompts as :meth:`ask` gave them)."""
        if len(prompts) != len(losses):
            raise ConfigError(f"got {len(prompts)} prompts but {len(losses)} losses")
        for prompt, loss in zip(prompts, losses, strict=True):
            key = tuple(int(i) for i in prompt)
            total, count = self._told.get(key, (0.0, 0))
            self._told[key] = (total + float(loss), count + 1)

    def recommend(self) -> list[str]:
        """The prompt with the lowest mean told loss (ties: the first told); before any
        :meth:`tell`, the first candidate at every position."""
        self._need_state()
        if not self._told:
            return self.tokens([0] * self.prompt_length)
        best = min(self._told, key=lambda k: self._told[k][0] / self._told[k][1])
        return self.tokens(best)

    def fit(
        self,
        train: Dataset,
        dev: Dataset | None = None,
        *,
        unlabelled: Dataset | Sequence[str] | None = None,
    ) -> FitResult:
        """Search on ``train``, keeping the best on ``dev``; as :meth:`Optimizer.fit
        <bdpl.optimizer.Optimizer.fit>`."""
        result = super().fit(train, dev, unlabelled=unlabelled)
        # The base reads indices off its (here unused) distribution; these are the prompt's.
        assert self.candidates is not None
        return dataclasses.replace(
            result, indices=[self.candidates.index(t) for t in result.prompt]
        )


class ManualPrompt(Optimizer):
    """The task's template alone, with no prompt in front: the zero-cost-to-learn baseline.

    It learns nothing: :meth:`fit` only evaluates the empty prompt on ``dev`` (through the
    metering layer, like every query), and :meth:`predict`/:meth:`evaluate` use the empty
    prompt unless given another. ``evaluate(ds)`` equals ``Optimizer.evaluate(ds, prompt=[])``.

    Args:
        backend: the model.
        task: the task; :meth:`fit` takes it from the training set when not given.
        budget, ledger, cache, meter, meter_options: as for
            :class:`~bdpl.optimizer.Optimizer`.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        task: Task | None = None,
        budget: Budget | None = None,
        ledger: Ledger | str | Path | None = None,
        cache: QueryCache | str | Path | bool | None = None,
        meter: Meter | None = None,
        meter_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(
            backend,
            task=task,
            budget=budget,
            ledger=ledger,
            cache=cache,
            meter=meter,
            meter_options=meter_options,
        )
        self.best_prompt = []

    def recommend(self) -> list[str]:
        """The empty prompt."""
        return []

    def fit(
        self,
        train: Dataset,
        dev: Dataset | None = None,
        *,
        unlabelled: Dataset | Sequence[str] | None = None,
    ) -> FitResult:
        """Fix the task from ``train`` and score the template alone on ``dev``.

        ``unlabelled`` is accepted for a uniform signature and ignored. A budget stop leaves
        ``dev_score`` ``None`` with ``stop_reason="budget: <limit>"``.
        """
        self.task = self._task_for(train)
        start, stop_reason, score = self.queries, "epochs", None
        if dev is not None:
            try:
                score = self.evaluate(dev)
            except BudgetExceededError as exc:
                stop_reason = f"budget: {exc.limit}"
        self.best_score = score
        return FitResult(
            prompt=[],
            indices=[],
            dev_score=score,
            stop_reason=stop_reason,
            queries=self.queries - start,
        )
