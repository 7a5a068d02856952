"""A provider that bills every request it receives, on 127.0.0.1, for the money-under-faults tests.

:class:`BillingServer` speaks ``/v1/completions`` well enough for
:class:`~bdpl.backends.openai_completion.OpenAIBackend` (answers come from
:class:`~tests.backends.openai_fakes.FakeLM`), and keeps the provider's side of the story: a
thread-safe bill of every request, counted *before* anything can go wrong with the reply, as a
real provider bills a computed completion whether or not the client reads it. It counts a token
per UTF-8 byte (the most a byte-level tokenizer can), so the client's estimates are almost
exact and a request charged nothing shows on the bill. A random share of
requests can be billed and then fail in a way whose outcome the client cannot know:

- ``"late"``: the reply comes only after the client's timeout (the client gives up);
- ``"reset"``: half the reply is sent, then the connection is closed;
- ``"garbage"``: a 200 reply whose body is not JSON.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bdpl.metering import Price
from bdpl.types import Usage
from tests.backends.openai_fakes import answer

FAULTS = ("late", "reset", "garbage")


@dataclass(frozen=True)
class Bill:
    """One billed request: its prompts, its usage, the run it came from and its fault."""

    prompts: tuple[str, ...]
    usage: Usage
    session: int
    fault: str | None


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client killed (SIGKILL) or timed out resets its connections: expected here.
        pass


class BillingServer:
    """A billing OpenAI-compatible completions server; use as a context manager.

    Args:
        fault_rate: share of requests that are billed and then fail with one of ``faults``.
        faults: which failures to draw from (see the module docstring).
        late_s: how long a ``"late"`` reply waits (longer than the client's timeout).
        latency_s: how long every request takes before it is answered.
        seed: seeds the draw of faulty requests.
        session_of: the run a request belongs to, from its prompts; default: the ``session``
            set when the server reads it (a request the client gave up on may reach the
            server after the next run began: a test with such requests names its runs in
            the prompts and attributes them here).
    """

    def __init__(
        self,
        *,
        fault_rate: float = 0.0,
        faults: Sequence[str] = FAULTS,
        late_s: float = 0.5,
        latency_s: float = 0.0,
        seed: int = 0,
        session_of: Callable[[tuple[str, ...]], int] | None = None,
    ) -> None:
        self.fault_rate = fault_rate
        self.session_of = session_of
        self.faults = tuple(faults)
        self.late_s = late_s
        self.latency_s = latency_s
        self.session = 0  # tests set it before each run, to tell runs apart in the bill
        self.bills: list[Bill] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._closing = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
                data = answer(body, self.path)
                data["usage"] = outer._usage(body)
                raw = json.dumps(data).encode()
                fault = outer._bill(body, data)
                if outer.latency_s:
                    time.sleep(outer.latency_s)
                if fault == "late":
                    outer._closing.wait(outer.late_s)  # the client has timed out by then
                elif fault == "garbage":
                    raw = b"<html>502 upstream</html>"
                try:
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(raw)))
                    self.end_headers()
                    if fault == "reset":
                        self.wfile.write(raw[: len(raw) // 2])
                        self.wfile.flush()
                        self.connection.shutdown(socket.SHUT_RDWR)
                        self.close_connection = True
                        return
                    self.wfile.write(raw)
                except OSError:  # the client gave up (timeout) and closed the connection
                    self.close_connection = True

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @staticmethod
    def _usage(body: dict[str, Any]) -> dict[str, int]:
        # A worst-case byte-level tokenizer: one token per UTF-8 byte, the most any BPE counts,
        # so that the client's estimates are nearly exact and any unpaid-for request shows.
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        prompt = sum(len(p.encode("utf-8")) for p in prompts)
        return {"prompt_tokens": prompt, "completion_tokens": len(prompts),
                "total_tokens": prompt + len(prompts)}  # fmt: skip

    def _bill(self, body: dict[str, Any], data: dict[str, Any]) -> str | None:
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        u = data["usage"]
        with self._lock:
            fault = self._rng.choice(self.faults) if self._rng.random() < self.fault_rate else None
            self.bills.append(
                Bill(
                    tuple(prompts),
                    Usage(u["prompt_tokens"], u["completion_tokens"], 1),
                    self.session if self.session_of is None else self.session_of(tuple(prompts)),
                    fault,
                )
            )
        return fault

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def session_bills(self, session: int | None = None) -> list[Bill]:
        """The bills of one run (``session``), or of all runs."""
        with self._lock:
            return [b for b in self.bills if session is None or b.session == session]

    def billed(self, session: int | None = None) -> Usage:
        """What the provider billed for the requests of one run, or of all runs."""
        return sum((b.usage for b in self.session_bills(session)), Usage())

    def dollars(self, price: Price, session: int | None = None) -> float:
        """The provider's bill at ``price`` for one run, or for all runs."""
        return price.cost(self.billed(session))

    def __enter__(self) -> BillingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
