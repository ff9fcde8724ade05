"""Shared by the benchmark scripts: a Glow spec of any size, and running one command in its own
process with a time and memory cap, reporting wall time and peak resident memory."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["glow_spec", "measure", "run_case"]


def glow_spec(channels: int, size: int, levels: int, steps: int) -> str:
    """A Glow spec (no preprocessing) on ``channels x size x size`` inputs."""
    lines = [f"flowspec: 1\nname: glow{size}\ninput: {{shape: [{channels}, {size}, {size}]}}"]
    lines.append("levels:")
    for level in range(levels):
        body = (
            "*step"
            if level
            else (
                "&step [{type: actnorm}, {type: invconv}, {type: affine_coupling, mask: channel, "
                "log_scale: sigmoid, net: {type: glow_conv, channels: 512}}]"
            )
        )
        split = "\n    split: true" if level < levels - 1 else ""
        lines.append(f"  - squeeze: true\n    steps: [{{repeat: {steps}, body: {body}}}]{split}")
    return "\n".join(lines) + "\n"


def _env(root: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}


def run_case(argv: list[str], root: Path, cwd: Path, memory_gb: float, timeout: float) -> dict:
    """Run ``python argv`` capped at ``memory_gb`` of address space and ``timeout`` seconds."""
    cap = int(memory_gb * 2**30)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, *argv],
        cwd=cwd,
        env=_env(root),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=limit,
    )
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        timed_out = True
    seconds = time.perf_counter() - start
    # ru_maxrss of the largest child so far: run cases one at a time and read it right away
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    text = (err or b"").decode(errors="replace").strip().splitlines() or (
        (out or b"").decode(errors="replace").strip().splitlines()
    )
    lines = len((out or b"").splitlines()) + len((err or b"").splitlines())
    located = [line for line in text if "error[" in line]  # a diagnostic: show its first line
    text = located[:1] or text
    return {
        "seconds": seconds,
        "peak_mb": peak,
        "rc": "timeout" if timed_out else proc.returncode,
        "last": text[-1][:110] if text else "",
        "lines": lines,
    }


def measure(argv: list[str], root: Path, memory_gb: float = 4.0, timeout: float = 60.0) -> dict:
    """:func:`run_case` in a fresh wrapper process, so that the peak memory is this command's
    alone (``RUSAGE_CHILDREN`` keeps the largest child of a process)."""
    wrapper = [
        "-c",
        "import json, sys; sys.path.insert(0, sys.argv[1]); from measure import run_case; "
        "from pathlib import Path; print(json.dumps(run_case(json.loads(sys.argv[2]), "
        "Path(sys.argv[3]), Path(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))))",
        str(Path(__file__).parent),
        json.dumps(argv),
        str(Path(root).resolve()),
        str(memory_gb),
        str(timeout),
    ]
    done = subprocess.run([sys.executable, *wrapper], capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])
