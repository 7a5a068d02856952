"""The BDPL optimizer: ask/tell over one categorical distribution per prompt position.

>>> from bdpl.backends.fake import FakeBackend, Planted
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

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from bdpl.backends.base import Backend, capabilities_of
from bdpl.calibration import Calibration, calibrated_scores, check_calibration, extra_queries
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
from bdpl.metering import Budget, CostEstimate, Ledger, Meter, Price, QueryCache
from bdpl.tasks import Dataset, Example, Task
from bdpl.types import LabelScores, Query

FORMAT_VERSION = 1
LossName = Literal["ce", "hinge"]
# Log-probs are floored here before the loss, so a backend's -inf (or a tiny value) gives a
# large but finite loss; torch's BCE clamps log at -100 for the same reason.
_MIN_LOGPROB = -1e4


class OptimizerState(NamedTuple):
    """Everything that changes during a fit (save it to checkpoint, restore it to resume).

    Attributes:
        estimator: parameters and optimizer moments.
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
    """

    prompt: list[str]
    indices: list[int]
    dev_score: float | None
    history: list[EpochRecord] = field(default_factory=list)
    stop_reason: str = "epochs"
    queries: int = 0
    steps: int = 0


def _positive_int(name: str, value: object, least: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
        raise ConfigError(f"{name} must be an integer >= {least}, got {value!r}")
    return int(value)


def _check_candidates(candidates: Sequence[str]) -> list[str]:
    if isinstance(candidates, str):
        raise ConfigError("candidates must be a sequence of strings, not one string")
    cands = [str(c).strip() for c in candidates]
    if len(cands) < 2 or any(not c for c in cands) or len(set(cands)) != len(cands):
        raise ConfigError("candidates must hold at least 2 distinct non-empty strings")
    return cands


def _task_to_json(task: Task) -> dict[str, Any]:
    return {
        "name": task.name,
        "template": task.template,
        "verbalizer": [[k, v] for k, v in task.verbalizer.items()],
        "metric": task.metric,
    }


def _task_from_json(data: Mapping[str, Any]) -> Task:
    return Task(
        name=data["name"],
        template=data["template"],
        verbalizer={str(k): str(v) for k, v in data["verbalizer"]},
        metric=data["metric"],
    )


def losses_from_scores(
    logprobs: FloatArray, labels: IntArray, *, loss: LossName = "ce", margin: float = 1.0
) -> FloatArray:
    """Per-example losses from label log-probs (``... x K``) and true classes (``...``).

    ``"ce"``: cross-entropy after renormalising over the labels (the reference's
    ``CrossEntropyLoss`` on the label logits). ``"hinge"``: ``max(0, margin - (s_y - max_k s_k))``
    over the other labels ``k``, the usual multi-class hinge. (The reference's ``MarginLoss``
    with ``target=False`` has this difference the other way round, which rewards wrong
    answers; its runs used cross-entropy.)
    """
    lp = np.maximum(np.nan_to_num(logprobs, nan=_MIN_LOGPROB, neginf=_MIN_LOGPROB), _MIN_LOGPROB)
    true = np.take_along_axis(lp, labels[..., None], axis=-1)[..., 0]
    if loss == "ce":
        m = lp.max(axis=-1)
        lse = m + np.log(np.exp(lp - m[..., None]).sum(axis=-1))
        return np.asarray(lse - true, dtype=np.float64)
    others = lp.copy()
    np.put_along_axis(others, labels[..., None], -np.inf, axis=-1)
    return np.asarray(np.maximum(0.0, margin - (true - others.max(axis=-1))), dtype=np.float64)


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

    Args:
        backend: the model, any :class:`~bdpl.backends.base.Backend`.
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
            otherwise one is built as ``Meter(backend, budget=..., ledger=..., cache=...,
            **meter_options)``.
        meter_options: further keyword arguments for that ``Meter`` (``retry``, ``price``,
            ``max_concurrency``).
        progress: show a tqdm progress bar during :meth:`fit`.
        calibration: remove the prompt's label prior from the label scores, in training and
            in prediction alike (saved with the prompt): ``None`` (default, the paper's),
            ``"content-free"`` (contextual calibration; a few extra queries per prompt) or
            ``"batch"`` (batch calibration; no extra queries). See :mod:`bdpl.calibration`.

    Raises:
        ConfigError: on an invalid setting (the message names it).
    """

    def __init__(
        self,
        backend: Backend,
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
        budget: Budget | None = None,
        ledger: Ledger | str | Path | None = None,
        cache: QueryCache | str | Path | bool | None = None,
        meter: Meter | None = None,
        meter_options: Mapping[str, Any] | None = None,
        progress: bool = False,
        calibration: Calibration | None = None,
    ) -> None:
        self.calibration = check_calibration(calibration)
        self.prompt_length = _positive_int("prompt_length", prompt_length)
        self.sample_size = _positive_int("sample_size", sample_size, 2)
        self.batch_size = _positive_int("batch_size", batch_size)
        self.epochs = _positive_int("epochs", epochs)
        self.vocab_size = _positive_int("vocab_size", vocab_size, 2)
        self.seed = _positive_int("seed", seed, 0)
        if estimator not in ESTIMATORS:
            raise ConfigError(f"unknown estimator {estimator!r}; use one of {sorted(ESTIMATORS)}")
        if learning_rate is not None and (
            isinstance(learning_rate, bool) or not isinstance(learning_rate, int | float)
        ):
            raise ConfigError(f"learning_rate must be a number, got {learning_rate!r}")
        self.estimator: Estimator = get_estimator(estimator, learning_rate=learning_rate)
        if loss not in ("ce", "hinge"):
            raise ConfigError(f"loss must be 'ce' or 'hinge', got {loss!r}")
        if not (isinstance(margin, int | float) and math.isfinite(margin) and margin > 0):
            raise ConfigError(f"margin must be a positive number, got {margin!r}")
        options = dict(meter_options or {})
        for name, value in (("budget", budget), ("ledger", ledger), ("cache", cache)):
            if value is None:
                continue
            if name in options:
                raise ConfigError(f"{name} is given twice: as an argument and in meter_options")
            options[name] = value
        if meter is not None and options:
            raise ConfigError(
                "give either a ready meter or budget/ledger/cache/meter_options, not both"
            )
        self.loss: LossName = loss
        self.margin = float(margin)
        self.backend = backend
        self.task = task
        self.progress = progress
        self._owns_meter = meter is None
        self.meter = meter if meter is not None else Meter(backend, **options)
        self.separator = capabilities_of(backend).pair_separator
        self.queries = 0
        self.best_prompt: list[str] | None = None
        self.best_state: EstimatorState | None = None
        self.best_score: float | None = None
        self.candidates: list[str] | None = None
        self._rng = np.random.Generator(np.random.PCG64(self.seed))
        self._estimator_state: EstimatorState | None = None
        if candidates is not None:
            self._set_candidates(candidates)

    def close(self) -> None:
        """Close the metering layer if this optimizer built it (a given meter is left open)."""
        close = getattr(self.meter, "close", None)
        if self._owns_meter and callable(close):
            close()

    def __enter__(self) -> Optimizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- state
    def _set_candidates(self, candidates: Sequence[str]) -> None:
        self.candidates = _check_candidates(candidates)
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
        shape = self._need_state().params.shape
        if value.estimator.params.shape != shape:
            raise ConfigError(f"state has shape {value.estimator.params.shape}, expected {shape}")
        self._estimator_state = value.estimator.copy()
        self._rng.bit_generator.state = dict(value.rng)

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
        return self.tokens(indices)

    def tokens(self, indices: Sequence[int] | IntArray) -> list[str]:
        """Candidate strings for candidate indices."""
        if self.candidates is None:
            raise ConfigError("no candidates yet: pass candidates= or call fit() first")
        return [self.candidates[int(i)] for i in indices]

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
        lp = self._score(task, [self.tokens(u) for u in unique], examples)
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
        from bdpl.metrics import compute_metric

        task = self._task_for(dataset)
        y_true = [task.label_index(e) for e in dataset.examples]
        return compute_metric(
            task.metric, y_true, self.predict(dataset, prompt), num_classes=len(task.labels)
        )

    # ------------------------------------------------------------------- fit
    def max_queries(self, n_train: int, n_dev: int = 0) -> int:
        """Worst-case queries of :meth:`fit` (no prompt de-duplication, no cache hits).

        Content-free calibration adds its inputs once per sampled prompt per step and once
        per dev evaluation.
        """
        n_train = _positive_int("n_train", n_train, 0)
        n_dev = _positive_int("n_dev", n_dev, 0)
        extra = extra_queries(self.calibration)
        steps = math.ceil(n_train / self.batch_size)
        per_epoch = self.sample_size * (n_train + extra * steps) + (n_dev + extra if n_dev else 0)
        return self.epochs * per_epoch

    def prepare(self, train: Dataset) -> Task:
        """Fix the task and the prompt vocabulary from ``train``, as :meth:`fit` does first.

        The task is ``train.task`` unless one was given; the candidates are built with
        :func:`bdpl.vocab.build_vocabulary` from the training texts unless given. Calling it
        before :meth:`fit` lets :meth:`estimate_cost` see the real vocabulary.

        Raises:
            ConfigError: the training texts yield fewer than 2 candidates.
        """
        task = self.task = self._task_for(train)
        if self.candidates is None:
            from bdpl.vocab import build_vocabulary

            texts = [t for e in train.examples for t in (e.text_a, e.text_b) if t]
            vocabulary = build_vocabulary(texts, size=self.vocab_size)
            if len(vocabulary) < 2:
                raise ConfigError(
                    f"the training texts yield {len(vocabulary)} prompt candidates (need 2 or "
                    "more); pass candidates= explicitly"
                )
            self._set_candidates(vocabulary)
        return task

    def estimate_cost(
        self, train: Dataset, dev: Dataset | None = None, *, price: Price | None = None
    ) -> CostEstimate:
        """Worst-case queries, requests, tokens and dollars of ``fit(train, dev)``.

        No model is called; see :func:`bdpl.metering.estimate_fit_cost`.
        """
        from bdpl.metering import estimate_fit_cost

        self.prepare(train)
        return estimate_fit_cost(self, train, dev, price=price)

    def fit(self, train: Dataset, dev: Dataset | None = None) -> FitResult:
        """Learn a prompt on ``train``, evaluating on ``dev`` after each epoch.

        Stops after ``epochs``, or cleanly when the metering layer's budget would be passed
        (``stop_reason="budget: <limit>"``), returning the best prompt found so far. The
        optimizer keeps its distributions, so calling ``fit`` again continues training.

        Raises:
            ConfigError: an empty training or dev set, or a task/candidates problem.
        """
        if len(train) == 0:
            raise ConfigError("the training set is empty")
        if dev is not None and len(dev) == 0:
            raise ConfigError("the dev set is empty (pass dev=None to train without one)")
        if dev is not None and len(dev) < 2 and self.calibration == "batch":
            raise ConfigError("batch calibration needs a dev set of at least 2 examples")
        task = self.prepare(train)
        examples = list(train.examples)
        # Every label is checked before the first paid query, not when its batch comes up.
        Dataset(task, train.examples).label_indices()
        if dev is not None:
            Dataset(task, dev.examples).label_indices()
        n_steps = math.ceil(len(examples) / self.batch_size)
        history: list[EpochRecord] = []
        stop_reason = "epochs"
        steps = 0
        start = self.queries
        bar = self._progress_bar(self.epochs * n_steps)
        try:
            for epoch in range(self.epochs):
                order = self._rng.permutation(len(examples))
                losses: list[float] = []
                record_score: float | None = None
                try:
                    for s in range(n_steps):
                        batch = [
                            examples[i]
                            for i in order[s * self.batch_size : (s + 1) * self.batch_size]
                        ]
                        losses.append(self.step(batch, task))
                        steps += 1
                        if bar is not None:
                            bar.update(1)
                            bar.set_postfix(loss=f"{losses[-1]:.4f}")
                    if dev is not None:
                        record_score = self.evaluate(dev, self.recommend())
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
        finally:
            if bar is not None:
                bar.close()
        if dev is None or self.best_state is None:
            self._keep_best(None)
        assert self.best_prompt is not None and self.best_state is not None
        return FitResult(
            prompt=list(self.best_prompt),
            indices=[int(i) for i in np.argmax(self.estimator.probs(self.best_state), axis=1)],
            dev_score=self.best_score,
            history=history,
            stop_reason=stop_reason,
            queries=self.queries - start,
            steps=steps,
        )

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
            "calibration": self.calibration,
        }

    def save(self, path: str | Path) -> None:
        """Write the learned prompt, distribution, task, settings and state as JSON."""
        state = self._need_state()
        best = self.best_state or state
        data = {
            "format": "bdpl.prompt",
            "version": FORMAT_VERSION,
            "prompt": self.best_prompt or self.recommend(),
            "dev_score": self.best_score,
            "candidates": self.candidates,
            "task": _task_to_json(self.task) if self.task is not None else None,
            "settings": self.settings(),
            "distribution": self.estimator.probs(best).tolist(),
            "best_state": _state_to_json(best),
            "state": _state_to_json(state),
            "rng": self._rng.bit_generator.state,
        }
        Path(path).write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")

    @classmethod
    def load(
        cls,
        path: str | Path,
        backend: Backend,
        *,
        meter: Meter | None = None,
        meter_options: Mapping[str, Any] | None = None,
        progress: bool = False,
    ) -> Optimizer:
        """Rebuild a saved optimizer (prompt, task, settings and state) around ``backend``.

        Raises:
            ConfigError: the file is not a saved bdpl prompt, or has another format version.
        """
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            if data.get("format") != "bdpl.prompt" or data.get("version") != FORMAT_VERSION:
                raise ConfigError(f"{path}: not a bdpl prompt file of version {FORMAT_VERSION}")
            opt = cls(
                backend,
                task=_task_from_json(data["task"]) if data["task"] is not None else None,
                candidates=data["candidates"],
                meter=meter,
                meter_options=meter_options,
                progress=progress,
                **data["settings"],
            )
            opt.state = OptimizerState(_state_from_json(data["state"]), data["rng"])
            opt.best_state = _state_from_json(data["best_state"])
            opt.best_prompt = [str(t) for t in data["prompt"]]
            opt.best_score = data["dev_score"]
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"{path}: malformed bdpl prompt file ({exc!r})") from exc
        return opt


def _state_to_json(state: EstimatorState) -> dict[str, Any]:
    return {
        "params": state.params.tolist(),
        "m": state.m.tolist(),
        "v": state.v.tolist(),
        "step": state.step,
    }


def _state_from_json(data: Mapping[str, Any]) -> EstimatorState:
    return EstimatorState(
        np.asarray(data["params"], dtype=np.float64),
        np.asarray(data["m"], dtype=np.float64),
        np.asarray(data["v"], dtype=np.float64),
        int(data["step"]),
    )
