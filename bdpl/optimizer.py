"""The BDPL optimizer: ask/tell over one categorical distribution per prompt position.

>>> from bdpl.testing import FakeBackend, Planted
>>> from bdpl.tasks import Dataset, Example, get_task
>>> train = Dataset(get_task("sst2"), tuple(Example(f"review {i}", label=str(i % 2))
...                                         for i in range(16)))
>>> words = ["good", "bad", "film", "plot", "truly", "meh"]
>>> fake = FakeBackend(planted=Planted.for_dataset(train, words, prompt_length=2, best=[0, 4],
...                                                 strength=2.0))
>>> opt = Optimizer(fake, candidates=words, prompt_length=2, sample_size=8, batch_size=16,
...                 epochs=20, seed=0)
>>> result = opt.fit(train)
>>> result.prompt, result.stop_reason
(['good', 'truly'], 'epochs')
>>> opt.evaluate(train)
1.0
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np

from bdpl import checkpoint
from bdpl._validate import positive_int
from bdpl.backends.base import Backend, capabilities_of
from bdpl.calibration import Calibration, calibrated_scores, check_calibration, extra_queries
from bdpl.checkpoint import FORMAT_VERSION
from bdpl.errors import BudgetExceededError, ConfigError, MalformedResponseError
from bdpl.estimators import (
    ESTIMATORS,
    Estimator,
    EstimatorState,
    FloatArray,
    IntArray,
    as_samples,
    get_estimator,
)
from bdpl.losses import LOSSES, LossName, losses_from_scores
from bdpl.metering import Budget, CostEstimate, Ledger, Meter, Price, QueryCache
from bdpl.metrics import compute_metric
from bdpl.plan import FitPlan, estimate_fit_cost
from bdpl.selection import PromptReport, Selection, above_chance, compare, metric_interval
from bdpl.tasks import Dataset, Example, Task
from bdpl.types import LabelScores, Query
from bdpl.vocab import check_candidates
from bdpl.vocabulary import Vocabulary, gather_vocabulary

if TYPE_CHECKING:
    from bdpl.explain import Explanation

SelectionRule = Literal["paired", "above-chance", "best-dev"]
SELECTIONS: tuple[str, ...] = ("paired", "above-chance", "best-dev")

__all__ = [
    "FORMAT_VERSION",
    "EpochRecord",
    "FitPlan",
    "FitResult",
    "LossName",
    "Optimizer",
    "OptimizerState",
    "losses_from_scores",
]


class OptimizerState(NamedTuple):
    """Everything that changes during a fit (save it to checkpoint, restore it to resume).

    Attributes:
        estimator: parameters, and moments for an estimator that keeps them.
        rng: the numpy ``PCG64`` bit generator's state (plain JSON).
    """

    estimator: EstimatorState
    rng: Mapping[str, Any]


@dataclass(frozen=True)
class EpochRecord:
    """One epoch of :meth:`Optimizer.fit`.

    Attributes:
        epoch: 0-based epoch number.
        steps: updates made in this epoch.
        train_loss: mean loss of the sampled prompts over the epoch (NaN if no step finished).
        dev_score: the task metric on the dev set with the argmax prompt, if a dev set was given
            and it could be evaluated.
        prompt: the argmax prompt at the end of the epoch.
        queries: queries sent to the metering layer so far in this fit (cache hits included).
    """

    epoch: int
    steps: int
    train_loss: float
    dev_score: float | None
    prompt: list[str]
    queries: int


@dataclass(frozen=True)
class FitResult:
    """What :meth:`Optimizer.fit` returns.

    Attributes:
        prompt: the best prompt (best dev score; the last one without a dev set).
        indices: its candidate indices.
        dev_score: its dev score, when a dev set was given and evaluated.
        history: one record per epoch started.
        stop_reason: ``"epochs"`` or ``"budget: <limit>"``.
        queries: queries sent to the metering layer in this fit, dev evaluations included
            (identical prompts in a step count once; cache hits count).
        steps: updates made.
        selection: with a dev set and ``selection="paired"``, what was compared and why the
            prompt was kept (``prompt`` is ``[]`` when the manual prompt was kept).
    """

    prompt: list[str]
    indices: list[int]
    dev_score: float | None
    history: list[EpochRecord] = field(default_factory=list)
    stop_reason: str = "epochs"
    queries: int = 0
    steps: int = 0
    selection: Selection | None = None


class Optimizer:
    """Learns a discrete prompt for a task from a black-box backend (BDPL).

    Each step samples ``sample_size`` prompts from the per-position distributions
    (:meth:`ask`), scores a minibatch under each through the metering layer, and updates
    the distributions from the prompts' losses (:meth:`tell`). :meth:`fit` loops over epochs
    and keeps the prompt with the best dev score.

    Defaults follow the reference's RoBERTa script (``run.sh``): ``prompt_length=10``,
    ``sample_size=20``, ``vocab_size=200`` (``prompt_search_space``), ``batch_size=128``,
    ``epochs=30``; the learning rate defaults to the estimator's own (``"reference"``:
    1e-4 as in ``run.sh``; ``"loo"``: 1.0, tuned on planted fakes, see
    ``benchmarks/``).

    Metering is configured in one of two ways: give ``budget``/``ledger``/``cache`` (the
    optimizer then builds a :class:`~bdpl.metering.Meter` around ``backend`` and closes it in
    :meth:`close`), or give a ready ``meter=`` (for a price, retries or concurrency:
    ``Optimizer(meter=Meter(backend, price=...))``), whose backend is then the optimizer's.

    Ownership: the optimizer closes only the meter it built. A meter or a backend passed in
    belongs to the caller, who closes it (both are context managers); the optimizer never
    closes a backend.

    Args:
        backend: the model, any :class:`~bdpl.backends.base.Backend`; may be left out when
            ``meter`` is given (it is ``meter.backend``), and must be that very object when
            both are given.
        task: the task; :meth:`fit` takes it from the training set when not given.
        candidates: the prompt vocabulary; :meth:`fit` builds one with
            :func:`bdpl.vocab.build_vocabulary` (``vocab_size`` phrases) when not given.
        prompt_length: prompt positions ``L``.
        sample_size: prompts drawn per step ``I`` (>= 2: the baseline needs two).
        learning_rate: step size; ``None`` picks the estimator's default.
        estimator: ``"loo"`` (default), ``"loo-rank"`` or ``"reference"`` (see
            :mod:`bdpl.estimators`).
        loss: ``"ce"`` (cross-entropy over the labels) or ``"hinge"``.
        margin: the hinge loss's margin (reference default 1).
        batch_size: training examples per step.
        epochs: passes over the training set.
        vocab_size: candidates to build when none are given.
        seed: seeds sampling and shuffling; the same seed gives the same result, bit for bit.
        budget: spending limits (:class:`~bdpl.metering.Budget`); reaching one stops
            :meth:`fit` cleanly with the best prompt so far.
        ledger: a :class:`~bdpl.metering.Ledger` or a JSONL path recording every paid call.
        cache: the query cache: ``None`` (default) is the disk cache under the cache root
            (``$BDPL_CACHE_DIR`` or ``~/.cache/bdpl``), a path or a
            :class:`~bdpl.metering.QueryCache` another, ``False`` none.
        meter: a ready metering layer to use instead (then give none of the three above);
            otherwise one is built as ``Meter(backend, budget=..., ledger=..., cache=...)``.
        meter_options: deprecated (removed in the next release): further keyword arguments
            for the ``Meter`` built here. Build the meter instead:
            ``meter=Meter(backend, price=..., retry=..., max_concurrency=...)``.
        selection: how :meth:`fit` picks its prompt on dev. ``"best-dev"``: the best-dev
            epoch's prompt, as the paper does. ``"paired"``: that prompt is kept only
            if it beats the manual prompt (the template alone) clearly on the same dev
            examples — lower loss by a paired bootstrap and correctness not significantly
            worse, at level ``alpha`` divided by the number of distinct prompts looked at
            (see :mod:`bdpl.selection`) — else the manual prompt is kept.
            ``"above-chance"`` (default): that prompt is kept only if, on train and dev pooled, its
            metric is higher and its loss lower than the manual prompt's, and it is itself
            clearly better than always answering the most frequent class (a binomial test at
            the same level; :func:`~bdpl.selection.above_chance`) — else the manual prompt.
            With a dev set, every rule reports the comparison in :attr:`FitResult.selection`.
        alpha: the family-wise significance level of ``"paired"`` and ``"above-chance"``.
        progress: show a tqdm progress bar during :meth:`fit`.
        calibration: remove the prompt's label prior from the label scores, in training and
            in prediction alike (saved with the prompt): ``None`` (default, the paper's),
            ``"content-free"`` (contextual calibration; a few extra queries per prompt) or
            ``"batch"`` (batch calibration; no extra queries). See :mod:`bdpl.calibration`.

    Raises:
        ConfigError: on an invalid setting (the message names it), no backend and no meter,
            or a ``backend`` that is not ``meter.backend``.
    """

    def __init__(
        self,
        backend: Backend | None = None,
        *,
        task: Task | None = None,
        candidates: Sequence[str] | None = None,
        prompt_length: int = 10,
        sample_size: int = 20,
        learning_rate: float | None = None,
        estimator: str = "loo",
        loss: LossName = "ce",
        margin: float = 1.0,
        batch_size: int = 128,
        epochs: int = 30,
        vocab_size: int = 200,
        seed: int = 0,
        selection: SelectionRule = "above-chance",
        alpha: float = 0.05,
        budget: Budget | None = None,
        ledger: Ledger | str | Path | None = None,
        cache: QueryCache | str | Path | bool | None = None,
        meter: Meter | None = None,
        meter_options: Mapping[str, Any] | None = None,
        progress: bool = False,
        calibration: Calibration | None = None,
    ) -> None:
        self.calibration = check_calibration(calibration)
        self.prompt_length = positive_int("prompt_length", prompt_length)
        self.sample_size = positive_int("sample_size", sample_size, 2)
        self.batch_size = positive_int("batch_size", batch_size)
        self.epochs = positive_int("epochs", epochs)
        self.vocab_size = positive_int("vocab_size", vocab_size, 2)
        self.seed = positive_int("seed", seed, 0)
        if estimator not in ESTIMATORS:
            raise ConfigError(f"unknown estimator {estimator!r}; use one of {sorted(ESTIMATORS)}")
        if learning_rate is not None and (
            isinstance(learning_rate, bool) or not isinstance(learning_rate, int | float)
        ):
            raise ConfigError(f"learning_rate must be a number, got {learning_rate!r}")
        self.estimator: Estimator = get_estimator(estimator, learning_rate=learning_rate)
        if loss not in LOSSES:
            raise ConfigError(f"loss must be one of {LOSSES}, got {loss!r}")
        if not (isinstance(margin, int | float) and math.isfinite(margin) and margin > 0):
            raise ConfigError(f"margin must be a positive number, got {margin!r}")
        checked = None if candidates is None else check_candidates(candidates)
        if meter_options is not None:
            warnings.warn(_METER_OPTIONS_DEPRECATED, DeprecationWarning, stacklevel=2)
        options = _meter_options(budget, ledger, cache, meter_options)
        self._owns_meter = meter is None
        if meter is not None:
            if options:
                raise ConfigError(
                    "give either a ready meter or budget/ledger/cache/meter_options, not both"
                )
            if not isinstance(meter, Meter):
                raise ConfigError(f"meter must be a bdpl Meter, got {type(meter).__name__}")
            if backend is not None and backend is not meter.backend:
                raise ConfigError(
                    "backend is not the meter's backend, so queries would go to another model "
                    "than the one given; pass meter= alone (its backend is used)"
                )
        elif backend is None:
            raise ConfigError("no backend: pass a backend, or a meter= built around one")
        else:
            meter = Meter(backend, **options)
        if selection not in SELECTIONS:
            raise ConfigError(f"selection must be one of {SELECTIONS}, got {selection!r}")
        if not (isinstance(alpha, float | int) and not isinstance(alpha, bool) and 0 < alpha < 1):
            raise ConfigError(f"alpha must be a number in (0, 1), got {alpha!r}")
        self.selection: SelectionRule = selection
        self.alpha = float(alpha)
        self.loss: LossName = loss
        self.margin = float(margin)
        self.task = task
        self.progress = progress
        self.meter: Meter = meter
        self.separator = capabilities_of(self.backend).pair_separator
        self.queries = 0
        self.best_prompt: list[str] | None = None
        self.best_state: EstimatorState | None = None
        self.best_score: float | None = None
        self.dev_prompts: list[list[str]] = []
        self.candidates: list[str] | None = None
        self.vocabulary: Vocabulary | None = None  # what prepare() built, with its sources
        self._rng = np.random.Generator(np.random.PCG64(self.seed))
        self._estimator_state: EstimatorState | None = None
        if checked is not None:
            self._set_candidates(checked)

    @property
    def backend(self) -> Backend:
        """The model queries go to: always the meter's backend (read-only)."""
        return self.meter.backend

    def close(self) -> None:
        """Close the meter if this optimizer built it; idempotent.

        A meter passed in is left open (its owner closes it), and the backend is never closed
        here: close it yourself, or use it as a context manager.
        """
        if self._owns_meter:
            self.meter.close()

    def __enter__(self) -> Optimizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- state
    def _set_candidates(self, candidates: Sequence[str]) -> None:
        self.candidates = check_candidates(candidates)
        self._estimator_state = self.estimator.init(self.prompt_length, len(self.candidates))

    def _need_state(self) -> EstimatorState:
        if self._estimator_state is None:
            raise ConfigError("no candidates yet: pass candidates= or call fit() first")
        return self._estimator_state

    @property
    def state(self) -> OptimizerState:
        """The current state (a copy: changing it does not change the optimizer)."""
        return OptimizerState(self._need_state().copy(), dict(self._rng.bit_generator.state))

    @state.setter
    def state(self, value: OptimizerState) -> None:
        self._estimator_state = self._checked(value.estimator)
        self._rng.bit_generator.state = dict(value.rng)

    def _checked(self, state: EstimatorState) -> EstimatorState:
        """A copy of ``state`` if it fits this optimizer (moments only where they are used)."""
        shape = self._need_state().params.shape
        if state.params.shape != shape:
            raise ConfigError(f"state has shape {state.params.shape}, expected {shape}")
        state = state.copy()
        return state if self.estimator.uses_moments else state.without_moments()

    @property
    def probs(self) -> FloatArray:
        """The ``L x N`` sampling distribution (a copy)."""
        out: FloatArray = self.estimator.probs(self._need_state()).copy()
        return out

    # -------------------------------------------------------------- ask/tell
    def ask(self) -> list[IntArray]:
        """Draw ``sample_size`` prompts, each an array of ``L`` candidate indices."""
        probs = self.estimator.probs(self._need_state())
        cdf = np.cumsum(probs, axis=1)
        cdf[:, -1] = 1.0  # rounding must not leave a gap at the top
        u = self._rng.random((self.sample_size, self.prompt_length))
        # Inverse-CDF sampling: plain arithmetic, identical on every platform and process.
        idx = (u[:, :, None] >= cdf[None, :, :]).sum(axis=2)
        return [row.astype(np.int64) for row in np.minimum(idx, probs.shape[1] - 1)]

    def tell(
        self, prompts: Sequence[Sequence[int]] | Sequence[IntArray], losses: Sequence[float]
    ) -> None:
        """Update the distributions from prompts (as :meth:`ask` gave) and their losses."""
        state = self._need_state()
        self._estimator_state = self.estimator.update(
            state, as_samples(prompts), np.asarray(losses, dtype=np.float64)
        )

    def recommend(self) -> list[str]:
        """The most probable candidate at each position."""
        indices = np.argmax(self.estimator.probs(self._need_state()), axis=1)
        return self.phrases(indices)

    def phrases(self, indices: Sequence[int] | IntArray) -> list[str]:
        """The candidate phrases at candidate indices (a prompt as text, one per position)."""
        if self.candidates is None:
            raise ConfigError("no candidates yet: pass candidates= or call fit() first")
        return [self.candidates[int(i)] for i in indices]

    def tokens(self, indices: Sequence[int] | IntArray) -> list[str]:
        """Alias of :meth:`phrases` (the old name: these are phrases, not tokenizer tokens)."""
        return self.phrases(indices)

    # ----------------------------------------------------------------- scoring
    def _task_for(self, dataset: Dataset) -> Task:
        return self.task if self.task is not None else dataset.task

    def _score(
        self, task: Task, prompts: Sequence[Sequence[str]], examples: Sequence[Example]
    ) -> FloatArray:
        """Calibrated label log-probs, ``len(prompts) x len(examples) x K``, in one metered call."""
        return calibrated_scores(
            lambda queries: self._score_queries(task, queries),
            task,
            prompts,
            examples,
            method=self.calibration,
            separator=self.separator,
        )

    def _score_queries(self, task: Task, queries: Sequence[Query]) -> FloatArray:
        """Label log-probs of ``queries``, ``len(queries) x K``, in one metered call."""
        scores: list[LabelScores] = self.meter.score(queries)
        self.queries += len(queries)
        k = len(task.label_words)
        if len(scores) != len(queries) or any(len(s.logprobs) != k for s in scores):
            raise MalformedResponseError(
                f"expected {len(queries)} answers of {k} label scores from the metering layer"
            )
        return np.array([s.logprobs for s in scores], dtype=np.float64).reshape(len(queries), k)

    def prompt_losses(
        self,
        prompts: Sequence[Sequence[int]] | Sequence[IntArray],
        examples: Sequence[Example],
        task: Task | None = None,
    ) -> FloatArray:
        """Mean loss of each prompt on ``examples``; identical prompts are scored once."""
        task = task or self.task
        if task is None:
            raise ConfigError("no task: pass task= or call fit() first")
        keys = [tuple(int(i) for i in p) for p in prompts]
        unique = list(dict.fromkeys(keys))
        labels = np.array([task.label_index(e) for e in examples], dtype=np.int64)
        lp = self._score(task, [self.phrases(u) for u in unique], examples)
        per_prompt = losses_from_scores(
            lp, np.broadcast_to(labels, lp.shape[:2]), loss=self.loss, margin=self.margin
        ).mean(axis=1)
        found = dict(zip(unique, per_prompt.tolist(), strict=True))
        return np.array([found[k] for k in keys], dtype=np.float64)

    def step(self, examples: Sequence[Example], task: Task | None = None) -> float:
        """One ask/score/tell update on a minibatch; returns the mean sampled loss."""
        prompts = self.ask()
        losses = self.prompt_losses(prompts, examples, task)
        self.tell(prompts, losses.tolist())
        return float(losses.mean())

    def predict(self, dataset: Dataset, prompt: Sequence[str] | None = None) -> list[int]:
        """Predicted class index per example, with ``prompt`` (default: best, else argmax)."""
        task = self._task_for(dataset)
        if prompt is None:
            prompt = self.best_prompt if self.best_prompt is not None else self.recommend()
        if self.calibration == "batch" and len(dataset) < 2:
            raise ConfigError(
                "batch calibration needs at least 2 examples predicted together (one alone is "
                "always uniform); predict more at once or use calibration='content-free'"
            )
        lp = self._score(task, [list(prompt)], list(dataset.examples))[0]
        return [int(i) for i in np.argmax(lp, axis=1)]

    def evaluate(self, dataset: Dataset, prompt: Sequence[str] | None = None) -> float:
        """The task's metric on ``dataset`` with ``prompt`` (default as :meth:`predict`)."""
        task = self._task_for(dataset)
        y_true = [task.label_index(e) for e in dataset.examples]
        return compute_metric(
            task.metric, y_true, self.predict(dataset, prompt), num_classes=len(task.labels)
        )

    def explain(
        self, dataset: Dataset, *, top: int = 5, prompt: Sequence[str] | None = None
    ) -> Explanation:
        """Per position, the top candidates and the metric's change when the phrase is
        removed or replaced by the next-best one, on ``dataset`` (metered like every query;
        see :func:`bdpl.explain.explain`)."""
        from bdpl.explain import explain

        return explain(self, dataset, top=top, prompt=prompt)

    # ------------------------------------------------------------------- fit
    def plan(self, n_train: int, n_dev: int = 0) -> FitPlan:
        """How :meth:`fit` on ``n_train`` training and ``n_dev`` dev examples sends queries.

        The fit loop walks this plan (its batches and steps), and :meth:`estimate_cost` prices
        it, so the estimate is of what is actually sent.

        Raises:
            ConfigError: a negative or non-integer count.
        """
        return FitPlan.for_fit(
            n_train=n_train,
            n_dev=n_dev,
            batch_size=self.batch_size,
            sample_size=self.sample_size,
            epochs=self.epochs,
            paired_selection=True,
            extra=extra_queries(self.calibration),
        )

    def max_queries(self, n_train: int, n_dev: int = 0) -> int:
        """Worst-case queries of :meth:`fit` (no prompt de-duplication, no cache hits)."""
        return self.plan(n_train, n_dev).max_queries

    def prepare(self, train: Dataset, unlabelled: Dataset | Sequence[str] | None = None) -> Task:
        """Fix the task and the prompt vocabulary from ``train``, as :meth:`fit` does first.

        The task is ``train.task`` unless one was given; the candidates, unless given, are
        :func:`bdpl.vocabulary.gather_vocabulary` of the training texts and ``unlabelled``
        (``vocab_size`` of them; kept in :attr:`vocabulary` with their sources). Calling it
        before :meth:`fit` lets :meth:`estimate_cost` see the real vocabulary.

        Raises:
            ConfigError: the texts yield fewer than 2 candidates, or ``unlabelled`` comes
                after the candidates were fixed without it (it would be ignored).
        """
        task = self.task = self._task_for(train)
        if unlabelled and self.candidates is not None:
            built = self.vocabulary
            if built is None or not built.texts["unlabelled"]:
                raise ConfigError(
                    "unlabelled texts only serve to build the vocabulary, and this optimizer "
                    "has its candidates already; pass them to the first prepare/fit/estimate_cost"
                )
        if self.candidates is None:
            vocabulary = gather_vocabulary(train, unlabelled=unlabelled or (), size=self.vocab_size)
            if len(vocabulary) < 2:
                raise ConfigError(
                    f"the training texts yield {len(vocabulary)} prompt candidates (need 2 or "
                    "more); pass candidates= explicitly"
                )
            self.vocabulary = vocabulary
            self._set_candidates(vocabulary)
        return task

    def estimate_cost(
        self,
        train: Dataset,
        dev: Dataset | None = None,
        *,
        price: Price | None = None,
        unlabelled: Dataset | Sequence[str] | None = None,
    ) -> CostEstimate:
        """Worst-case queries, requests, tokens and dollars of ``fit(train, dev)``.

        Builds the vocabulary first when none was given (as :meth:`prepare`); no model is
        called. See :func:`bdpl.plan.estimate_fit_cost`.

        Raises:
            ConfigError: as :meth:`prepare`, or an empty training set.
            UnknownPriceError: a paid model with no price and none given.
        """
        self.prepare(train, unlabelled)
        return estimate_fit_cost(self, train, dev, price=price)

    def fit(
        self,
        train: Dataset,
        dev: Dataset | None = None,
        *,
        unlabelled: Dataset | Sequence[str] | None = None,
        first_epoch: int = 0,
        on_step: Callable[[float], None] | None = None,
        on_epoch: Callable[[EpochRecord], None] | None = None,
    ) -> FitResult:
        """Learn a prompt on ``train``, evaluating on ``dev`` after each epoch.

        Stops after ``epochs``, or cleanly when the metering layer's budget would be passed
        (``stop_reason="budget: <limit>"``), returning the best prompt found so far. The
        optimizer keeps its distributions, so calling ``fit`` again continues training.

        Args:
            train: the training set.
            dev: the dev set that picks the best epoch's prompt; ``None`` keeps the last.
            unlabelled: texts (or examples) that join the training texts when the vocabulary
                is built (see :meth:`prepare`); their labels are never read.
            first_epoch: the epoch to start at, to resume from a checkpoint saved (with
                :meth:`save`) after epoch ``first_epoch - 1``: the result then equals an
                uninterrupted fit's.
            on_step: called with each step's mean sampled loss.
            on_epoch: called with each finished epoch's record (e.g. to checkpoint).

        Raises:
            ConfigError: an empty training or dev set, or a task/candidates problem.
        """
        if len(train) == 0:
            raise ConfigError("the training set is empty")
        if dev is not None and len(dev) == 0:
            raise ConfigError("the dev set is empty (pass dev=None to train without one)")
        if dev is not None and len(dev) < 2 and self.calibration == "batch":
            raise ConfigError("batch calibration needs a dev set of at least 2 examples")
        task = self.prepare(train, unlabelled)
        examples = list(train.examples)
        # Every label is checked before the first paid query, not when its batch comes up.
        Dataset(task, train.examples).label_indices()
        if dev is not None:
            Dataset(task, dev.examples).label_indices()
        plan = self.plan(len(examples), len(dev) if dev is not None else 0)
        history: list[EpochRecord] = []
        stop_reason = "epochs"
        steps = 0
        start = self.queries
        bar = self._progress_bar(plan.steps)
        try:
            for epoch in range(positive_int("first_epoch", first_epoch, 0), plan.epochs):
                order = self._rng.permutation(len(examples))
                losses: list[float] = []
                record_score: float | None = None
                try:
                    for lo, hi in plan.batch_bounds:
                        batch = [examples[i] for i in order[lo:hi]]
                        losses.append(self.step(batch, task))
                        steps += 1
                        if on_step is not None:
                            on_step(losses[-1])
                        if bar is not None:
                            bar.update(1)
                            bar.set_postfix(loss=f"{losses[-1]:.4f}")
                    if dev is not None:
                        prompt = self.recommend()
                        record_score = self.evaluate(dev, prompt)
                        if prompt not in self.dev_prompts:
                            self.dev_prompts.append(prompt)
                        if self.best_score is None or record_score >= self.best_score:
                            self._keep_best(record_score)
                except BudgetExceededError as exc:
                    stop_reason = f"budget: {exc.limit}"
                history.append(
                    EpochRecord(
                        epoch,
                        len(losses),
                        float(np.mean(losses)) if losses else math.nan,
                        record_score,
                        self.recommend(),
                        self.queries - start,
                    )
                )
                if stop_reason != "epochs":
                    break
                if on_epoch is not None:
                    on_epoch(history[-1])
        finally:
            if bar is not None:
                bar.close()
        if dev is None or self.best_state is None:
            self._keep_best(None)
        assert self.best_prompt is not None and self.best_state is not None
        chosen: Selection | None = None
        if dev is not None and self.best_prompt:
            try:
                chosen = self._select(task, train, dev)
            except BudgetExceededError as exc:  # the best-dev prompt stands, unchecked
                stop_reason = f"budget: {exc.limit}"
        return FitResult(
            prompt=list(self.best_prompt),
            indices=self._indices(self.best_prompt),
            dev_score=self.best_score,
            history=history,
            stop_reason=stop_reason,
            queries=self.queries - start,
            steps=steps,
            selection=chosen,
        )

    def report(self, dataset: Dataset, prompt: Sequence[str]) -> PromptReport:
        """How ``prompt`` does on ``dataset``, example by example (one metered call)."""
        task = self._task_for(dataset)
        lp = self._score(task, [list(prompt)], list(dataset.examples))[0]
        labels = np.array(dataset.label_indices(), dtype=np.int64)
        losses = losses_from_scores(lp, labels, loss=self.loss, margin=self.margin)
        predicted = np.argmax(lp, axis=1)
        metric = compute_metric(task.metric, labels, predicted, num_classes=len(task.labels))
        return PromptReport(tuple(prompt), metric, losses, predicted == labels, predicted)

    def _select(self, task: Task, train: Dataset, dev: Dataset) -> Selection:
        """Compare the best-dev prompt with the manual one; under ``"paired"``, keep the manual
        one unless the learned one wins clearly."""
        assert self.best_prompt is not None
        looked_at = max(1, len(self.dev_prompts))
        chosen = self.choose(
            Dataset(task, train.examples), Dataset(task, dev.examples), self.best_prompt,
            looked_at=looked_at, enforce=self.selection != "best-dev",
        )  # fmt: skip
        if chosen.kept_manual:
            self.best_prompt, self.best_score = [], chosen.manual_dev
        return chosen

    def choose(
        self,
        train: Dataset,
        dev: Dataset,
        prompt: Sequence[str],
        *,
        looked_at: int = 1,
        enforce: bool = True,
    ) -> Selection:
        """Whether ``prompt`` beats the manual prompt clearly, by the rule ``selection`` names
        (``"best-dev"`` reports the ``"paired"`` test's verdict).

        Args:
            train: the training set (reported; ``"above-chance"`` pools it with ``dev``).
            dev: the examples the two prompts are compared on, example by example.
            prompt: the learned prompt.
            looked_at: how many distinct prompts were evaluated on ``dev`` to find this one;
                the test's level is ``alpha / looked_at``.
            enforce: keep the manual prompt when ``prompt`` does not win clearly; ``False``
                keeps ``prompt`` anyway and only reports the comparison.

        Returns:
            The :class:`~bdpl.selection.Selection`: ``prompt`` if it wins, else ``[]``.
        """
        n = positive_int("looked_at", looked_at)
        task = self._task_for(dev)
        manual = self.report(dev, [])
        learned = self.report(dev, prompt)
        manual_train, learned_train = self.report(train, []), self.report(train, prompt)
        level = self.alpha / n
        comparison = compare(
            learned.losses, manual.losses, learned.correct, manual.correct, alpha=level
        )
        if self.selection == "above-chance":
            wins = above_chance(
                [learned, learned_train], [manual, manual_train],
                [dev.label_indices(), train.label_indices()],
                metric=task.metric, num_classes=len(task.labels), level=level,
            )  # fmt: skip
        else:
            wins = comparison.better
        kept = learned if wins or not enforce else manual
        on_train = (learned_train if kept is learned else manual_train).metric
        labels = dev.label_indices()
        interval = metric_interval(labels, kept.predictions.tolist(), task.metric, len(task.labels))
        return Selection(
            prompt=list(kept.prompt),
            candidate=list(prompt),
            kept_manual=kept is manual,
            candidates=n,
            alpha=self.alpha,
            dev=kept.metric,
            manual_dev=manual.metric,
            train=on_train,
            manual_train=manual_train.metric,
            dev_interval=interval,
            comparison=comparison,
        )

    def _indices(self, prompt: Sequence[str]) -> list[int]:
        assert self.candidates is not None
        return [self.candidates.index(t) for t in prompt]

    def _keep_best(self, score: float | None) -> None:
        # A copy, not an alias: later updates must not change the kept distribution.
        self.best_state = self._need_state().copy()
        self.best_prompt = self.recommend()
        self.best_score = score

    def _progress_bar(self, total: int) -> Any:
        if not self.progress:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, desc="bdpl", unit="step")

    # -------------------------------------------------------------- save/load
    def settings(self) -> dict[str, Any]:
        """The hyperparameters, as saved with a prompt."""
        return {
            "prompt_length": self.prompt_length,
            "sample_size": self.sample_size,
            "learning_rate": self.estimator.learning_rate,
            "estimator": self.estimator.name,
            "loss": self.loss,
            "margin": self.margin,
            "batch_size": self.batch_size,
            "epochs": self.epochs,
            "vocab_size": self.vocab_size,
            "seed": self.seed,
            "selection": self.selection,
            "alpha": self.alpha,
            "calibration": self.calibration,
        }

    def save(self, path: str | Path) -> None:
        """Write the learned prompt, distribution, task, settings and state as JSON.

        The file format is :mod:`bdpl.checkpoint`'s; :meth:`load` reads it back.
        """
        if self.candidates is None:
            raise ConfigError("nothing to save yet: pass candidates= or call fit() first")
        state = self._need_state()
        best = self.best_state or state
        checkpoint.write(
            path,
            checkpoint.Checkpoint(
                prompt=self.best_prompt if self.best_prompt is not None else self.recommend(),
                dev_score=self.best_score,
                candidates=list(self.candidates),
                task=self.task,
                settings=self.settings(),
                state=state,
                best_state=best,
                rng=dict(self._rng.bit_generator.state),
                distribution=self.estimator.probs(best).tolist(),
                dev_prompts=[list(p) for p in self.dev_prompts],
            ),
        )

    @classmethod
    def load(
        cls,
        path: str | Path,
        backend: Backend | None = None,
        *,
        meter: Meter | None = None,
        budget: Budget | None = None,
        ledger: Ledger | str | Path | None = None,
        cache: QueryCache | str | Path | bool | None = None,
        meter_options: Mapping[str, Any] | None = None,
        progress: bool = False,
    ) -> Optimizer:
        """Rebuild a saved optimizer (prompt, task, settings and state) around a backend.

        Metering is configured as for :class:`Optimizer`: ``budget``/``ledger``/``cache`` with
        ``backend``, or a ready ``meter`` (``meter_options`` is deprecated likewise).

        Raises:
            ConfigError: the file is not a saved bdpl prompt, has a version this bdpl cannot
                read, or is malformed; or the metering arguments conflict.
        """
        saved = checkpoint.read(path)
        if meter_options is not None:
            warnings.warn(_METER_OPTIONS_DEPRECATED, DeprecationWarning, stacklevel=2)
            if meter is not None:
                raise ConfigError("give either a ready meter or meter_options, not both")
            if backend is None:
                raise ConfigError("no backend: pass a backend, or a meter= built around one")
            options = _meter_options(budget, ledger, cache, meter_options)
            built = Meter(backend, **options)
            try:
                opt = cls._from_checkpoint(path, saved, backend, meter=built, progress=progress)
            except BaseException:
                built.close()
                raise
            opt._owns_meter = True
            return opt
        return cls._from_checkpoint(
            path,
            saved,
            backend,
            meter=meter,
            budget=budget,
            ledger=ledger,
            cache=cache,
            progress=progress,
        )

    @classmethod
    def _from_checkpoint(
        cls, path: str | Path, saved: checkpoint.Checkpoint, backend: Backend | None, **kw: Any
    ) -> Optimizer:
        unknown = sorted(set(saved.settings) - _SETTINGS)
        if unknown:
            raise ConfigError(f"{path}: malformed bdpl prompt file (unknown settings {unknown})")
        # Files from before the paired selection were fitted by best dev score.
        settings = {"selection": "best-dev", **saved.settings}
        opt = cls(backend, task=saved.task, candidates=saved.candidates, **kw, **settings)
        try:
            opt.state = OptimizerState(saved.state, saved.rng)
            opt.best_state = opt._checked(saved.best_state)
        except (KeyError, TypeError, ValueError) as exc:
            opt.close()
            if isinstance(exc, ConfigError):
                raise ConfigError(f"{path}: {exc}") from exc
            raise ConfigError(f"{path}: malformed bdpl prompt file ({exc!r})") from exc
        opt.best_prompt = list(saved.prompt)
        opt.best_score = saved.dev_score
        opt.dev_prompts = [list(p) for p in saved.dev_prompts]
        return opt


_SETTINGS = frozenset(
    {
        "prompt_length",
        "sample_size",
        "learning_rate",
        "estimator",
        "loss",
        "margin",
        "batch_size",
        "epochs",
        "vocab_size",
        "seed",
        "selection",
        "alpha",
        "calibration",
    }
)

_METER_OPTIONS_DEPRECATED = (
    "meter_options is deprecated and will be removed in the next release; pass budget=, "
    "ledger= and cache= directly, and for anything else build the meter yourself: "
    "Optimizer(meter=Meter(backend, price=..., retry=..., max_concurrency=...))"
)


def _meter_options(
    budget: Budget | None,
    ledger: Ledger | str | Path | None,
    cache: QueryCache | str | Path | bool | None,
    meter_options: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The keyword arguments of the ``Meter`` an optimizer builds (``None`` left out)."""
    options = dict(meter_options or {})
    for name, value in (("budget", budget), ("ledger", ledger), ("cache", cache)):
        if value is None:
            continue
        if name in options:
            raise ConfigError(f"{name} is given twice: as an argument and in meter_options")
        options[name] = value
    return options
