"""A tiny deterministic language model behind OpenAI-style endpoints, for backend tests.

:class:`FakeLM` answers ``/v1/completions`` (top-k next-token log-probs, ``echo``, vLLM's
``prompt_logprobs``) and ``/v1/chat/completions`` consistently: the exact log-prob that the
fallback reads for a label equals the one the top-k would show, so tests can check values, not
just shapes. It is served either through ``httpx.MockTransport`` (:func:`mock_client`) or by
:class:`FaultServer`, a real HTTP server on 127.0.0.1 that can be told to fail.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import math
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openai

# The HTTP library the installed SDK is built on (httpx, or httpx2 for newer SDKs).
httpx: Any = importlib.import_module(openai.DefaultHttpxClient.__mro__[1].__module__.split(".")[0])

CANARY_KEY = "sk-canary-7f3a9c1e5b2d4f6a8c0e"
VOCAB = (
    " great", " terrible", " good", " bad", " the", " a", " it", " was", " not", " very",
    " so", " fine", " film", ".", ",", "!", " It", " movie",
)  # fmt: skip
_TOKEN = re.compile(r" ?\w+| ?[^\w\s]|\s+")


def tokenize(text: str) -> list[str]:
    """The fake model's tokenizer: words with their leading space, punctuation, spaces."""
    return _TOKEN.findall(text)


class FakeLM:
    """Log-probs from a hash of (context, token), normalised over :data:`VOCAB`."""

    @staticmethod
    def _logit(context: str, token: str) -> float:
        digest = hashlib.sha256(f"{context}\x00{token}".encode()).digest()
        return int.from_bytes(digest[:4], "big") / 2**32 * 8.0

    def logprob(self, context: str, token: str) -> float:
        z = math.log(sum(math.exp(self._logit(context, t)) for t in VOCAB))
        return self._logit(context, token) - z

    def top(self, context: str, k: int) -> dict[str, float]:
        ranked = sorted(VOCAB, key=lambda t: -self.logprob(context, t))
        return {t: self.logprob(context, t) for t in ranked[:k]}

    def label_logprobs(self, query: Any) -> list[float]:
        """The exact log-prob of each of ``query``'s labels after its ``before``."""
        return [self.logprob(query.before, label) for label in query.labels]

    def text_logprob(self, context: str, text: str) -> float:
        """``log p(text | context)``, summed over the fake tokens of ``text``."""
        total = 0.0
        for tok in tokenize(text):
            total += self.logprob(context, tok)
            context += tok
        return total

    # -- endpoints ----------------------------------------------------------------------------

    def completions(self, body: dict[str, Any]) -> dict[str, Any]:
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        k = int(body.get("logprobs") or 0)
        choices = []
        prompt_tokens = 0
        for index, prompt in enumerate(prompts):
            toks = tokenize(prompt)
            prompt_tokens += len(toks)
            choice: dict[str, Any] = {"index": index, "finish_reason": "length", "text": ""}
            if body.get("echo"):
                offsets, pos = [], 0
                for t in toks:
                    offsets.append(pos)
                    pos += len(t)
                values = [None] + [
                    self.logprob("".join(toks[:n]), toks[n]) for n in range(1, len(toks))
                ]
                choice["text"] = prompt
                choice["logprobs"] = {
                    "tokens": toks,
                    "token_logprobs": values,
                    "text_offset": offsets,
                    "top_logprobs": [None]
                    + [{t: v} for t, v in zip(toks[1:], values[1:], strict=True)],
                }
            elif body.get("logprobs") is not None:
                top = self.top(prompt, k)
                best = next(iter(top))
                choice["text"] = best
                choice["logprobs"] = {
                    "tokens": [best],
                    "token_logprobs": [top[best]],
                    "text_offset": [len(prompt)],
                    "top_logprobs": [top],
                }
            if "prompt_logprobs" in body:
                choice["prompt_logprobs"] = [None] + [
                    {str(n): {"logprob": self.logprob("".join(toks[:n]), toks[n]),
                              "rank": 1, "decoded_token": toks[n]}}
                    for n in range(1, len(toks))
                ]  # fmt: skip
            choices.append(choice)
        completion_tokens = len(prompts) * min(1, int(body.get("max_tokens", 16)))
        return {
            "id": "cmpl-fake",
            "object": "text_completion",
            "created": 0,
            "model": body["model"],
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        context = "\n".join(f"<{m['role']}>{m['content']}" for m in body["messages"]) + "<reply>"
        # A reply starts without a space: the fake's reply tokens are VOCAB minus leading spaces.
        top = {t.lstrip(" "): v for t, v in self.top(context, int(body["top_logprobs"])).items()}
        best = next(iter(top))
        prompt_tokens = len(tokenize(context))
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "length",
                    "message": {"role": "assistant", "content": best},
                    "logprobs": {
                        "content": [
                            {
                                "token": best,
                                "logprob": top[best],
                                "bytes": None,
                                "top_logprobs": [
                                    {"token": t, "logprob": v, "bytes": None}
                                    for t, v in top.items()
                                ],
                            }
                        ]
                    },
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": 1,
                "total_tokens": prompt_tokens + 1,
            },
        }

    def reply_logprob(self, messages: list[dict[str, str]], token: str) -> float:
        context = "\n".join(f"<{m['role']}>{m['content']}" for m in messages) + "<reply>"
        return self.logprob(context, " " + token)


