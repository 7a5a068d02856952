"""Helpers shared by the in-process Hugging Face backends (masked LM and causal LM).

Nothing here is public API. torch and transformers are imported inside functions so that
importing this module stays cheap.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from bdpl._validate import positive_int
from bdpl.backends.base import Capabilities
from bdpl.errors import ConfigError, UnsupportedQueryError
from bdpl.types import LabelScores, Query, Usage

if TYPE_CHECKING:
    import torch

# Weight files, by the suffixes transformers and llama.cpp write them with.
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".h5", ".msgpack")
_CHUNK = 1 << 22

_hash_lock = threading.Lock()
_file_hashes: dict[tuple[str, int, int], str] = {}


def check_sizes(batch_size: int, max_batch_size: int | None, max_input_tokens: int | None) -> None:
    """Check the batching and truncation settings both local backends take.

    Raises:
        ConfigError: a size that is not an integer >= 1.
    """
    positive_int("batch_size", batch_size)
    if max_batch_size is not None:
        positive_int("max_batch_size", max_batch_size)
    if max_input_tokens is not None:
        positive_int("max_input_tokens", max_input_tokens)


def resolve_device(device: str) -> torch.device:
    """``"auto"`` picks CUDA, then Apple MPS, then the CPU; anything else is passed to torch.

    Raises:
        ConfigError: torch does not know the device.
    """
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"unknown device {device!r}") from exc


_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "float64": "float64",
    "fp64": "float64",
    "double": "float64",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
}


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """The compute dtype: as given, else bfloat16 on CUDA, float16 on MPS, float32 on the CPU.

    Half precision is the default only on accelerators: on a CPU it is slower and less exact.

    Raises:
        ConfigError: an unknown dtype name.
    """
    import torch

    if dtype is None:
        if device.type == "cuda":
            return torch.bfloat16
        if device.type == "mps":
            return torch.float16
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    name = _DTYPES.get(str(dtype).lower().removeprefix("torch."))
    if name is None:
        raise ConfigError(f"unknown dtype {dtype!r}; use one of {sorted(_DTYPES)}")
    result: torch.dtype = getattr(torch, name)
    return result


def file_sha256(path: Path) -> str:
    """sha256 of a file, streamed; remembered per (path, mtime, size) for this process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    with _hash_lock:
        cached = _file_hashes.get(key)
    if cached is not None:
        return cached
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    digest = h.hexdigest()
    with _hash_lock:
        _file_hashes[key] = digest
    return digest


def weight_files(folder: Path) -> list[Path]:
    """The weight files directly in ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES))


def files_sha256(paths: Sequence[Path]) -> str:
    """One sha256 over several files (their names and hashes), so shards count in order."""
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        h.update(b"\0")
        h.update(file_sha256(p).encode())
        h.update(b"\n")
    return h.hexdigest()


def tensors_sha256(model: Any) -> str:
    """sha256 of a model's parameters and buffers as they are in memory.

    Used for a model object passed in, whose weights may differ from any file on disk.
    """
    import torch

    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}\n".encode())
        # View as bytes so that bfloat16 (which numpy lacks) hashes too.
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def hub_weight_files(name: str) -> list[Path]:
    """Weight files of a Hugging Face hub model already in the local hub cache (no download)."""
    try:
        from huggingface_hub import scan_cache_dir
    except ImportError:  # pragma: no cover - huggingface_hub ships with transformers
        return []
    try:
        info = scan_cache_dir()
    except Exception:  # an absent or unreadable hub cache means "not found"
        return []
    for repo in info.repos:
        if repo.repo_id == name and repo.repo_type == "model":
            revisions = sorted(repo.revisions, key=lambda r: r.last_modified, reverse=True)
            for rev in revisions:
                files = sorted(
                    f.file_path for f in rev.files if f.file_name.endswith(_WEIGHT_SUFFIXES)
                )
                if files:
                    return files
    return []


def weights_sha256(source: str | Path, model: Any, gguf_file: str | None = None) -> str:
    """A hash that changes whenever the model's weights do.

    Hashes the weight files when they can be found (a local folder, a GGUF file, the hub
    cache); otherwise the loaded tensors.
    """
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        if gguf_file is not None:
            return files_sha256([path / gguf_file])
        if path.is_file():
            return files_sha256([path])
        if path.is_dir():
            files = weight_files(path)
            if files:
                return files_sha256(files)
        else:
            files = hub_weight_files(str(source))
            if files:
                return files_sha256(files)
    return tensors_sha256(model)


def model_name(source: str | Path | None, model: Any) -> str:
    """A readable name for the identity: the name or path given, else the model's own."""
    if source is not None:
        return str(source)
    name = getattr(getattr(model, "config", None), "name_or_path", "") or type(model).__name__
    return str(name)


