"""``benchmarks/gpu_check.py`` runs its whole path on a CPU with ``--tiny`` (the GPU run uses
the same code at full size)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.helpers import ROOT


def test_gpu_check_runs_tiny_on_cpu() -> None:
    command = [sys.executable, "benchmarks/gpu_check.py", "--tiny", "--device", "cpu",
               "--steps", "4", "--warmup", "1", "--batch-size", "4"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "flow: glow_cifar10 (tiny)" in out and "input [3, 16, 16]" in out
    rates = re.findall(r"(float32|bf16 networks): +([0-9.]+) images/s +([0-9.]+) MiB saved", out)
    assert [r[0] for r in rates] == ["float32", "bf16 networks"]
    assert all(float(rate) > 0 and float(mib) > 0 for _, rate, mib in rates)
    gap = re.search(r"float32 ([0-9.e+-]+), bf16 networks ([0-9.e+-]+);", out)
    assert gap is not None and 0 < float(gap[1]) < float(gap[2]) < 1.0
