"""benchmarks/bench_gpu.py must stay runnable for the day a GPU is at hand: without CUDA it
says so and exits 0, and its sections run end to end on the CPU at tiny sizes."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks" / "bench_gpu.py"
ENV = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the benchmark would measure")
def test_without_cuda_it_says_so_and_exits_0():
    out = subprocess.run([sys.executable, str(BENCH)], capture_output=True, text=True, env=ENV, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "no CUDA device" in out.stdout


@pytest.mark.slow
def test_every_section_runs_on_the_cpu():
    out = subprocess.run([sys.executable, str(BENCH), "--cpu-smoke", "--sections", "2", "3"], capture_output=True,
                         text=True, env=ENV, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "patches/s" in out.stdout and out.stdout.count(" workers: ") == 2
