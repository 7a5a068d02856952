"""A masked language model (RoBERTa and kin) run in-process: the BDPL paper's setting."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from bdpl.backends import _hf
from bdpl.errors import ConfigError
from bdpl.types import LabelScores, Query

if TYPE_CHECKING:
    import torch

LabelTokenPolicy = Literal["first", "mean", "sum"]
_POLICIES = ("first", "mean", "sum")


class MaskedLMBackend(_hf.LocalBackend):
    """Scores label words at a mask token with a masked LM's MLM head.

    The text is ``before + <mask> + after``: the mask takes the label's place, leading space
    included (RoBERTa's ``<mask>`` swallows the space before it, as ``" great"`` is one token).
    A label's score is the log-softmax over the vocabulary at the mask, read at the label's
    token. The MLM head is applied only at the mask positions, not at every position, which
    saves most of the head's cost and gives the same numbers.

    >>> backend = MaskedLMBackend("roberta-large")  # doctest: +SKIP
    >>> query = Query("A fine film. It was", ".", (" terrible", " great"))
    >>> backend.score([query])  # doctest: +SKIP
    [LabelScores(logprobs=(-6.1, -1.2), usage=Usage(prompt_tokens=9, ...), exact=True)]

    Thread safety: ``score`` may be called from several threads; forward passes are serialized
    by a lock (one model computes one batch at a time), so ``max_concurrency`` is 1.

    Args:
        model: a model name on the Hugging Face hub or a local folder (``roberta-large`` by
            default), or a loaded ``PreTrainedModel`` with an MLM head.
        tokenizer: a fast tokenizer; loaded from ``model`` when that is a name or path.
        device: ``"auto"`` (CUDA, then MPS, then CPU) or a torch device string.
        dtype: compute dtype (``"bf16"``, ``"fp16"``, ``"float32"`` or a ``torch.dtype``);
            default bfloat16 on CUDA, float16 on MPS, float32 on the CPU.
        batch_size: most sequences per forward pass.
        max_batch_size: most queries per ``score`` call (what the metering layer sends at
            once); default ``8 * batch_size``. A call's queries are sorted by length before
            they are cut into forward passes, so a larger call pads less.
        label_token_policy: how a label word of several sub-tokens is scored. ``"first"``
            (the BDPL reference): its first sub-token at one mask, an upper bound on the
            word's probability; the labels' first sub-tokens must then differ.
            ``"mean"``/``"sum"``: as many masks as sub-tokens, the mean/sum of each
            sub-token's log-prob at its mask (one extra sequence per distinct sub-token
            count). The sum treats the masks as independent, so it is not the word's joint
            log-probability either, and the mean is not a log-probability at all. Hence a
            query's answer has ``exact=True`` only when every one of its labels is a single
            sub-token (where all three policies give the same number), whatever the policy.
        max_input_tokens: the most tokens the inputs keep, split evenly among a query's inputs
            (the reference: 400 for one sentence, 200 each for a pair). Only input text is
            cut (from its end), never the prompt, the template or the mask.
        max_length: the most tokens a sequence may have; default the model's limit.

    Raises:
        ConfigError: bad settings, a tokenizer without a mask token, or a slow tokenizer.
        ModelNotFoundError: the model cannot be loaded.
    """

    def __init__(
        self,
        model: str | Path | Any = "roberta-large",
        tokenizer: Any = None,
        *,
        device: str = "auto",
        dtype: str | torch.dtype | None = None,
        batch_size: int = 32,
        max_batch_size: int | None = None,
        label_token_policy: LabelTokenPolicy = "first",
        max_input_tokens: int | None = 400,
        max_length: int | None = None,
    ) -> None:
        if label_token_policy not in _POLICIES:
            raise ConfigError(
                f"label_token_policy must be one of {_POLICIES}, got {label_token_policy!r}"
            )
        _hf.check_sizes(batch_size, max_batch_size, max_input_tokens)
        from transformers import AutoModelForMaskedLM

        self._device = _hf.resolve_device(device)
        self._dtype = _hf.resolve_dtype(dtype, self._device)
        source = model if isinstance(model, (str, Path)) else None
        loaded, tokenizer = _hf.load_model_and_tokenizer(
            AutoModelForMaskedLM, model, source, tokenizer, self._dtype
        )
        if tokenizer.mask_token_id is None:
            raise ConfigError(f"tokenizer {type(tokenizer).__name__} has no mask token")
        self._model = loaded.to(device=self._device, dtype=self._dtype).eval()
        self._tokenizer = tokenizer
        self._mask_id: int = int(tokenizer.mask_token_id)
        pad_id = tokenizer.pad_token_id
        self._pad_id: int = int(pad_id if pad_id is not None else self._model.config.pad_token_id)
        self._prefix, self._suffix = _hf.special_affixes(tokenizer)
        self._limit = max_length or _hf.model_max_length(tokenizer, self._model.config)
        self._batch_size = batch_size
        self._max_batch_size = max_batch_size or 8 * batch_size
        # Pairs are joined by the tokenizer's separator (``</s>`` for RoBERTa), as the
        # reference joins them.
        sep = tokenizer.sep_token
        self._pair_separator = str(sep) if sep is not None else "\n"
        self._policy: LabelTokenPolicy = label_token_policy
        self._max_input_tokens = max_input_tokens
        # Encoder + head applied only at the masks; models without a known head split fall
        # back to the full logits.
        head = getattr(self._model, "lm_head", None)
        self._head = head if head is not None else getattr(self._model, "cls", None)
        self._head_only = self._head is not None
        self._label_ids: dict[tuple[str, ...], tuple[tuple[int, ...], ...]] = {}
        self._lock = threading.Lock()
        self._name = _hf.model_name(source, self._model)
        settings = (label_token_policy, max_input_tokens)
        self._identity = self._make_identity("masked_lm", source, tokenizer, settings, max_length)

    @property
    def identity(self) -> str:
        """``masked_lm:<name>:<weights>:<tokenizer>:<policy>:<max_input_tokens>:<dtype>``

        ``<weights>`` and ``<tokenizer>`` are the first 16 hex digits of their sha256;
        ``:max_length=N`` is appended when ``max_length`` was given. The tokenizer's hash
        (:func:`~bdpl.backends._hf.tokenizer_sha256`) counts because it decides the label
        ids and where inputs are cut.
        """
        return self._identity

    @property
    def head_only(self) -> bool:
        """Whether the MLM head is applied only at the masks (the model's head is known)."""
        return self._head_only

    def _forget(self) -> None:
        self._head = None

    def label_token_ids(self, labels: Sequence[str]) -> tuple[tuple[int, ...], ...]:
        """The token ids of each label word as it stands in the slot.

        Call it with the verbalizer's words to check them up front; ``score`` does the same
        on first sight of a label set.

        Raises:
            ConfigError: a label is empty or has a token the tokenizer cannot represent
                (its unknown token), or, with the ``"first"`` policy, two labels share their
                first sub-token (they would always tie).
        """
        self._check_open()
        key = tuple(labels)
        cached = self._label_ids.get(key)
        if cached is not None:
            return cached
        ids = _hf.label_token_ids(self._tokenizer, key)
        if self._policy == "first":
            firsts: dict[int, str] = {}
            for label, toks in zip(key, ids, strict=True):
                if toks[0] in firsts:
                    raise ConfigError(
                        f"labels {firsts[toks[0]]!r} and {label!r} share their first sub-token, "
                        "so the 'first' policy cannot tell them apart; use "
                        "label_token_policy='mean' or other label words"
                    )
                firsts[toks[0]] = label
        self._label_ids[key] = ids
        return ids

    def _plan(
        self, queries: Sequence[Query]
    ) -> tuple[list[int], list[list[int]], list[int], list[int]]:
        """Token rows to run: ``(owner query, ids, mask start, mask count)`` as parallel lists.

        With the ``"first"`` policy each query is one row with one mask; otherwise one row
        per distinct sub-token count among its labels.
        """
        owners: list[int] = []
        rows: list[list[int]] = []
        starts: list[int] = []
        widths: list[int] = []
        afters = self._tokenizer([q.after for q in queries], add_special_tokens=False)["input_ids"]
        fixed = len(self._prefix) + len(self._suffix)
        counts: list[list[int]] = []
        for q in queries:
            label_ids = self.label_token_ids(q.labels)
            counts.append([1] if self._policy == "first" else sorted({len(t) for t in label_ids}))
        encoded = _hf.encode_befores(
            self._tokenizer,
            queries,
            [fixed + max(k) + len(a) for k, a in zip(counts, afters, strict=True)],
            max_input_tokens=self._max_input_tokens,
            limit=self._limit,
        )
        befores = [b.ids for b in encoded]
        for qi, (before, after) in enumerate(zip(befores, afters, strict=True)):
            for k in counts[qi]:
                owners.append(qi)
                starts.append(len(self._prefix) + len(before))
                widths.append(k)
                rows.append([*self._prefix, *before, *([self._mask_id] * k), *after, *self._suffix])
        return owners, rows, starts, widths

    def _rows(self, queries: Sequence[Query]) -> tuple[list[int], list[list[int]]]:
        owners, rows, _, _ = self._plan(queries)
        return owners, rows

    def _score(self, queries: Sequence[Query]) -> list[LabelScores]:
        """Each query's label scores at its mask(s), one row per mask count."""
        import torch

        owners, rows, starts, widths = self._plan(queries)
        lengths = [len(r) for r in rows]
        batches = list(_hf.length_batches(lengths, self._batch_size))
        labels = [self.label_token_ids(q.labels) for q in queries]
        # Sub-token log-probs of each label, gathered on the device so that only these few
        # numbers (not the vocabulary-wide distributions) are copied back.
        parts: list[list[list[float]]] = [[[] for _ in q.labels] for q in queries]
        with self._lock, torch.inference_mode():
            for batch in batches:
                ids, attn = _hf.pad(
                    [rows[i] for i in batch], self._pad_id, left=False, device=self._device
                )
                r_idx: list[int] = []
                c_idx: list[int] = []
                at: list[int] = []  # index of each row's first mask among the gathered ones
                for b, i in enumerate(batch):
                    at.append(len(r_idx))
                    r_idx.extend([b] * widths[i])
                    c_idx.extend(range(starts[i], starts[i] + widths[i]))
                mask_pos: list[int] = []
                token: list[int] = []
                where: list[tuple[int, int]] = []
                for b, i in enumerate(batch):
                    qi, k = owners[i], widths[i]
                    for li, toks in enumerate(labels[qi]):
                        if self._policy == "first":
                            mask_pos.append(at[b])
                            token.append(toks[0])
                            where.append((qi, li))
                        elif len(toks) == k:
                            for j, t in enumerate(toks):
                                mask_pos.append(at[b] + j)
                                token.append(t)
                                where.append((qi, li))
                # Without padding no mask is needed, and SDPA can then pick its fastest kernel.
                same_length = len({lengths[i] for i in batch}) == 1
                logits = self._mask_logits(ids, None if same_length else attn, r_idx, c_idx)
                logprobs = _hf.log_softmax(logits)
                picked = logprobs[
                    torch.tensor(mask_pos, device=logprobs.device),
                    torch.tensor(token, device=logprobs.device),
                ].tolist()
                for (qi, li), value in zip(where, picked, strict=True):
                    parts[qi][li].append(value)
        usages = _hf.usage_per_query(len(queries), owners, lengths, batches)
        reduce = (lambda v: sum(v) / len(v)) if self._policy == "mean" else sum
        # Only a one-sub-token label is scored by its log-probability (see the class docstring).
        return [
            LabelScores(
                tuple(float(reduce(v)) for v in parts[qi]),
                usages[qi],
                exact=all(len(t) == 1 for t in labels[qi]),
            )
            for qi in range(len(queries))
        ]

    def _mask_logits(
        self, ids: torch.Tensor, attn: torch.Tensor | None, rows: list[int], cols: list[int]
    ) -> torch.Tensor:
        """Vocabulary logits at the given (row, column) positions, shape (positions, vocab)."""
        if self._head_only and self._head is not None:
            hidden = self._model.base_model(input_ids=ids, attention_mask=attn).last_hidden_state
            result: torch.Tensor = self._head(hidden[rows, cols])
            return result
        logits: torch.Tensor = self._model(input_ids=ids, attention_mask=attn).logits
        return logits[rows, cols]
