"""``max_input_tokens`` (``--max-input-tokens``, a config or sweep key) reaches the local
backends, cuts what they read, and is refused where no backend could honour it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bdpl.cli.backends import make_backend
from bdpl.cli.config import RunConfig, write_config
from bdpl.cli.evaluate import evaluate_prompt
from bdpl.cli.runs import build_meter, fit_run
from bdpl.errors import ConfigError
from bdpl.types import Query
from tests.backends.tiny_models import tiny_causal_lm, tiny_mlm, tiny_tokenizer


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny causal LM and a tiny masked LM saved as folders, as a user's models are."""
    tok = tiny_tokenizer()
    out = {}
    for kind, model in (("hf-causal", tiny_causal_lm(tok)), ("hf-mlm", tiny_mlm(tok))):
        folder = tmp_path_factory.mktemp(kind)
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
        out[kind] = folder
    return out


def _review(text: str) -> Query:
    before = f"Review: {text} It was"
    return Query(before, ".", (" good", " bad"), ((8, 8 + len(text)),))


@pytest.mark.parametrize("kind", ["hf-causal", "hf-mlm"])
def test_the_cut_keeps_the_start_of_a_long_input_and_drops_its_end(
    saved: dict[str, Path], kind: str
) -> None:
    long = " ".join(["the film was good"] * 12)
    longer = long + " but the end was awful dull and boring"
    cut = make_backend(f"{kind}:{saved[kind]}", max_input_tokens=8)
    whole = make_backend(f"{kind}:{saved[kind]}", max_input_tokens=1000)
    assert cut.score([_review(long)]) == cut.score([_review(longer)])
    assert whole.score([_review(long)]) != whole.score([_review(longer)])


def test_unset_keeps_each_backends_default_and_the_identity_names_the_cut(
    saved: dict[str, Path],
) -> None:
    causal = f"hf-causal:{saved['hf-causal']}"
    mlm = f"hf-mlm:{saved['hf-mlm']}"
    assert make_backend(causal).identity.endswith(":None:float32")
    assert make_backend(mlm).identity.endswith(":first:400:float32")  # the BDPL reference's
    assert make_backend(causal, max_input_tokens=64).identity.endswith(":64:float32")
    assert make_backend(mlm, max_input_tokens=64).identity.endswith(":first:64:float32")


def test_a_run_config_carries_it_to_the_backend(saved: dict[str, Path]) -> None:
    config = RunConfig.build({"backend": f"hf-causal:{saved['hf-causal']}", "max_input_tokens": 32})
    with build_meter(config, ledger=None, cache="off") as meter:
        assert meter.backend.identity.endswith(":32:float32")
    with pytest.raises(ConfigError, match="max_input_tokens"):
        RunConfig.build({"max_input_tokens": 0})


@pytest.mark.parametrize("spec", ["fake", "openai:my-model", "openai-chat:my-model"])
def test_backends_that_cannot_cut_refuse_it(spec: str, monkeypatch: Any) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-max-input-tokens-test")
    with pytest.raises(ConfigError, match="applies to the local backends only"):
        make_backend(spec, max_input_tokens=400)


def test_eval_moves_the_cut_to_another_local_backend_and_leaves_it_for_the_fake(
    saved: dict[str, Path], tmp_path: Path
) -> None:
    run = tmp_path / "run"
    settings = {"task": "sst2", "epochs": 1, "sample_size": 2, "test_rows": 4}
    fit_run(RunConfig.build(settings), run, cache="off")
    # As if the run had learned its prompt on a local model with its inputs cut.
    local = f"hf-causal:{saved['hf-causal']}"
    write_config(RunConfig.build({**settings, "backend": local, "max_input_tokens": 64}),
                 run / "config.toml")  # fmt: skip

    def backend_of(backend: str | None) -> str:
        done = evaluate_prompt(run, backend=backend, base_url=None, split="dev", data_file=None,
                               text_a="text", text_b=None, label="label", rows=2,
                               cache="off")  # fmt: skip
        return str(done["backend"])

    assert backend_of(None).endswith(":64:float32")
    assert backend_of(local).endswith(":64:float32")
    assert backend_of("fake").startswith("fake")