def answer(body: dict[str, Any], path: str) -> dict[str, Any]:
    """The fake model's JSON answer for a request to ``path``."""
    lm = FakeLM()
    return lm.chat(body) if path.endswith("/chat/completions") else lm.completions(body)


# -- httpx.MockTransport -----------------------------------------------------------------------


@dataclass
class Recorder:
    """A MockTransport handler that records requests and answers with the fake (or ``respond``)."""

    respond: Callable[[dict[str, Any], Any], Any] | None = None
    requests: list[Any] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, request: Any) -> Any:
        self.requests.append(request)
        body = json.loads(request.content)
        self.bodies.append(body)
        if self.respond is not None:
            got = self.respond(body, request)
            if got is not None:
                return got
        return httpx.Response(200, json=answer(body, request.url.path))


def mock_client(handler: Callable[[Any], Any], *, api_key: str = CANARY_KEY) -> openai.OpenAI:
    """An SDK client whose HTTP transport is ``handler`` (no network)."""
    return openai.OpenAI(
        api_key=api_key,
        base_url="http://mock.test/v1",
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
    )


# -- a real HTTP server that can fail ----------------------------------------------------------


@dataclass
class Fault:
    """One scripted answer: a status with a body, a delay, a dropped connection, or a bad reply.

    Attributes:
        status, body, headers: the answer; ``body=None`` is the fake model's answer (billed),
            a dict is sent as JSON, bytes/str as they are.
        delay: seconds to wait before anything (nothing billed yet: a client timing out here
            was not billed).
        drop: close the connection without an answer, before billing.
        strip_logprobs: the model's answer without logprobs.
        bill: bill the model's usage for this request even with a scripted ``body`` (an
            unreadable 200 is billed by the provider all the same).
        slow_after_billing: seconds to wait *after* billing, before replying: a client that
            times out meanwhile was billed for a reply it never read.
        reset_mid_reply: after billing, send the headers and half the body, then reset.
        usage: replaces the answer's ``usage`` object (``MISSING`` removes it); the provider
            still bills the true count.
        unindexed: the answer's choices without ``index``, in reverse order.
        echo_key: the request's bearer token put into a malformed field (the first choice's
            ``index``).
        pad_to: pad the JSON answer to at least this many bytes.
        chunked: send the body chunked, without a ``Content-Length``.
    """

    status: int = 200
    body: Any = None  # dict -> JSON; bytes/str -> raw; None -> the fake model's answer
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False
    strip_logprobs: bool = False
    bill: bool = False
    slow_after_billing: float = 0.0
    reset_mid_reply: bool = False
    usage: Any = None
    unindexed: bool = False
    echo_key: bool = False
    pad_to: int = 0
    chunked: bool = False

    def __post_init__(self) -> None:
        # Faults are bounded: no test may hang the server for long or fill the memory.
        assert 0 <= self.delay <= 10 and 0 <= self.slow_after_billing <= 10
        assert 0 <= self.pad_to <= 128 * 1024 * 1024


MISSING = object()  # Fault(usage=MISSING): an answer without a usage object


