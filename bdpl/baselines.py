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

>>> from bdpl import Dataset, Example, FakeBackend, Planted, get_task
>>> words = ["good", "bad", "film", "plot", "truly", "meh"]
>>> train = Dataset(get_task("sst2"), [Example(f"review {i}", label=str(i % 2)) for i in range(16)])
>>> planted = Planted.for_dataset(train, words, prompt_length=2, best=[0, 4], strength=2.0)
>>> fake = FakeBackend(planted=planted)
>>> search = RandomSearch(fake, candidates=words, prompt_length=2, sample_size=8, epochs=5,
...                       seed=0, cache=False)
>>> result = search.fit(train, train)
>>> result.dev_score, result.queries
(1.0, 720)
>>> ManualPrompt(fake, cache=False).fit(train, train).dev_score
0.6875
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bdpl.backends.base import Backend
from bdpl.calibration import Calibration
from bdpl.errors import BudgetExceededError, ConfigError
from bdpl.estimators import IntArray
from bdpl.optimizer import FitResult, Optimizer
from bdpl.tasks import Dataset, Task

# What ManualPrompt passes on to the Optimizer: the metering, nothing that learns.
_METERING = frozenset({"budget", "ledger", "cache", "meter", "meter_options"})


class RandomSearch(Optimizer):
    """Random search over prompts: the BDPL paper's sanity baseline, ask/tell like BDPL.

    :meth:`ask` draws ``sample_size`` prompts uniformly (every position independently) from
    the candidates; :meth:`tell` records each prompt's mean loss; :meth:`recommend` is the
    prompt with the lowest mean loss told so far. :meth:`fit` is :meth:`Optimizer.fit
    <bdpl.optimizer.Optimizer.fit>` unchanged: per epoch, one step per minibatch, then the
    recommended prompt is evaluated on dev and the best on dev kept. Every query goes through
    the same metering layer, so a :class:`~bdpl.metering.Budget` is never overshot and a
    budget stop returns the best prompt so far.

    Args:
        backend: the model.
        options: the :class:`~bdpl.optimizer.Optimizer`'s keyword arguments, but for
            ``learning_rate`` and ``estimator`` (a search has no distribution to learn).
            The same ``seed`` gives the same prompts.

    Raises:
        ConfigError: as the Optimizer, or ``learning_rate``/``estimator`` given.

    The prompt vocabulary, task, budget and meter are set up as the Optimizer's.
    The table of told losses is not part of :attr:`state`: a saved and reloaded search keeps
    its best prompt but starts a new table.
    """

    def __init__(self, backend: Backend, **options: Any) -> None:
        unused = sorted({"learning_rate", "estimator"} & set(options))
        if unused:
            raise ConfigError(f"RandomSearch has no distribution to learn; drop {unused}")
        super().__init__(backend, **options)
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
            return self.phrases([0] * self.prompt_length)
        best = min(self._told, key=lambda k: self._told[k][0] / self._told[k][1])
        return self.phrases(best)


class ManualPrompt(Optimizer):
    """The task's template alone, with no prompt in front: the zero-cost-to-learn baseline.

    It learns nothing: :meth:`fit` only evaluates the empty prompt on ``dev`` (through the
    metering layer, like every query), and :meth:`predict`/:meth:`evaluate` use the empty
    prompt unless given another. ``evaluate(ds)`` equals ``Optimizer.evaluate(ds, prompt=[])``.

    Args:
        backend: the model.
        task: the task; :meth:`fit` takes it from the training set when not given.
        calibration: as for :class:`~bdpl.optimizer.Optimizer` (``None``, ``"content-free"``
            or ``"batch"``): the template alone is scored with the same label-prior removal
            as the learned prompts it is compared with.
        metering: ``budget``, ``ledger``, ``cache``, ``meter`` or ``meter_options``, as for
            :class:`~bdpl.optimizer.Optimizer`.

    Raises:
        ConfigError: any other keyword, or a bad metering setting.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        task: Task | None = None,
        calibration: Calibration | None = None,
        **metering: Any,
    ) -> None:
        extra = sorted(set(metering) - _METERING)
        if extra:
            raise ConfigError(f"ManualPrompt learns nothing; it takes no {extra}")
        super().__init__(backend, task=task, calibration=calibration, **metering)
        self.best_prompt = []

    def recommend(self) -> list[str]:
        """The empty prompt."""
        return []

    def fit(self, train: Dataset, dev: Dataset | None = None, **_: Any) -> FitResult:
        """Fix the task from ``train`` and score the template alone on ``dev``.

        :meth:`Optimizer.fit <bdpl.optimizer.Optimizer.fit>`'s other arguments are accepted
        for a uniform signature and ignored (nothing is learned). A budget stop leaves
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
