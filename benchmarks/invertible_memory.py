"""Invertible backprop (``train: {memory: invertible}``) against plain autograd, in one run.

Models, compiled from specs by flowspec (the same flow in both modes, only ``flow.memory``
differs):

* ``glow_digits``: ``specs/glow_digits.yaml`` as shipped (1x8x8, L = 3, K = 6, 48 channels),
  batch 64: small images, so per-step overheads weigh most;
* ``glow32``: Glow on 3x32x32 (CIFAR-10's shape), L = 3 levels of K = 32 steps (actnorm, LU 1x1
  convolution, affine coupling with a 64-channel conv conditioner), learned priors, batch 16 of
  random 8-bit images; and the same with K = 8 and 16, to show saved memory against depth.

For each it prints, plain / invertible and their ratio:

- saved-for-backward bytes of one training step (``SavedTensorMeter``, parameters excluded):
  the activation memory a step holds at its peak;
- peak RSS growth during one training step, in a fresh process per mode, after a warm-up step
  and with glibc told to hand freed memory back at once (allocator caching hides it otherwise);
- the median time of a training step (``bits_per_dim(x).mean()``, backward, Adam), the modes
  interleaved step by step: wall clock and this process's CPU time (the machine is shared, and
  CPU time is what a busy machine disturbs least);

and first the largest difference of the two modes' parameter gradients in float64, relative to
the largest gradient element (the oracle: the tests hold it to 1e-10).

Run: ``python benchmarks/invertible_memory.py [--rounds 5] [--models glow_digits glow32]``
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

import flowspec
from flowspec.nn.saved_memory import SavedTensorMeter

ROOT = Path(__file__).resolve().parent.parent
MODES = ("plain", "invertible")


def glow_spec(k: int, channels: int = 64, size: int = 32) -> dict[str, Any]:
    """Glow on 3 x size x size 8-bit images: 3 levels of ``k`` steps, learned priors."""
    step = [
        {"type": "actnorm"},
        {"type": "invconv", "lu": True},
        {
            "type": "affine_coupling",
            "mask": "channel",
            "log_scale": "sigmoid",
            "net": {"type": "glow_conv", "channels": channels},
        },
    ]
    levels = [
        {"squeeze": True, "steps": [{"repeat": k, "body": step}], "split": level < 2}
        for level in range(3)
    ]
    return {
        "flowspec": 1,
        "name": f"glow_k{k}",
        "input": {"shape": [3, size, size]},
        "preprocess": [{"type": "dequantize", "levels": 256}, {"type": "logit", "alpha": 0.05}],
        "levels": levels,
    }


def model(name: str) -> tuple[flowspec.Flow, torch.Tensor]:
    """The flow (actnorm initialised) and one batch of integer images."""
    torch.manual_seed(0)
    if name == "glow_digits":
        flow = flowspec.compile(ROOT / "specs" / "glow_digits.yaml")
        x = torch.randint(0, 17, (64, 1, 8, 8))
    else:
        flow = flowspec.compile(glow_spec(int(name.removeprefix("glow"))))
        x = torch.randint(0, 256, (16, 3, 32, 32))
    with torch.no_grad():
        flow(x)
    return flow, x


def train_step(flow: flowspec.Flow, opt: torch.optim.Optimizer, x: torch.Tensor) -> None:
    loss = flow.bits_per_dim(x).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def saved_bytes(flow: flowspec.Flow, x: torch.Tensor, mode: str) -> int:
    flow.memory = mode
    with SavedTensorMeter(exclude=flow.parameters()) as meter:
        loss = flow.bits_per_dim(x).mean()
    loss.backward()
    flow.zero_grad(set_to_none=True)
    return meter.nbytes


def gradient_difference(flow: flowspec.Flow, x: torch.Tensor) -> float:
    """max |invertible - plain| over every parameter gradient, in float64, relative to the
    largest gradient element (same dequantisation noise in both)."""
    flow = copy.deepcopy(flow).double()
    grads = {}
    for mode in MODES:
        flow.memory = mode
        torch.manual_seed(1)
        loss = flow.bits_per_dim(x[:4]).mean()
        grads[mode] = torch.autograd.grad(loss, list(flow.parameters()))
    scale = max(float(g.abs().max()) for g in grads["plain"])
    return max(float((a - b).abs().max()) for a, b in zip(*grads.values())) / scale


def vm_kib(field: str) -> int:
    """A ``/proc/self/status`` memory field in KiB (``VmRSS`` now, ``VmHWM`` peak)."""
    with open("/proc/self/status") as status:
        line = next(s for s in status if s.startswith(field + ":"))
    return int(line.split()[1])


def child(name: str, mode: str) -> None:
    """In a fresh process: print the peak-RSS growth (KiB) of a second training step over the
    RSS before it. Writing 5 to ``clear_refs`` resets the peak (Linux)."""
    torch.set_num_threads(1)
    flow, x = model(name)
    flow.memory = mode
    opt = torch.optim.Adam(flow.parameters(), lr=1e-5)
    train_step(flow, opt, x)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = vm_kib("VmRSS")
    train_step(flow, opt, x)
    print(vm_kib("VmHWM") - before)


def peak_rss_mib(name: str, mode: str) -> float:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "16384", "MALLOC_TRIM_THRESHOLD_": "0"}
    command = [sys.executable, __file__, "--child", name, mode]
    run = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return int(run.stdout) / 1024


def step_times(flow: flowspec.Flow, x: torch.Tensor, rounds: int) -> dict[str, dict[str, float]]:
    """Median wall and CPU seconds per training step, the modes alternating step by step."""
    opt = torch.optim.Adam(flow.parameters(), lr=1e-5)
    wall: dict[str, list[float]] = {m: [] for m in MODES}
    cpu: dict[str, list[float]] = {m: [] for m in MODES}
    for r in range(rounds + 1):
        for mode in MODES[:: 1 if r % 2 == 0 else -1]:
            flow.memory = mode
            w, c = time.perf_counter(), time.process_time()
            train_step(flow, opt, x)
            if r > 0:  # the first round warms up
                wall[mode].append(time.perf_counter() - w)
                cpu[mode].append(time.process_time() - c)
    return {
        "step ms (wall)": {m: 1e3 * statistics.median(wall[m]) for m in MODES},
        "step ms (CPU)": {m: 1e3 * statistics.median(cpu[m]) for m in MODES},
    }


def report(name: str, rounds: int) -> None:
    flow, x = model(name)
    print(
        f"\n{name}: {flow.num_parameters():,} parameters, {len(flow.steps)} steps, batch "
        f"{tuple(x.shape)}; float64 gradient difference {gradient_difference(flow, x):.1e}"
    )
    rows = {
        "saved MiB": {m: saved_bytes(flow, x, m) / 2**20 for m in MODES},
        "peak RSS +MiB": {m: peak_rss_mib(name, m) for m in MODES},
        **step_times(flow, x, rounds),
    }
    print(f"  {'':18}{'plain':>12}{'invertible':>12}{'ratio':>8}")
    for quantity, row in rows.items():
        ratio = row["invertible"] / row["plain"]
        print(f"  {quantity:18}{row['plain']:12.3f}{row['invertible']:12.3f}{ratio:8.3f}")


def depth_table() -> None:
    print("\nsaved MiB per training step against depth (3x32x32 Glow, batch 16):")
    print(f"  {'K':>4}{'plain':>12}{'invertible':>12}{'plain / inv.':>14}")
    for k in (8, 16, 32):
        flow, x = model(f"glow{k}")
        plain, inverted = (saved_bytes(flow, x, m) / 2**20 for m in MODES)
        print(f"  {k:>4}{plain:12.2f}{inverted:12.3f}{plain / inverted:14.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=["glow_digits", "glow32"])
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread, {os.cpu_count()} CPUs (shared machine)")
    for name in args.models:
        report(name, args.rounds)
    depth_table()


if __name__ == "__main__":
    main()
