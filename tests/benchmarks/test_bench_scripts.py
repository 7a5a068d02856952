"""The benchmark scripts run (tiny settings), so a later session can trust them on a GPU."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_mlm_benchmark_smoke_runs_on_cpu(tmp_path: Path) -> None:
    main: Any = runpy.run_path(str(ROOT / "benchmarks" / "bench_gpu_mlm.py"))["main"]
    out = main(["--smoke", "--device", "cpu", "--json", str(tmp_path / "r.json")])
    assert out["arch"] == "tiny" and (tmp_path / "r.json").is_file()
    for path in ("full", "mask", "backend"):
        assert out[path]["tokens_per_s"] > 0
        assert 0 < out[path]["fraction_of_peak"] < 1


def test_flop_count_matches_the_parameter_count() -> None:
    """Encoder matmul FLOPs per token ~ 2 x its weight-matrix parameters (short sequences)."""
    syn: Any = runpy.run_path(str(ROOT / "benchmarks" / "synthetic.py"))
    model = syn["random_roberta"]("tiny")
    matrices = sum(
        p.numel()
        for n, p in model.roberta.encoder.named_parameters()
        if n.endswith("weight") and p.dim() == 2
    )
    assert syn["encoder_flops_per_token"]("tiny", 0) == pytest.approx(2 * matrices)
