"""``benchmarks/bench_store_scale.py --quick`` runs end to end on a local folder: every figure
the issue asks for is printed with its target and a verdict (the sizes are the smoke test's,
so the figures themselves are not checked here)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quick_run_prints_every_figure_with_its_target():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_store_scale.py"), "--quick",
                          "--backends", "local", "--repeats", "5"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    assert "FAILED" not in text
    assert len(re.findall(r"trial-start read, +[\d,]+ trials stored: median [\d.]+ ms .*target <= 50 ms", text)) == 2
    assert re.search(r"compact 1,000 trials \(3,000 files, 204,000 rows\): [\d.]+ s = [\d,]+ files/s", text)
    boards = re.findall(r"leaderboard \+ paired tests, .*: [\d.]+ s median of 3 .*peak RSS [\d.]+ GiB "
                        r"\(target <= [\d.]+ GiB: (?:ok|OVER TARGET)\); 4 rows, n per variant \[(\d+)\]", text)
    assert boards == ["275", "50"], text
