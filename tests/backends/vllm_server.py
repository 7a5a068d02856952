"""Start and stop a real vLLM server (CPU build) serving the embedded SmolLM2, on 127.0.0.1.

Used by the ``server`` tests' fixture and by ``benchmarks/bench_openai.py``. vLLM lives in a
virtual environment of its own, made by ``scripts/setup_vllm.sh``: ``$BDPL_VLLM_VENV``, else
``.venv-vllm`` at the repository root.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVED_NAME = "smollm2"
MAX_LOGPROBS = 100
START_TIMEOUT_S = 240.0


class VLLMUnavailable(RuntimeError):
    """vLLM is not installed where expected, or the server did not come up."""


@dataclass(frozen=True)
class VLLMServer:
    """A running server: where to reach it and where its log is."""

    base_url: str
    model: str
    log: Path
    startup_s: float


def vllm_python() -> Path:
    """The vLLM venv's interpreter.

    Raises:
        VLLMUnavailable: the venv does not exist (with the command that makes it).
    """
    venv = Path(os.environ.get("BDPL_VLLM_VENV", ROOT / ".venv-vllm"))
    python = venv / "bin" / "python"
    if not python.is_file():
        raise VLLMUnavailable(
            f"no vLLM virtual environment at {venv}: run `bash scripts/setup_vllm.sh` "
            "(or `make setup-vllm`; set BDPL_VLLM_VENV to use another place)"
        )
    return python


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _threads_bind() -> str:
    """CPUs for vLLM's OpenMP threads: ``$BDPL_VLLM_THREADS_BIND``, else the first two allowed."""
    env = os.environ.get("BDPL_VLLM_THREADS_BIND")
    if env:
        return env
    cpus = sorted(os.sched_getaffinity(0))[:2]
    return ",".join(str(c) for c in cpus)


@contextlib.contextmanager
def vllm_server(
    model_dir: Path, log: Path, *, timeout: float = START_TIMEOUT_S
) -> Iterator[VLLMServer]:
    """Run ``python -m vllm.entrypoints.openai.api_server`` for ``model_dir`` until the block ends.

    The flags are the ones that work on a small CPU machine: ``--enforce-eager`` (start-up in
    about 30 s instead of minutes of graph capture), float32, a 1,024-token context, 1 GiB of
    KV cache, and ``--max-logprobs`` raised to :data:`MAX_LOGPROBS`.

    Raises:
        VLLMUnavailable: no venv, or the server exited or did not answer ``/v1/models`` within
            ``timeout`` seconds (the message ends with the log's tail).
    """
    python = vllm_python()
    port = _free_port()
    env = dict(os.environ)
    env.update(
        VLLM_CPU_OMP_THREADS_BIND=_threads_bind(),
        VLLM_CPU_KVCACHE_SPACE="1",
        VLLM_NO_USAGE_STATS="1",
        DO_NOT_TRACK="1",
        HF_HUB_OFFLINE="1",
    )
    cmd = [
        str(python), "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model_dir), "--served-model-name", SERVED_NAME,
        "--host", "127.0.0.1", "--port", str(port),
        "--enforce-eager", "--dtype", "float32", "--max-model-len", "1024",
        "--max-logprobs", str(MAX_LOGPROBS),
    ]  # fmt: skip
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(log, "wb") as out:
        # A session of its own, so that stopping it stops vLLM's engine processes too.
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        base_url = f"http://127.0.0.1:{port}/v1"
        _wait_ready(proc, base_url, log, started + timeout)
        yield VLLMServer(base_url, SERVED_NAME, log, time.monotonic() - started)
    finally:
        _stop(proc)


def _wait_ready(proc: subprocess.Popen[bytes], base_url: str, log: Path, deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise VLLMUnavailable(f"vLLM exited with {proc.returncode}:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(base_url + "/models", timeout=2) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(1.0)
    raise VLLMUnavailable(f"vLLM did not answer {base_url}/models in time:\n{_tail(log)}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
