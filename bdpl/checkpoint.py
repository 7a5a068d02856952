"""The JSON file a learned prompt is saved in, and how it is read back.

One file holds the learned prompt, its dev score, the candidates, the task, the optimizer's
settings, the distribution (for people reading the file) and the estimator's state (current
and best) with the random generator's, so that a loaded optimizer resumes bit for bit.

Format versions: 2 writes the Adam moments (``m``, ``v``) only for an estimator that keeps
them; 1 wrote them for every estimator. Both are read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bdpl.errors import ConfigError
from bdpl.estimators import EstimatorState
from bdpl.tasks import Task

__all__ = ["FORMAT", "FORMAT_VERSION", "READABLE_VERSIONS", "Checkpoint", "read", "write"]

FORMAT = "bdpl.prompt"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)


@dataclass(frozen=True)
class Checkpoint:
    """What a prompt file holds.

    Attributes:
        prompt: the learned (best) prompt.
        dev_score: its dev score, if it was evaluated.
        candidates: the prompt vocabulary.
        task: the task, if known.
        settings: the optimizer's hyperparameters (``Optimizer.settings()``).
        state: the estimator's current state.
        best_state: the state the prompt came from.
        rng: the numpy ``PCG64`` bit generator's state.
        distribution: the best state's ``L x N`` probabilities (written for readers; not
            read back: the state is the source of truth).
        dev_prompts: the distinct prompts evaluated on dev so far (the selection corrects
            for how many were looked at); absent in files of older versions.
    """

    prompt: list[str]
    dev_score: float | None
    candidates: list[str]
    task: Task | None
    settings: dict[str, Any]
    state: EstimatorState
    best_state: EstimatorState
    rng: dict[str, Any]
    distribution: list[list[float]] | None = None
    dev_prompts: list[list[str]] = field(default_factory=list)


def write(path: str | Path, checkpoint: Checkpoint) -> None:
    """Write ``checkpoint`` as JSON (the current format version)."""
    data = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "prompt": checkpoint.prompt,
        "dev_score": checkpoint.dev_score,
        "candidates": checkpoint.candidates,
        "task": task_to_json(checkpoint.task) if checkpoint.task is not None else None,
        "settings": checkpoint.settings,
        "distribution": checkpoint.distribution,
        "dev_prompts": checkpoint.dev_prompts,
        "best_state": state_to_json(checkpoint.best_state),
        "state": state_to_json(checkpoint.state),
        "rng": checkpoint.rng,
    }
    Path(path).write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")


def read(path: str | Path) -> Checkpoint:
    """Read a prompt file of any readable version.

    Raises:
        ConfigError: the file is not a bdpl prompt file, has a version this bdpl cannot read,
            or is malformed (the message names the file).
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ConfigError(f"{path}: not a bdpl prompt file (not JSON: {exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f"{path}: not a bdpl prompt file")
    if data.get("version") not in READABLE_VERSIONS:
        raise ConfigError(
            f"{path}: a bdpl prompt file of version {data.get('version')!r}; this bdpl reads "
            f"versions {', '.join(map(str, READABLE_VERSIONS))}"
        )
    try:
        settings = data["settings"]
        if not isinstance(settings, dict):
            raise TypeError("settings is not an object")
        return Checkpoint(
            prompt=[str(t) for t in data["prompt"]],
            dev_score=data["dev_score"],
            candidates=[str(c) for c in data["candidates"]],
            task=task_from_json(data["task"]) if data["task"] is not None else None,
            settings=dict(settings),
            state=state_from_json(data["state"]),
            best_state=state_from_json(data["best_state"]),
            rng=dict(data["rng"]),
            distribution=data.get("distribution"),
            dev_prompts=[[str(t) for t in p] for p in data.get("dev_prompts", [])],
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{path}: malformed bdpl prompt file ({exc!r})") from exc


def task_to_json(task: Task) -> dict[str, Any]:
    """A task as plain JSON (the verbalizer as pairs, so its order is kept)."""
    return {
        "name": task.name,
        "template": task.template,
        "verbalizer": [[k, v] for k, v in task.verbalizer.items()],
        "metric": task.metric,
    }


def task_from_json(data: Mapping[str, Any]) -> Task:
    """The task :func:`task_to_json` wrote."""
    return Task(
        name=data["name"],
        template=data["template"],
        verbalizer={str(k): str(v) for k, v in data["verbalizer"]},
        metric=data["metric"],
    )


def state_to_json(state: EstimatorState) -> dict[str, Any]:
    """An estimator state as plain JSON; moments only when the state has them."""
    out: dict[str, Any] = {"params": state.params.tolist(), "step": state.step}
    if state.m is not None:
        out["m"] = state.m.tolist()
    if state.v is not None:
        out["v"] = state.v.tolist()
    return out


def state_from_json(data: Mapping[str, Any]) -> EstimatorState:
    """The state :func:`state_to_json` wrote (or version 1, which always had moments)."""

    def array(key: str) -> np.ndarray[Any, np.dtype[np.float64]] | None:
        value = data.get(key)
        return None if value is None else np.asarray(value, dtype=np.float64)

    params = np.asarray(data["params"], dtype=np.float64)
    m, v = array("m"), array("v")
    for name, moment in (("m", m), ("v", v)):
        if moment is not None and moment.shape != params.shape:
            raise ValueError(f"moment {name} has shape {moment.shape}, params {params.shape}")
    return EstimatorState(params, m, v, int(data["step"]))
