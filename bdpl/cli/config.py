"""The run configuration: every setting of ``bdpl fit``, as one validated pydantic model.

A run folder's ``config.toml`` is this model written out; ``bdpl fit --config FILE`` reads it
back, and every command-line option overrides the key of the same name (dashes become
underscores), so a run can be repeated exactly or varied one setting at a time.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bdpl.errors import ConfigError
from bdpl.tasks import Metric

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = ["RunConfig", "read_config", "write_config"]

CONFIG_FORMAT = 1


class RunConfig(BaseModel):
    """Everything ``bdpl fit`` needs to learn a prompt, and nothing that is a secret.

    The data is a preset task (``task``, its 16-shot ``data_seed`` split) or the user's files
    (``train``/``dev``/``test`` with ``text_a``/``text_b``/``label`` columns and a
    ``template``/``verbalizer``/``metric``); a preset's template, verbalizer and metric may be
    overridden the same way. API keys come from the environment (``OPENAI_API_KEY``), never
    from this file.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: int = CONFIG_FORMAT
    # data
    task: str | None = None
    data_seed: int = Field(default=13, ge=0)
    k: int = Field(default=16, ge=1)
    train: str | None = None
    dev: str | None = None
    test: str | None = None
    text_a: str = "text"
    text_b: str | None = None
    label: str = "label"
    template: str | None = None
    verbalizer: dict[str, str] | None = None
    metric: Metric | None = None
    test_rows: int | None = Field(default=None, ge=1)
    # backend
    backend: str = "fake"
    base_url: str | None = None
    price_input: float | None = Field(default=None, ge=0)
    price_output: float | None = Field(default=None, ge=0)
    # The local backends only (local, hf-causal, hf-mlm): the most tokens a query's inputs
    # keep, longer texts cut at the end; unset, each backend's default (hf-mlm 400, the
    # causal LMs none). Long documents (HyperPartisan) need it: a batch is as long as its
    # longest text.
    max_input_tokens: int | None = Field(default=None, ge=1)
    # optimizer
    prompt_length: int = Field(default=3, ge=1)
    sample_size: int = Field(default=8, ge=2)
    batch_size: int = Field(default=16, ge=1)
    epochs: int = Field(default=10, ge=1)
    learning_rate: float | None = Field(default=None, gt=0)
    estimator: Literal["loo", "loo-rank", "reference"] = "loo"
    loss: Literal["ce", "hinge"] = "ce"
    vocab_size: int = Field(default=200, ge=2)
    # "train": PMI n-grams of the training texts, filled up with relaxed PMI and English
    # words; "pool": the same with the preset's pool split as unlabelled text; "english":
    # the most frequent English words alone. See vocabulary_of() in bdpl/cli/runs.py.
    vocab_source: Literal["train", "pool", "english"] = "train"
    seed: int = Field(default=0, ge=0)
    selection: Literal["paired", "above-chance", "best-dev"] = "above-chance"
    calibration: Literal["none", "content-free", "batch"] = "none"
    alpha: float = Field(default=0.05, gt=0, lt=1)
    # money
    max_dollars: float | None = Field(default=None, ge=0)
    max_queries: int | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, ge=0)

    @field_validator("verbalizer")
    @classmethod
    def _words(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None and (len(value) < 2 or not all(value.values())):
            raise ValueError("needs at least two labels, each with a non-empty word")
        return value

    @classmethod
    def build(cls, values: Mapping[str, Any]) -> RunConfig:
        """Validate ``values``; a problem is a :class:`ConfigError` naming the key."""
        try:
            return cls.model_validate(dict(values))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "config"
            raise ConfigError(f"{where}: {first['msg']}") from None

    def merged(self, overrides: Mapping[str, Any]) -> RunConfig:
        """This configuration with ``overrides`` (``None`` values ignored) applied."""
        values = self.model_dump()
        values.update({k: v for k, v in overrides.items() if v is not None})
        return RunConfig.build(values)

    def to_toml(self) -> dict[str, Any]:
        """The non-empty settings, as TOML can hold them."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


def read_toml(file: Path, what: str) -> dict[str, Any]:
    """The TOML document in ``file``; ``what`` names the file in errors.

    Raises:
        ConfigError: the file is missing or is not readable TOML.
    """
    try:
        doc: dict[str, Any] = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{what} {file} not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{what} {file} is not readable TOML: {exc}") from None
    return doc


def read_config(path: str | Path) -> RunConfig:
    """Read a ``config.toml`` written by :func:`write_config` (or by hand).

    Raises:
        ConfigError: the file is missing, not TOML, has an unknown key or a bad value, or
            comes from an incompatible version.
    """
    file = Path(path)
    data = read_toml(file, "config file")
    if data.get("format", CONFIG_FORMAT) != CONFIG_FORMAT:
        raise ConfigError(
            f"config file {file} has format {data.get('format')!r}; this bdpl reads format "
            f"{CONFIG_FORMAT} (written by another version: rerun with this version's options)"
        )
    try:
        return RunConfig.build(data)
    except ConfigError as exc:
        raise ConfigError(f"{file}: {exc}") from None


def write_config(config: RunConfig, path: str | Path) -> None:
    """Write ``config`` as TOML that :func:`read_config` reads back unchanged."""
    import tomli_w

    Path(path).write_text(tomli_w.dumps(config.to_toml()), encoding="utf-8")
