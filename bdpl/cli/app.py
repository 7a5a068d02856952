"""The ``bdpl`` command: learn, estimate, evaluate and account for discrete prompts.

Exit codes: 0 success; 1 the work failed (a backend error, the budget too small for one
step); 2 a usage or input problem (bad option, missing file, unknown task or column, a run
folder that cannot be resumed); 130 interrupted. Errors print one line, ``bdpl: error: ...``,
naming the problem and the fix; ``bdpl --debug ...`` shows the traceback instead.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from bdpl.cli.config import RunConfig, read_config
from bdpl.errors import (
    BackendConnectionError,
    BackendError,
    BDPLError,
    BudgetExceededError,
)

F = TypeVar("F", bound=Callable[..., Any])

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Group(click.Group):
    """Turns bdpl's errors into one line and an exit code (a traceback with ``--debug``)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("bdpl: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except Exception as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            code = EXIT_FAILED if isinstance(exc, BackendError | BudgetExceededError) else 2
            if not isinstance(exc, BDPLError | OSError):
                code = EXIT_FAILED
            message = str(exc) or type(exc).__name__
            if isinstance(exc, BackendConnectionError):
                message += "; check that the server is running and --base-url is right"
            click.echo(f"bdpl: error: {message}", err=True)
            sys.exit(code)