@dataclass(frozen=True)
class Bill:
    """The provider's side of the books: what the server billed."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def dollars(self, price: Any) -> float:
        """The bill at ``price`` (anything with ``input_per_1m`` and ``output_per_1m``)."""
        return (
            self.prompt_tokens * price.input_per_1m + self.completion_tokens * price.output_per_1m
        ) / 1e6


class FaultServer:
    """An OpenAI-compatible server on 127.0.0.1 that plays scripted faults, then answers normally.

    Use as a context manager; ``script`` is a queue of :class:`Fault` consumed one per request.
    Every request's path, headers and JSON body are kept in ``seen``, and the provider's books
    in ``billed`` (the usage of every billed request) and :attr:`bill` (the totals). A request
    is billed once the model has answered it, whether or not the client reads the answer.
    """

    def __init__(self) -> None:
        self.script: deque[Fault] = deque()
        self.seen: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.billed: list[dict[str, int]] = []  # usage of every answer the fake model made
        self._lock = threading.Lock()
        self._busy = 0  # requests being handled, so that tests can wait for late bills
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                with outer._lock:
                    outer._busy += 1
                try:
                    self._answer()
                finally:
                    with outer._lock:
                        outer._busy -= 1

            def _answer(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with outer._lock:
                    outer.seen.append(
                        (self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    fault = outer.script.popleft() if outer.script else Fault()
                if fault.delay:
                    time.sleep(fault.delay)
                if fault.drop:
                    self._reset()
                    return
                if fault.body is None:
                    data = answer(body, self.path)
                    outer._bill(data["usage"])
                    raw = json.dumps(self._spoil(data, fault)).encode()
                else:
                    if fault.bill:
                        outer._bill(answer(body, self.path)["usage"])
                    if isinstance(fault.body, (bytes, str)):
                        raw = fault.body.encode() if isinstance(fault.body, str) else fault.body
                    else:
                        raw = json.dumps(fault.body).encode()
                if fault.pad_to > len(raw) and raw.endswith(b"}"):
                    raw = raw[:-1] + b', "padding": "' + b"x" * (fault.pad_to - len(raw)) + b'"}'
                if fault.slow_after_billing:
                    time.sleep(fault.slow_after_billing)
                # The client may have given up (timed out) meanwhile.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self._send(fault, raw)

            def _spoil(self, data: dict[str, Any], fault: Fault) -> dict[str, Any]:
                if fault.strip_logprobs:
                    for choice in data["choices"]:
                        choice["logprobs"] = None
                if fault.usage is MISSING:
                    del data["usage"]
                elif fault.usage is not None:
                    data["usage"] = fault.usage
                if fault.unindexed:
                    for choice in data["choices"]:
                        del choice["index"]
                    data["choices"].reverse()
                if fault.echo_key:
                    token = self.headers.get("authorization", "").removeprefix("Bearer ")
                    data["choices"][0]["index"] = token
                return data

            def _send(self, fault: Fault, raw: bytes) -> None:
                self.send_response(fault.status)
                self.send_header("content-type", "application/json")
                if fault.chunked:
                    self.send_header("transfer-encoding", "chunked")
                else:
                    self.send_header("content-length", str(len(raw)))
                for name, value in fault.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if fault.reset_mid_reply:
                    self.wfile.write(raw[: len(raw) // 2])
                    self.wfile.flush()
                    self._reset()
                elif fault.chunked:
                    step = 64 * 1024
                    for k in range(0, len(raw), step):
                        part = raw[k : k + step]
                        self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self.wfile.write(raw)

            def _reset(self) -> None:
                # Close without (the rest of) an answer: the client sees the connection go.
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _bill(self, usage: dict[str, int]) -> None:
        with self._lock:
            self.billed.append(dict(usage))

    @property
    def bill(self) -> Bill:
        """The provider's totals so far (thread-safe snapshot)."""
        with self._lock:
            return Bill(
                len(self.billed),
                sum(u["prompt_tokens"] for u in self.billed),
                sum(u["completion_tokens"] for u in self.billed),
            )

    def settled(self, timeout: float = 10.0) -> Bill:
        """:attr:`bill` once no request is being handled (late bills included), bounded."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._busy:
                    break
            time.sleep(0.02)
        return self.bill

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class Waits:
    """A fake sleep for the retry policy: records waits, takes no time."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