def tokenizer_sha256(tokenizer: Any) -> str:
    """A hash that changes whenever the tokenizer would encode some text differently.

    A tokenizer decides the label ids and where inputs are cut, so it is part of a backend's
    identity. Hashed: the class name, the Rust tokenizer's full definition (vocabulary,
    merges, normalizer, pre-tokenizer, post-processor, added tokens) with keys sorted, the
    special tokens and ``model_max_length``. The padding and truncation settings held by the
    Rust tokenizer are left out: they change as the tokenizer is used, and no backend relies
    on them.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        definition: Any = json.loads(backend.to_str())
        definition.pop("padding", None)
        definition.pop("truncation", None)
    else:  # pragma: no cover - the backends accept only fast tokenizers
        definition = sorted(tokenizer.get_vocab().items())
    special = getattr(tokenizer, "special_tokens_map", {})
    data = {
        "class": type(tokenizer).__name__,
        "definition": definition,
        "special": {k: str(v) for k, v in special.items()},
        "model_max_length": str(getattr(tokenizer, "model_max_length", None)),
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def special_affixes(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after one sequence.

    Found by encoding a probe with and without special tokens, so it works for any
    tokenizer's post-processor (``<s> ... </s>`` for RoBERTa, nothing for SmolLM2).
    """
    probe = "hello"
    plain = list(tokenizer(probe, add_special_tokens=False)["input_ids"])
    full = list(tokenizer(probe, add_special_tokens=True)["input_ids"])
    n = len(plain)
    for i in range(len(full) - n + 1):
        if full[i : i + n] == plain:
            return full[:i], full[i + n :]
    raise ConfigError("cannot tell which special tokens the tokenizer adds")


def check_fast(tokenizer: Any) -> None:
    """Truncation needs character offsets, which only fast (Rust) tokenizers give."""
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(
            f"{type(tokenizer).__name__} is not a fast tokenizer; pass a PreTrainedTokenizerFast"
        )


def model_max_length(tokenizer: Any, config: Any) -> int | None:
    """Most tokens one sequence may have: the tokenizer's limit if set, else the config's."""
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < 1_000_000:
        return limit
    positions = getattr(config, "max_position_embeddings", None)
    if not isinstance(positions, int):
        return None
    # RoBERTa-style models number positions from padding_idx + 1, so two slots are unusable.
    if getattr(config, "model_type", "") in {"roberta", "xlm-roberta", "camembert", "longformer"}:
        positions -= int(getattr(config, "pad_token_id", 1) or 1) + 1
    return positions