def _verbalizer(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> dict[str, str] | None:
    if not value:
        return None
    out: dict[str, str] = {}
    for item in value:
        label, sep, word = item.partition("=")
        if not sep or not label or not word:
            raise click.BadParameter(f"{item!r} is not LABEL=WORD (e.g. 0=terrible)")
        out[label] = word
    return out


_RUN_OPTIONS: list[Callable[[F], F]] = [
    click.option("--config", type=click.Path(dir_okay=False, path_type=Path),
                 help="A TOML file of settings (a run folder's config.toml); options override it."),
    click.option("--task", help="A preset task (see `bdpl data`), e.g. sst2."),
    click.option("--data-seed", type=int, help="Seed of the preset's 16-shot split [13]."),
    click.option("--k", type=int, help="Examples per class in train and dev [16]."),
    click.option("--train", help="Your training file (CSV, TSV, JSONL or JSON)."),
    click.option("--dev", help="Your dev file (chooses the prompt)."),
    click.option("--test", help="Your test file (optional)."),
    click.option("--text-a", help="Column of the (first) text [text]."),
    click.option("--text-b", help="Column of the second text, for pair tasks."),
    click.option("--label", help="Column of the label [label]."),
    click.option("--template", help="Template with <s1> (and <s2>) and one <slot>."),
    click.option("--verbalizer", multiple=True, callback=_verbalizer,
                 help="LABEL=WORD, once per label (e.g. --verbalizer 0=terrible)."),
    click.option("--metric", help="accuracy, f1, macro_f1 or matthews [preset's or accuracy]."),
    click.option("--test-rows", type=int, help="Evaluate on the first N test rows only."),
    click.option("--backend", help="fake, local, hf-causal:<name>, hf-mlm:<name>, "
                 "openai:<model> or openai-chat:<model> [fake]."),
    click.option("--base-url", help="An OpenAI-compatible server's URL (openai backends)."),
    click.option("--price-input", type=float, help="USD per 1M input tokens (a model the "
                 "price table lacks)."),
    click.option("--price-output", type=float, help="USD per 1M output tokens."),
    click.option("--max-input-tokens", type=int, help="Local backends: cut each query's "
                 "inputs to this many tokens [hf-mlm 400, as the BDPL reference; causal LMs: "
                 "none]."),
    click.option("--prompt-length", type=int, help="Prompt positions [3]."),
    click.option("--sample-size", type=int, help="Prompts sampled per step [8]."),
    click.option("--batch-size", type=int, help="Training examples per step [16]."),
    click.option("--epochs", type=int, help="Passes over the training set [10]."),
    click.option("--learning-rate", type=float, help="Step size [the estimator's]."),
    click.option("--estimator", type=click.Choice(["loo", "loo-rank", "reference"]),
                 help="Gradient estimator [loo]."),
    click.option("--loss", type=click.Choice(["ce", "hinge"]), help="Loss [ce]."),
    click.option("--vocab-size", type=int, help="Prompt candidates to build [200]."),
    click.option("--vocab-source", type=click.Choice(["train", "pool", "english"]),
                 help="Where candidates come from: the training texts' PMI n-grams (filled up "
                 "with English words), the same with the preset's pool as unlabelled text, or "
                 "frequent English words alone [train]."),
    click.option("--seed", type=int, help="Seed of sampling and shuffling [0]."),
    click.option("--selection", type=click.Choice(["paired", "above-chance", "best-dev"]),
                 help="Keep the learned prompt only if it beats the manual one clearly on dev "
                 "(paired), or if it is better on train and dev pooled and clearly above "
                 "chance there (above-chance); or keep the best-dev prompt (best-dev) "
                 "[above-chance]."),
    click.option("--calibration", type=click.Choice(["none", "content-free", "batch"]),
                 help="Remove the label prior in training and prediction [none]."),
    click.option("--alpha", type=float, help="Significance level of the paired and "
                 "above-chance selections [0.05]."),
    click.option("--max-dollars", type=float, help="Budget: dollars."),
    click.option("--max-queries", type=int, help="Budget: paid queries."),
    click.option("--max-tokens", type=int, help="Budget: tokens."),
]  # fmt: skip


def run_options(f: F) -> F:
    """The settings ``fit`` and ``estimate`` share (every key of :class:`RunConfig`)."""
    for option in reversed(_RUN_OPTIONS):
        f = option(f)
    return f


def resolve_config(options: dict[str, Any]) -> RunConfig:
    """The config file's settings with the given options on top."""
    path = options.pop("config", None)
    base = read_config(path) if path is not None else RunConfig()
    return base.merged(options)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.option("-v", "--verbose", count=True, help="Log more (-v info, -vv debug).")
@click.pass_context
def main(ctx: click.Context, debug: bool, verbose: int) -> None:
    """Learn discrete prompts for language models you can only query (BDPL)."""
    ctx.obj = {"debug": debug}
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


@main.command()
@run_options
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="The run folder to write [runs/<task>-<backend>-<seed>].",
)
@click.option(
    "--resume",
    type=click.Path(file_okay=False, path_type=Path),
    help="Continue a killed run from its last checkpoint (same arguments).",
)
@click.option("--cache", help="Query cache directory, or 'off' [the user cache].")
@click.option("--call-log", help="Fake backend only: log every answered call (JSONL).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
def fit(out: Path | None, resume: Path | None, cache: str | None, call_log: str | None,
        quiet: bool, **options: Any) -> None:  # fmt: skip
    """Learn a prompt and write a run folder (config, prompt, metrics, ledger, history)."""
    from bdpl.cli.progress import StepBar
    from bdpl.cli.runs import fit_run

    if resume is not None and options.get("config") is None:
        saved = resume / "config.toml"
        options["config"] = saved if saved.is_file() else None
    config = resolve_config(options)
    name = f"{config.task or 'custom'}-{config.backend}-{config.seed}".replace(":", "_")
    run = resume or out or Path("runs") / name
    with StepBar(enabled=not quiet) as bar:
        metrics = fit_run(
            config, run, resume=resume is not None, cache=cache, call_log=call_log,
            on_step=bar.update,
        )  # fmt: skip
    if not quiet:
        click.echo(f"run folder: {run}")
        click.echo(f"prompt: {metrics['prompt']!r}  ({metrics['stop_reason']})")
        selection = metrics.get("selection")
        if selection is not None and selection["kept_manual"]:
            click.echo(
                "kept the manual prompt: no learned prompt beat it clearly on dev "
                f"({selection['candidates']} looked at)"
            )
        for split in ("dev", "test"):
            if split in metrics:
                m = metrics[split]
                click.echo(f"{split} {metrics['metric']}: manual {m['manual']:.4f}, "
                           f"learned {m['learned']:.4f}")  # fmt: skip
        q = metrics["queries"]
        click.echo(f"paid queries {q['paid']:,}, cached {q['cached']:,}, ${q['dollars']:.4f}")


@main.command()
@run_options
def estimate(**options: Any) -> None:
    """Worst-case queries, requests, tokens and dollars of `bdpl fit`; calls no model."""
    from bdpl.cli.runs import build_meter, load_data, optimizer_settings, vocabulary_of
    from bdpl.optimizer import Optimizer

    config = resolve_config(options)
    data = load_data(config)
    with build_meter(config, ledger=None, cache="off", check=False) as meter:
        optimizer = Optimizer(task=data.task, meter=meter, candidates=vocabulary_of(config, data),
                              **optimizer_settings(config))  # fmt: skip
        cost = optimizer.estimate_cost(data.train, data.dev)
    click.echo(
        json.dumps(
            {
                "queries": cost.queries,
                "requests": cost.requests,
                "prompt_tokens": cost.prompt_tokens,
                "completion_tokens": cost.completion_tokens,
                "tokens": cost.tokens,
                "dollars": cost.dollars,
                "model": cost.model,
            },
            indent=1,
        )
    )


@main.command(name="eval")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--backend", help="Evaluate with this backend instead of the run's (transfer).")
@click.option("--base-url", help="An OpenAI-compatible server's URL (openai backends).")
@click.option(
    "--split",
    default="test",
    show_default=True,
    help="A split of the run's preset task: train, dev or test.",
)
@click.option("--data", "data_file", help="Your file instead of a preset split.")
@click.option("--text-a", default="text", show_default=True, help="Column of the first text.")
@click.option("--text-b", help="Column of the second text.")
@click.option("--label", default="label", show_default=True, help="Column of the label.")
@click.option("--rows", type=int, help="Only the first N rows.")
@click.option("--cache", help="Query cache directory, or 'off'.")
@click.option(
    "--price-input",
    type=float,
    help="USD per 1M input tokens (a model the price "
    "table lacks; another --backend never takes the run's prices).",
)
@click.option("--price-output", type=float, help="USD per 1M output tokens.")
def eval_(source: Path, backend: str | None, base_url: str | None, split: str,
          data_file: str | None, text_a: str, text_b: str | None, label: str,
          rows: int | None, cache: str | None, price_input: float | None,
          price_output: float | None) -> None:  # fmt: skip
    """Evaluate a saved prompt (a run folder or prompt file) on a split or a file."""
    from bdpl.cli.evaluate import evaluate_prompt

    result = evaluate_prompt(
        source, backend=backend, base_url=base_url, split=split, data_file=data_file,
        text_a=text_a, text_b=text_b, label=label, rows=rows, cache=cache,
        price_input=price_input, price_output=price_output,
    )  # fmt: skip
    click.echo(json.dumps(result, indent=1))


@main.command()
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the totals as JSON.")
def ledger(source: Path, as_json: bool) -> None:
    """What was spent and saved: SOURCE is a run folder, a folder of runs or a ledger file."""
    from bdpl.cli.accounts import ledger_report

    click.echo(ledger_report(source, as_json=as_json))


@main.command()
@click.argument("sweep_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="The sweep's folder [sweeps/<file name>].",
)
@click.option(
    "--workers",
    help="0: in this process; N: N local processes; tcp://HOST:PORT: "
    "a Dask scheduler [one process per core].",
)
@click.option(
    "--cache",
    help="Query cache directory, redis://HOST:PORT/DB (shared by hosts), "
    "or 'off' [the user cache].",
)
@click.option("--call-log", help="Fake backend only: log every answered call (JSONL).")
def sweep(sweep_file: Path, out: Path | None, workers: str | None, cache: str | None,
          call_log: str | None) -> None:  # fmt: skip
    """Run a grid of fits (SWEEP_FILE, TOML); rerun to skip finished cells and resume killed
    ones. Writes a run folder per cell and results.csv/results.json (mean ± std over seeds)."""
    from bdpl.sweep import read_sweep, run_sweep

    grid = read_sweep(sweep_file)
    where: int | str | None = None
    if workers is not None:
        where = int(workers) if workers.isdigit() else workers
    folder = out or Path("sweeps") / sweep_file.stem
    report = run_sweep(
        grid, folder, workers=where, cache=cache, call_log=call_log,
        on_cell=lambda name, status: click.echo(f"{name}: {status}", err=True),
    )  # fmt: skip
    click.echo(f"sweep folder: {folder}  ({len(report.ran)} run, {len(report.skipped)} "
               f"skipped, {len(report.failed)} failed)")  # fmt: skip
    if report.failed:
        sys.exit(EXIT_FAILED)


@main.group()
def cache() -> None:
    """The query cache: where it is, how big, and clearing it."""


@cache.command(name="info")
@click.option("--dir", "directory", help="The cache directory [the user cache].")
def cache_info(directory: str | None) -> None:
    """Location, entries and size on disk."""
    from bdpl.cli.accounts import cache_info as info

    click.echo(json.dumps(info(directory), indent=1))


@cache.command(name="clear")
@click.option("--dir", "directory", help="The cache directory [the user cache].")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def cache_clear(directory: str | None, yes: bool) -> None:
    """Delete every cached answer (they will be paid for again)."""
    from bdpl.cli.accounts import cache_clear as clear

    if not yes:
        click.confirm("Delete every cached answer? They will be paid for again", abort=True)
    click.echo(f"removed {clear(directory):,} cached answers")


@cache.command(name="check")
@click.option("--dir", "directory", help="The cache directory [the user cache].")
def cache_check(directory: str | None) -> None:
    """Report readable, verified, unreadable and mismatched answers (exit 1 if damaged)."""
    from bdpl.cli.accounts import cache_dir
    from bdpl.metering import check_cache

    report = check_cache(cache_dir(directory))
    click.echo(str(report))
    if not report.ok:
        sys.exit(EXIT_FAILED)


@cache.command(name="repair")
@click.option("--dir", "directory", help="The cache directory [the user cache].")
def cache_repair(directory: str | None) -> None:
    """Keep every readable, verified answer in a fresh cache; move the damaged one aside.
    Stop other processes using the cache first."""
    from bdpl.cli.accounts import cache_dir
    from bdpl.metering import repair_cache

    click.echo(str(repair_cache(cache_dir(directory))))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def data(as_json: bool) -> None:
    """The preset tasks and where each split comes from."""
    from bdpl.cli.accounts import data_table

    click.echo(data_table(as_json=as_json))


@main.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--split", default="dev", show_default=True, help="train, dev or test.")
@click.option("--top", default=5, show_default=True, help="Candidates listed per position.")
@click.option("--cache", help="Query cache directory, or 'off'.")
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
def explain(run: Path, split: str, top: int, cache: str | None, as_json: bool) -> None:
    """Each position's top candidates, and the metric's change when its phrase is removed or
    replaced by the next-best one (saved as RUN/explanation.json; queries are metered)."""
    from bdpl.cli.explaining import explain_run, format_explanation

    result = explain_run(run, split=split, top=top, cache=cache)
    click.echo(json.dumps(result, indent=1) if as_json else format_explanation(result))


@main.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the PNG files [the run folder].",
)
@click.option("--top", default=8, show_default=True, help="Candidates shown per position.")
def plot(run: Path, out: Path | None, top: int) -> None:
    """PNG figures of a run: loss and dev metric against paid queries; each position's
    top candidates over training (needs matplotlib: pip install 'bdpl[plot]')."""
    from bdpl.cli.plots import plot_run

    for path in plot_run(run, out, top=top):
        click.echo(str(path))
