"""Every ``bdpl`` subcommand through its installed entry point, on the fake backend."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from bdpl import Meter, Optimizer
from bdpl.testing import FakeBackend
from tests.cli.conftest import ENTRY_POINT, Run, cli_env, read_calls

FIT = ("fit", "--task", "sst2", "--epochs", "2")


def _calls(path: Path) -> list[list[tuple[str, ...]]]:
    return [
        [(q["before"], q["after"], *q["labels"]) for q in json.loads(line)["queries"]]
        for line in path.read_text(encoding="utf-8").splitlines()
    ]


def test_fit_writes_a_run_folder(bdpl: Run, tmp_path: Path) -> None:
    started = time.perf_counter()
    done = bdpl(*FIT, "--out", "run", "--call-log", "calls.jsonl")
    elapsed = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    run = tmp_path / "run"
    names = {p.name for p in run.iterdir()}
    assert {"config.toml", "versions.json", "prompt.json", "metrics.json", "history.jsonl"} <= names
    assert {"ledger.jsonl", "ledger-summary.json", "checkpoint.json", "run.json"} <= names
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["dev"]) == {"manual", "learned"}
    assert isinstance(metrics["selection"]["kept_manual"], bool)
    assert set(metrics["test"]) == {"manual", "learned", "rows"}
    assert metrics["test"]["rows"] == 872
    assert 0 < metrics["seconds"] < elapsed  # the run's own clock, within the process's life
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    steps = [h for h in history if h["kind"] == "step"]
    assert len(steps) == 4 and len(history) == 6  # 2 steps and 1 epoch line per epoch
    assert all(len(h["entropy"]) == 3 and h["paid_queries"] > 0 for h in steps)
    paid = len(read_calls(tmp_path / "calls.jsonl"))  # training, dev and test queries
    assert metrics["queries"]["paid"] == paid > steps[-1]["paid_queries"]
    versions = json.loads((run / "versions.json").read_text())
    assert "bdpl" in versions and "python" in versions
    fake = FakeBackend()
    loaded = Optimizer.load(run / "prompt.json", fake, meter=Meter(fake, cache=False))
    assert loaded.best_prompt == metrics["prompt"]
    summary = json.loads((run / "ledger-summary.json").read_text())
    assert sum(s["paid_queries"] for s in summary.values()) == paid
    assert "run folder: run" in done.stdout and "test accuracy: manual" in done.stdout


def test_config_file_reproduces_the_prompt_bit_for_bit(bdpl: Run, tmp_path: Path) -> None:
    assert bdpl(*FIT, "--seed", "3", "--out", "a", "-q").returncode == 0
    again = bdpl("fit", "--config", "a/config.toml", "--out", "b", "--cache", "off", "-q")
    assert again.returncode == 0, again.stderr
    assert again.stdout == ""  # --quiet
    a = json.loads((tmp_path / "a" / "prompt.json").read_text())
    b = json.loads((tmp_path / "b" / "prompt.json").read_text())
    assert a["prompt"] == b["prompt"] and a["distribution"] == b["distribution"]
    assert a["state"] == b["state"]


def test_estimate_calls_no_model(bdpl: Run) -> None:
    # Port 9 has no server: any call would fail, so a result proves none was made.
    done = bdpl(
        "estimate", "--task", "sst2", "--epochs", "3", "--backend", "openai:davinci-002",
        "--base-url", "http://127.0.0.1:9/v1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    cost = json.loads(done.stdout)
    assert cost["queries"] == 3 * (8 * 32 + 32) + 4 * 32  # and the selection's 4 passes
    assert cost["dollars"] > 0 and cost["model"] == "davinci-002"


def test_eval_with_the_run_backend_and_another(bdpl: Run, tmp_path: Path) -> None:
    assert bdpl(*FIT, "--out", "run", "-q").returncode == 0
    same = bdpl("eval", "run", "--split", "dev")
    assert same.returncode == 0, same.stderr
    result = json.loads(same.stdout)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert result["learned"] == metrics["dev"]["learned"]
    other = bdpl("eval", "run", "--backend", "fake:seed=5", "--split", "test", "--rows", "50")
    assert other.returncode == 0, other.stderr
    moved = json.loads(other.stdout)
    assert moved["rows"] == 50 and moved["backend"].startswith("fake:fake-model:seed=5")
    assert moved["prompt"] == metrics["prompt"]


def test_ledger_cache_and_data(bdpl: Run, tmp_path: Path) -> None:
    assert bdpl(*FIT, "--out", "runs/one", "--cache", "c", "-q").returncode == 0
    table = bdpl("ledger", "runs")
    assert table.returncode == 0 and table.stdout.splitlines()[-1].startswith("total")
    rows = json.loads(bdpl("ledger", "runs/one", "--json").stdout)
    assert rows[0]["billed_queries"] > 0
    info = json.loads(bdpl("cache", "info", "--dir", "c").stdout)
    assert info["entries"] == rows[0]["billed_queries"] and info["bytes"] > 0
    cleared = bdpl("cache", "clear", "--dir", "c", "--yes")
    assert cleared.stdout.strip() == f"removed {info['entries']:,} cached answers"
    assert json.loads(bdpl("cache", "info", "--dir", "c").stdout)["entries"] == 0
    listing = bdpl("data")
    assert listing.returncode == 0 and "sst2" in listing.stdout and "rte" in listing.stdout


def test_help_explains_every_option(bdpl: Run) -> None:
    for command in ("fit", "estimate", "eval", "explain", "plot", "ledger", "cache", "data"):
        done = bdpl(command, "--help")
        assert done.returncode == 0 and "Usage: bdpl" in done.stdout
    assert "--max-dollars" in bdpl("fit", "--help").stdout


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path: Path, bdpl: Run) -> None:
    backend = "fake:latency=0.02"
    args = [str(ENTRY_POINT), *FIT[:-1], "6", "--backend", backend, "-q"]
    env = cli_env(tmp_path)
    first_log = tmp_path / "calls1.jsonl"
    proc = subprocess.Popen(
        [*args, "--out", "run", "--call-log", str(first_log)], cwd=tmp_path, env=env
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if first_log.exists() and len(first_log.read_text().splitlines()) >= 25:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    resumed = bdpl("fit", "--resume", "run", "--call-log", "calls2.jsonl", "-q")
    assert resumed.returncode == 0, resumed.stderr
    before, after = read_calls(first_log), read_calls(tmp_path / "calls2.jsonl")
    assert len(before) == len(set(before)) and len(after) == len(set(after))
    # The only queries paid again are those of the calls in flight at the kill: answered
    # (and logged) by the backend, killed before their answers reached the cache. The meter
    # runs at most max_concurrency calls at once, each of at most max_batch_size queries.
    again = set(before) & set(after)
    caps = FakeBackend().capabilities
    in_flight = {q for call in _calls(first_log)[-caps.max_concurrency :] for q in call}
    assert again <= in_flight
    assert len(again) <= caps.max_concurrency * caps.max_batch_size
    alone = bdpl(
        *FIT[:-1], "6", "--backend", backend, "--out", "alone", "--cache", "alone-cache", "-q"
    )
    assert alone.returncode == 0, alone.stderr
    a = json.loads((tmp_path / "run" / "prompt.json").read_text())
    b = json.loads((tmp_path / "alone" / "prompt.json").read_text())
    assert a["prompt"] == b["prompt"] and a["distribution"] == b["distribution"]
    steps = [json.loads(x) for x in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps if s["kind"] == "step"][-1] >= 2


TEMPLATE = ("--template", "<s1> It was <slot>.", "--verbalizer", "0=bad", "--verbalizer", "1=good")
# (arguments, files to write first, the exact line printed, exit code) for each user error.
USER_ERRORS: list[tuple[tuple[str, ...], dict[str, str], str, int]] = [
    (("fit", "--train", "missing.csv", "--dev", "d.csv", *TEMPLATE), {},
     "data file missing.csv does not exist", 2),
    (("fit", "--task", "nope"), {},
     "no preset task 'nope'; presets are ['citation_intent', 'cola', 'hyperpartisan', 'mnli', "
     "'mrpc', 'qnli', 'qqp', 'rct', 'rte', 'sciie', 'sst2'] (or build a Task)", 2),
    (("fit", "--train", "e.csv", "--dev", "e.csv", *TEMPLATE),
     {"e.csv": "review,label\nfine film,1\nbad film,0\n"},
     "e.csv, line 2: no column 'text' (the row has ['review', 'label'])", 2),
    (("fit", "--task", "sst2", "--template", "<s1> no slot"), {},
     "task 'sst2': template '<s1> no slot' must contain exactly one <slot>", 2),
    (("fit", "--train", "f.csv", "--dev", "f.csv", *TEMPLATE),
     {"f.csv": "text,label\nfine film,5\nbad film,0\n"},
     "f.csv, line 2: label '5' is not a label of task 'custom'; valid labels are ['0', '1']", 2),
    (("fit", "--task", "sst2", "--verbalizer", "0=bad", "--verbalizer", "2=good"), {},
     "task 'sst2': label '1' is not one of ['0', '2']", 2),
    (("fit", "--task", "sst2", "--backend", "openai:davinci-002"), {},
     "no OpenAI API key: pass api_key= or set OPENAI_API_KEY", 2),
    (("fit", "--task", "sst2", "--backend", "openai:my-model", "--base-url",
      "http://127.0.0.1:{port}/v1"), {},
     "no price for model 'my-model' in bdpl's price table; give --price-input and "
     "--price-output (USD per 1M tokens)", 2),
    (("fit", "--task", "sst2", "--max-queries", "5"), {},
     "the budget is too small for one training step: it needs up to 128 queries and "
     "--max-queries leaves 5; raise --max-queries or lower --sample-size/--batch-size", 2),
    (("fit", "--task", "sst2", "--max-queries", "130", "--calibration", "content-free"), {},
     "the budget is too small for one training step: it needs up to 144 queries and "
     "--max-queries leaves 130; raise --max-queries or lower --sample-size/--batch-size", 2),
    (("fit", "--task", "sst2", "--backend", "bogus"), {},
     "unknown backend 'bogus'; use one of: fake[:seed=N,latency=S,noise=X], local, "
     "hf-causal:<name-or-path>, hf-mlm:<name-or-path>, openai:<model>, openai-chat:<model>", 2),
    (("fit", "--resume", "old"),
     {"old/run.json": '{"format": 99}', "old/config.toml": 'task = "sst2"\n'},
     "old was written by an incompatible bdpl (run format 99, this bdpl reads 1); start a "
     "new run folder", 2),
    (("fit", "--resume", "old", "--epochs", "3"),
     {"old/run.json": '{"format": 1}', "old/config.toml": 'task = "sst2"\n'},
     "--resume old: the arguments differ from the run's (epochs); resume with the same "
     "arguments, or start a new run folder", 2),
    (("fit", "--config", "nope.toml"), {}, "config file nope.toml not found", 2),
    (("fit", "--task", "sst2", "--max-input-tokens", "100"), {},
     "--max-input-tokens applies to the local backends only (local, hf-causal:, hf-mlm:); "
     "remove it for 'fake'", 2),
    (("fit", "--task", "sst2", "--backend", "openai:m", "--base-url", "http://127.0.0.1:9/v1",
      "--price-input", "1", "--price-output", "1"), {},
     "cannot reach the server at http://127.0.0.1:9/v1 (Connection refused); check that it "
     "is running and that --base-url is right", 2),
]  # fmt: skip


@pytest.mark.parametrize(("args", "files", "message", "code"), USER_ERRORS)
def test_user_errors_print_one_line_and_exit_non_zero(
    bdpl: Run, tmp_path: Path, args: tuple[str, ...], files: dict[str, str], message: str, code: int
) -> None:
    listener = socket.create_server(("127.0.0.1", 0))  # a port that accepts, for {port}
    args = tuple(a.replace("{port}", str(listener.getsockname()[1])) for a in args)
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    done = bdpl(*args)
    assert done.returncode == code
    assert done.stderr.strip().splitlines()[-1] == f"bdpl: error: {message}"
    assert "Traceback" not in done.stderr
    debug = bdpl("--debug", *args)
    assert debug.returncode != 0 and "Traceback" in debug.stderr
    listener.close()


def test_plot_writes_two_pngs(bdpl: Run, tmp_path: Path) -> None:
    assert bdpl(*FIT, "--out", "run", "-q").returncode == 0
    done = bdpl("plot", "run", "--out", "figures")
    assert done.returncode == 0, done.stderr
    written = [Path(line) for line in done.stdout.splitlines()]
    assert [p.name for p in written] == ["curves.png", "positions.png"]
    for path in written:
        data = (tmp_path / path).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5000


def test_cache_check_and_repair_a_damaged_cache(bdpl: Run, tmp_path: Path) -> None:
    assert bdpl(*FIT, "--out", "run", "--cache", "c", "-q").returncode == 0
    healthy = bdpl("cache", "check", "--dir", "c")
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    (tmp_path / "c" / "cache.db").write_bytes(b"")  # truncated to 0 bytes
    refused = bdpl(*FIT, "--out", "again", "--cache", "c", "-q")
    assert refused.returncode == 2
    message = refused.stderr.strip().splitlines()[-1]
    assert message.startswith("bdpl: error: the query cache at c is damaged")
    assert "bdpl cache repair --dir c" in message
    assert bdpl("cache", "check", "--dir", "c").returncode == 1
    repaired = bdpl("cache", "repair", "--dir", "c")
    assert repaired.returncode == 0, repaired.stderr
    assert any(p.name.startswith("c.damaged-") for p in tmp_path.iterdir())
    assert bdpl("cache", "check", "--dir", "c").returncode == 0


def test_explain_a_run(bdpl: Run, tmp_path: Path) -> None:
    assert bdpl(*FIT, "--out", "run", "-q").returncode == 0
    done = bdpl("explain", "run", "--json", "--top", "3")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    saved = json.loads((tmp_path / "run" / "explanation.json").read_text())
    assert result == saved and result["split"] == "dev"
    assert len(result["positions"]) == 3 and all(len(p["top"]) == 3 for p in result["positions"])
    text = bdpl("explain", "run")
    assert text.returncode == 0 and text.stdout.startswith("prompt [")
