"""FakeBackend: determinism, planted structure, usage, faults, call log, crash."""

from __future__ import annotations

import doctest
import json
import math
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bdpl.backends.base import Backend
from bdpl.backends.fake import FakeBackend, Planted
from bdpl.errors import ConfigError, MalformedResponseError, UnsupportedQueryError
from bdpl.tasks import Dataset, Example, Task, get_task
from bdpl.types import Query, Usage

ROOT = Path(__file__).resolve().parents[2]
CANDIDATES = ["alpha", "beta", "gamma delta", "gamma", "delta", "eps"]


def sst2_data(n: int = 40) -> Dataset:
    return Dataset(
        get_task("sst2"),
        tuple(Example(f"review {i} says things", label=str(i % 2)) for i in range(n)),
    )


def planted_fake(**kwargs: object) -> tuple[FakeBackend, Planted, Dataset]:
    data = sst2_data()
    planted = Planted.for_dataset(data, CANDIDATES, prompt_length=3, best=[2, 0, 5], strength=2.0)
    return FakeBackend(planted=planted, **kwargs), planted, data  # type: ignore[arg-type]


def accuracy(fake: FakeBackend, data: Dataset, prompt: list[str]) -> float:
    queries = [data.task.render(prompt, e) for e in data]
    scores = fake.score(queries)
    hits = [
        max(range(len(s.logprobs)), key=s.logprobs.__getitem__) == y
        for s, y in zip(scores, data.label_indices(), strict=True)
    ]
    return sum(hits) / len(hits)


def test_is_a_backend_and_deterministic() -> None:
    q = [Query("A fine film It was", ".", (" terrible", " great")), Query("x", "", ("a", "b", "c"))]
    a, b = FakeBackend(seed=3), FakeBackend(seed=3)
    assert isinstance(a, Backend)
    assert a.score(q) == b.score(q)
    assert a.identity == b.identity
    assert FakeBackend(seed=4).score(q) != a.score(q)
    assert len({FakeBackend(seed=3, noise=0.2).identity, a.identity, FakeBackend().identity}) == 3


def test_logprobs_are_a_log_softmax_for_many_labels() -> None:
    labels = tuple(f" w{i}" for i in range(37))  # more than one hash block
    [s] = FakeBackend().score([Query("text", "", labels)])
    assert len(s.logprobs) == 37 and len(set(s.logprobs)) == 37
    assert math.isclose(sum(math.exp(x) for x in s.logprobs), 1.0, rel_tol=1e-9)
    assert all(x < 0 for x in s.logprobs)


@pytest.mark.parametrize(
    "query",
    [Query("text", "", ()), Query("text", "", (" a", " a"))],
    ids=["no labels", "duplicate labels"],
)
def test_rejects_malformed_queries(query: Query) -> None:
    with pytest.raises(UnsupportedQueryError):
        FakeBackend().score([query])


def test_rejects_oversized_batch() -> None:
    q = Query("t", "", ("a", "b"))
    with pytest.raises(UnsupportedQueryError, match="max_batch_size"):
        FakeBackend(max_batch_size=2).score([q] * 3)


def test_usage_rule_and_estimate() -> None:
    fake = FakeBackend()
    qs = [Query("x" * 17, ".", (" no", " yes")), Query("y" * 8, "", (" maybe",))]
    scores = fake.score(qs)
    # ceil(18 / 4) + ceil(4 / 4) = 6; ceil(8 / 4) + ceil(6 / 4) = 4; one request per call.
    assert [s.usage for s in scores] == [Usage(6, 1, 1), Usage(4, 1, 0)]
    assert fake.estimate(qs) == Usage(10, 2, 1)
    assert fake.score([]) == [] and fake.estimate([]) == Usage()


def test_planted_best_prompt_beats_others() -> None:
    fake, planted, data = planted_fake(noise=0.05)
    assert planted.best_prompt == ["gamma delta", "alpha", "eps"]
    best = accuracy(fake, data, planted.best_prompt)
    assert best == 1.0
    assert accuracy(fake, data, []) < 0.8
    assert accuracy(fake, data, ["beta", "gamma", "delta"]) < best

    # The best prompt has the lowest mean cross-entropy among a few others.
    def loss(prompt: list[str]) -> float:
        s = fake.score([data.task.render(prompt, e) for e in data])
        return -sum(x.logprobs[y] for x, y in zip(s, data.label_indices(), strict=True)) / len(data)

    others = [
        ["gamma", "delta", "alpha"],
        ["alpha", "alpha", "eps"],
        ["gamma delta", "beta", "eps"],
    ]
    assert all(loss(planted.best_prompt) < loss(p) for p in others)


def test_planted_parses_multiword_candidates_and_short_prompts() -> None:
    fake, planted, data = planted_fake(noise=0.0)
    e = data[0]
    eff = planted.effects
    assert eff is not None
    base = fake.score([data.task.render([], e)])[0].logprobs
    # "gamma delta" as one token at position 0 plus "gamma" at position 1.
    got = fake.score([data.task.render(["gamma delta", "gamma"], e)])[0].logprobs
    y = data.task.label_index(e)
    shift = eff[0][2] + eff[1][3]
    z = list(base)
    z[y] += shift
    m = max(z)
    expected = [v - m - math.log(sum(math.exp(w - m) for w in z)) for v in z]
    assert got == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("prompt", "example", "labels"),
    [
        (["zeta"], None, None),
        (["alpha"] * 4, None, None),
        (["alpha"], Example("never seen", label="1"), None),
        (["alpha"], None, (" bad", " good")),
    ],
    ids=["unknown token", "too long", "unknown input", "other labels"],
)
def test_planted_fails_loudly(
    prompt: list[str], example: Example | None, labels: tuple[str, ...] | None
) -> None:
    fake, _, data = planted_fake()
    q = data.task.render(prompt, example or data[0])
    if labels is not None:
        q = Query(q.before, q.after, labels, q.input_spans)
    with pytest.raises(UnsupportedQueryError):
        fake.score([q])
    with pytest.raises(UnsupportedQueryError):
        fake.score([Query(q.before, q.after, q.labels)])  # no input spans