def truncate_inputs(
    tokenizer: Any,
    text: str,
    spans: Sequence[tuple[int, int]],
    *,
    per_span: int | None,
    excess: int = 0,
) -> str:
    """Shorten the input spans of ``text`` by tokens, keeping everything else.

    Each span is cut to at most ``per_span`` tokens (from its end), then ``excess`` more tokens
    are taken from the longest spans, one at a time (like ``longest_first`` truncation).

    Args:
        tokenizer: a fast tokenizer (offsets are used to cut at token boundaries).
        text: the text before the slot.
        spans: ``(start, end)`` character spans of ``text`` that hold input text.
        per_span: the most tokens an input may keep; ``None`` for no cap.
        excess: tokens to remove on top of the cap.

    Returns:
        The text with the inputs shortened; the text itself when nothing needs cutting.
    """
    if not spans or (per_span is None and excess <= 0):
        return text
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)[
        "offset_mapping"
    ]
    ends: list[list[int]] = [[e for s, e in offsets if a <= s < b] for a, b in spans]
    keep = [len(e) if per_span is None else min(len(e), per_span) for e in ends]
    for _ in range(max(0, excess)):
        i = max(range(len(keep)), key=lambda j: (keep[j], j))
        if keep[i] == 0:
            break
        keep[i] -= 1
    # Cut from the last span backwards so that earlier offsets stay valid.
    for (a, b), e, k in sorted(zip(spans, ends, keep, strict=True), reverse=True):
        if k < len(e):
            cut = e[k - 1] if k > 0 else a
            text = text[:cut] + text[b:]
    return text


def fit_to_limit(
    tokenizer: Any,
    text: str,
    spans: Sequence[tuple[int, int]],
    *,
    per_span: int | None,
    limit: int | None,
    count: Callable[[str], int],
) -> str:
    """Truncate inputs to ``per_span`` tokens, then further until ``count(text) <= limit``.

    Raises:
        UnsupportedQueryError: the text is too long even with every input removed (the
            prompt and template alone pass the model's limit).
    """
    excess = 0
    # Retokenising a cut text can differ by a token at the cut, hence a few rounds.
    for _ in range(4):
        cut = truncate_inputs(tokenizer, text, spans, per_span=per_span, excess=excess)
        if limit is None:
            return cut
        over = count(cut) - limit
        if over <= 0:
            return cut
        excess += over
    raise UnsupportedQueryError(
        f"the query is {count(cut)} tokens even with its inputs shortened; the model takes {limit}"
    )


class Before(NamedTuple):
    """A query's text before the slot as it goes to the model: its token ids and its text."""

    ids: list[int]
    text: str


def encode_befores(
    tokenizer: Any,
    queries: Sequence[Query],
    extras: Sequence[int],
    *,
    max_input_tokens: int | None,
    limit: int | None,
    encoding: Any = None,
) -> list[Before]:
    """Token ids (and text) of each query's text before the slot, its inputs cut to fit.

    All texts are tokenised in one batched call; only the rare query that is too long is
    tokenised again to cut it.

    Args:
        tokenizer: a fast tokenizer.
        queries: the queries (``before`` and ``input_spans`` are used).
        extras: per query, the tokens its sequence has besides ``before`` (special tokens,
            masks, label, after).
        max_input_tokens: the most tokens all inputs of a query keep together, split evenly
            among them (the BDPL reference: 400 for one input, 200 each for a pair); ``None``
            for no cap.
        limit: the most tokens a whole sequence may have (``None``: no limit).
        encoding: the tokenizer's output for the queries' ``before`` texts (ids and offsets,
            no special tokens), when the caller has it already.

    Raises:
        UnsupportedQueryError: a sequence cannot fit even with its inputs removed.
    """
    texts = [q.before for q in queries]
    enc = encoding
    if enc is None:
        enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    out: list[Before] = []
    for q, ids, offsets, extra in zip(
        queries, enc["input_ids"], enc["offset_mapping"], extras, strict=True
    ):
        spans = q.input_spans
        per_span = max_input_tokens // len(spans) if spans and max_input_tokens else None
        fits = limit is None or len(ids) + extra <= limit
        if fits and per_span is not None and len(ids) > per_span:
            starts = [s for s, _ in offsets]
            fits = all(sum(a <= s < b for s in starts) <= per_span for a, b in spans)
        if fits:
            out.append(Before(list(ids), q.before))
            continue
        if not spans and limit is not None:
            raise UnsupportedQueryError(
                f"the query is {len(ids) + extra} tokens and has no input text to shorten; "
                f"the model takes {limit}"
            )

        def count(t: str, extra: int = extra) -> int:
            return len(tokenizer(t, add_special_tokens=False)["input_ids"]) + extra

        cut = fit_to_limit(tokenizer, q.before, spans, per_span=per_span, limit=limit, count=count)
        out.append(Before(list(tokenizer(cut, add_special_tokens=False)["input_ids"]), cut))
    return out