def test_planted_pair_task_and_prefix_template() -> None:
    task = Task("nli", "Premise: <s1> <sep> <s2>? <slot>.", {"a": "yes", "b": "no", "c": "maybe"})
    data = Dataset(task, tuple(Example(f"p{i}", f"h{i}", "abc"[i % 3]) for i in range(30)))
    planted = Planted.for_dataset(data, CANDIDATES, prompt_length=2, best=[1, 3], strength=3.0)
    fake = FakeBackend(planted=planted, noise=0.0)
    assert accuracy(fake, data, ["beta", "gamma"]) == 1.0
    assert accuracy(fake, data, ["eps", "alpha"]) < 1.0
    q = task.render([], data[0])
    cut = len("Premise: ")
    spans = tuple((a - cut, b - cut) for a, b in q.input_spans)
    with pytest.raises(UnsupportedQueryError, match="template"):
        fake.score([Query(q.before[cut:], q.after, q.labels, spans)])


def test_planted_validation() -> None:
    data = sst2_data()
    with pytest.raises(ConfigError):
        Planted.for_dataset(data, ["a", "a"], prompt_length=1)
    with pytest.raises(ConfigError):
        Planted.for_dataset(data, ["a", "  "], prompt_length=1)
    with pytest.raises(ConfigError):
        Planted.for_dataset(data, ["a", "b"], prompt_length=2, best=[0])
    bad = Dataset(data.task, (Example("x", label="7"),))
    with pytest.raises(ConfigError):
        Planted.for_dataset(bad, ["a", "b"], prompt_length=1)
    a = Planted.for_dataset(data, CANDIDATES, prompt_length=2, seed=1)
    b = Planted.for_dataset(sst2_data(), CANDIDATES, prompt_length=2, seed=1)
    assert a.sha256 == b.sha256 and a == b
    assert Planted.for_dataset(data, CANDIDATES, prompt_length=2, seed=2).sha256 != a.sha256


def test_faults_malformed_attempts_and_latency() -> None:
    q = [Query("t", "", ("a", "b"))] * 2
    boom = MalformedResponseError("boom")
    fake = FakeBackend(faults={0: boom, 2: "malformed"}, latency=0.02)
    with pytest.raises(MalformedResponseError, match="boom"):
        fake.score(q)
    t = time.perf_counter()
    assert len(fake.score(q)) == 2
    assert time.perf_counter() - t >= 0.02
    assert len(fake.score(q)) == 1  # malformed: one answer short
    assert fake.attempts == 3 and fake.call_count == 2


def test_constructor_validation() -> None:
    with pytest.raises(ConfigError, match="fault at call 2"):
        FakeBackend(faults={2: "slow"})  # type: ignore[dict-item]
    with pytest.raises(ConfigError):
        FakeBackend(max_batch_size=0)


def test_call_log_threads_and_concurrency(tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    fake = FakeBackend(call_log=log, latency=0.01, faults={3: "malformed"})
    qs = [Query(f"text {i}", "", ("a", "b")) for i in range(5)]

    def work() -> None:
        for _ in range(5):
            fake.score(qs)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert len(lines) == 20 == fake.call_count
    assert sorted(x["call"] for x in lines) == list(range(20))
    assert [x["call"] for x in lines if x.get("malformed")] == [3]
    assert all(x["queries"] == [q.to_json() for q in qs] for x in lines)
    assert 2 <= fake.peak_concurrency <= 4


SCRIPT = """
import sys
from bdpl.backends.fake import FakeBackend
from bdpl.types import Query
die = int(sys.argv[2]) if len(sys.argv) > 2 else None
fake = FakeBackend(call_log=sys.argv[1], die_at_call=die)
for i in range(10):
    fake.score([Query(f"q{i}", "", ("a", "b"))])
"""


def run_script(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, *args], cwd=ROOT, capture_output=True, timeout=60
    )


def test_call_log_across_processes_and_die_at_call(tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    died = run_script(str(log), "4")
    assert died.returncode == -9
    assert [json.loads(x)["call"] for x in log.read_text().splitlines()] == [0, 1, 2, 3]
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, str(log)], cwd=ROOT) for _ in range(3)]
    assert all(p.wait(timeout=60) == 0 for p in procs)
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert len(lines) == 4 + 30


def test_throughput() -> None:
    """Plain and planted scoring stay fast.

    ``benchmarks/fake_throughput.py`` measures >100k queries/s on an idle machine; here CPU
    time (not wall time, the CI machine is shared) of the best of three runs must allow 20k/s.
    """
    fake, _, data = planted_fake()
    prompts = [[CANDIDATES[(i * 7 + j) % 6] for j in range(3)] for i in range(20)]
    qs = [data.task.render(prompts[i % 20], data[i % len(data)]) for i in range(64 * 50)]
    for backend in (FakeBackend(), fake):
        best = float("inf")
        for _ in range(3):
            t = time.process_time()
            for i in range(0, len(qs), 64):
                backend.score(qs[i : i + 64])
            best = min(best, time.process_time() - t)
        assert len(qs) / max(best, 1e-9) > 20_000


def test_doctests() -> None:
    import bdpl.backends.fake

    result = doctest.testmod(bdpl.backends.fake, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