def load_pretrained(auto_class: Any, source: str | Path, dtype: torch.dtype, **kwargs: Any) -> Any:
    """``auto_class.from_pretrained`` in ``dtype``, translating load failures.

    Raises:
        ModelNotFoundError: the model cannot be found or read.
    """
    import transformers

    from bdpl.errors import ModelNotFoundError

    # transformers 4.56 renamed torch_dtype to dtype and warns on the old name.
    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    key = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
    try:
        return auto_class.from_pretrained(str(source), **{key: dtype}, **kwargs)
    except OSError as exc:
        raise ModelNotFoundError(f"cannot load model {str(source)!r}: {exc}") from exc


def load_model_and_tokenizer(
    auto_class: Any,
    model: Any,
    source: str | Path | None,
    tokenizer: Any,
    dtype: torch.dtype,
    **kwargs: Any,
) -> tuple[Any, Any]:
    """The model and its fast tokenizer, loaded from ``source`` unless given as objects.

    Args:
        auto_class: the ``transformers`` auto class to load the model with.
        model: the model object; used as is when ``source`` is ``None``.
        source: a hub name, folder or file to load from, or ``None`` for ``model`` itself.
        tokenizer: a tokenizer, or ``None`` to load it from ``source``.
        dtype: the dtype to load the weights in.
        **kwargs: passed to both ``from_pretrained`` calls (e.g. ``gguf_file``).

    Raises:
        ConfigError: a model object without a tokenizer, or a slow tokenizer.
        ModelNotFoundError: the model cannot be loaded.
    """
    loaded: Any = model
    if source is not None:
        from transformers import AutoTokenizer

        loaded = load_pretrained(auto_class, source, dtype, **kwargs)
        if tokenizer is None:
            tokenizer = AutoTokenizer.from_pretrained(str(source), **kwargs)
    elif tokenizer is None:
        raise ConfigError("pass the tokenizer along with a model object")
    check_fast(tokenizer)
    return loaded, tokenizer


def label_token_ids(tokenizer: Any, labels: Sequence[str]) -> tuple[tuple[int, ...], ...]:
    """Each label's token ids on its own (no special tokens).

    Raises:
        ConfigError: a label is empty or has a token the tokenizer cannot represent (its
            unknown token).
    """
    unk = tokenizer.unk_token_id
    ids: list[tuple[int, ...]] = []
    for label in labels:
        toks = tuple(tokenizer(label, add_special_tokens=False)["input_ids"])
        if not toks:
            raise ConfigError(f"label {label!r} has no tokens")
        if unk is not None and unk in toks:
            raise ConfigError(
                f"label {label!r} contains a token the tokenizer cannot represent "
                f"(it becomes {tokenizer.unk_token!r}); choose another label word"
            )
        ids.append(toks)
    return tuple(ids)


def length_batches(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """Indices grouped into batches of similar length (longest first), so padding is small.

    Sorting is stable, so the same input always makes the same batches (determinism).
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def pad(
    rows: Sequence[Sequence[int]], pad_id: int, *, left: bool, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad token rows to one tensor; returns ``(input_ids, attention_mask)``."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if not r:
            continue
        if left:
            ids[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
            mask[i, width - len(r) :] = 1
        else:
            ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
            mask[i, : len(r)] = 1
    return ids.to(device), mask.to(device)


def usage_per_query(
    n_queries: int, owners: Sequence[int], lengths: Sequence[int], batches: Sequence[Sequence[int]]
) -> list[Usage]:
    """Each query's share of the work: the tokens of its rows, and the forward passes.

    A forward pass serves a whole batch; it is counted once, on the query owning the batch's
    first row, so that the shares add up to the number of passes.
    """
    tokens = [0] * n_queries
    requests = [0] * n_queries
    for row, owner in enumerate(owners):
        tokens[owner] += lengths[row]
    for batch in batches:
        requests[owners[batch[0]]] += 1
    return [Usage(t, 0, r) for t, r in zip(tokens, requests, strict=True)]


def total_usage(
    n_queries: int, owners: Sequence[int], rows: Sequence[Sequence[int]], batch_size: int
) -> Usage:
    """What running ``rows`` in batches of ``batch_size`` costs: a backend's ``estimate``."""
    lengths = [len(r) for r in rows]
    batches = list(length_batches(lengths, batch_size))
    total = Usage()
    for u in usage_per_query(n_queries, owners, lengths, batches):
        total = total + u
    return total


class LocalBackend:
    """What the in-process backends share: one model, its name and batching, empty calls.

    Subclasses set ``_name``, ``_batch_size`` and ``_max_batch_size`` in ``__init__`` and
    implement :meth:`_rows` (the token rows a call runs, for :meth:`estimate`) and
    :meth:`_score` (a non-empty call).
    """

    _pair_separator = "\n"
    _model: Any
    _dtype: torch.dtype
    _name: str
    _batch_size: int
    _max_batch_size: int

    def _make_identity(
        self,
        kind: str,
        source: str | Path | None,
        tokenizer: Any,
        settings: Sequence[object],
        max_length: int | None,
        gguf_file: str | None = None,
    ) -> str:
        """``<kind>:<name>:<weights>:<tokenizer>:<settings...>:<dtype>``, for ``__init__``.

        ``<weights>`` and ``<tokenizer>`` are the first 16 hex digits of their sha256 (see
        :func:`weights_sha256`, :func:`tokenizer_sha256`); ``:max_length=N`` is appended when
        ``max_length`` was given.
        """
        sha = weights_sha256(source if source is not None else "", self._model, gguf_file)
        dtype = str(self._dtype).removeprefix("torch.")
        parts = [kind, self._name, sha[:16], tokenizer_sha256(tokenizer)[:16], *settings, dtype]
        extra = f":max_length={max_length}" if max_length else ""
        return ":".join(map(str, parts)) + extra

    @property
    def model(self) -> str:
        """The model's name or path."""
        return self._name

    @property
    def capabilities(self) -> Capabilities:
        """Local and free, one call at a time (the model is behind a lock)."""
        return Capabilities(
            model=self._name,
            max_batch_size=self._max_batch_size,
            max_concurrency=1,
            pair_separator=self._pair_separator,
            is_local=True,
        )

    @property
    def max_batch_size(self) -> int:
        """Most queries per ``score`` call."""
        return self._max_batch_size

    @property
    def pair_separator(self) -> str:
        """Text that joins the two inputs of a pair task."""
        return self._pair_separator

    def estimate(self, queries: Sequence[Query]) -> Usage:
        """The exact usage ``score(queries)`` will report (tokens and forward passes)."""
        owners, rows = self._rows(queries)
        return total_usage(len(queries), owners, rows, self._batch_size)

    def score(self, queries: Sequence[Query]) -> list[LabelScores]:
        """Score each query's labels (see the class docstring).

        Raises:
            ConfigError: a label word the tokenizer cannot represent.
            UnsupportedQueryError: a query too long for the model even with its inputs cut.
        """
        if not queries:
            return []
        return self._score(queries)

    def _rows(self, queries: Sequence[Query]) -> tuple[list[int], list[list[int]]]:
        """The token rows ``score(queries)`` runs and the query owning each."""
        raise NotImplementedError

    def _score(self, queries: Sequence[Query]) -> list[LabelScores]:
        """:meth:`score` for at least one query."""
        raise NotImplementedError


def log_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Log-softmax over the last axis in float32, or float64 when the model runs in it."""
    import torch

    wide = logits if logits.dtype == torch.float64 else logits.float()
    return torch.log_softmax(wide, dim=-1)
