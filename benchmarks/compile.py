"""Compiled training steps against eager, cold compile included, in one run.

For each model (``seed_moons``, ``glow_digits``, and glow_digits with K = 16 steps per level)
and each way of running it, a fresh process with an empty inductor cache
(``TORCHINDUCTOR_CACHE_DIR`` set to a new temporary directory) builds the flow, runs its
data-dependent initialisation, and times training steps (``bits_per_dim`` or ``-log_prob``
mean, backward, Adam as ``flowspec train`` makes it):

- ``eager``: no compilation;
- ``regional``: :func:`flowspec.nn.regions.compile_regions` (what ``--compile`` does);
- ``whole``: ``torch.compile`` of the whole ``log_prob`` (the baseline regional compilation
  should beat on cold compile time).

It prints the time of the first two steps (the cold compile), the median step time over the
next ones (wall clock and CPU time: the machine is shared), the speed-up over eager, and the
number of steps after which the compiled run has caught up with the eager one.

Run: ``python benchmarks/compile.py [--steps 40] [--models seed_moons glow_digits glow16]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODES = ("eager", "regional", "whole")


def spec_of(name: str) -> Any:
    import flowspec

    if name == "seed_moons":
        return ROOT / "specs" / "seed_moons.yaml"
    spec = flowspec.load_spec(ROOT / "specs" / "glow_digits.yaml").model_dump(mode="json")
    if name.startswith("glow") and name != "glow_digits":
        for level in spec["levels"]:
            level["steps"][0]["repeat"] = int(name.removeprefix("glow"))
    return spec


def child(name: str, mode: str, steps: int) -> None:
    import torch

    import flowspec
    from flowspec.data import load_splits
    from flowspec.nn.regions import compile_regions

    torch.set_num_threads(1)
    torch.manual_seed(0)
    flow = flowspec.compile(spec_of(name))
    if flow.input_shape == (2,):
        data = torch.from_numpy(load_splits("moons", (2,)).train).float()
        batch = 128
    else:
        data = torch.from_numpy(load_splits("digits", (1, 8, 8)).train)
        batch = 64
    with torch.no_grad():
        flow(data[:512])
    opt = torch.optim.Adam(flow.parameters(), lr=1e-4, fused=True)
    loss_of = flow.bits_per_dim
    if mode == "regional":
        compile_regions(flow)
    elif mode == "whole":
        loss_of = torch.compile(flow.bits_per_dim)
    gen = torch.Generator().manual_seed(0)
    batches = [data[torch.randint(len(data), (batch,), generator=gen)] for _ in range(steps + 2)]

    def step(x: Any) -> None:
        loss = loss_of(x).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    start = time.perf_counter()
    step(batches[0])
    step(batches[1])
    first = time.perf_counter() - start
    wall, cpu = [], []
    for x in batches[2:]:
        w, c = time.perf_counter(), time.process_time()
        step(x)
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    print(
        json.dumps({"first": first, "wall": statistics.median(wall), "cpu": statistics.median(cpu)})
    )


def measure(name: str, mode: str, steps: int) -> dict[str, float]:
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": tempfile.mkdtemp(prefix="inductor-")}
    command = [sys.executable, __file__, "--child", name, mode, "--steps", str(steps)]
    run = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="timed steps after the first two")
    parser.add_argument("--models", nargs="+", default=["seed_moons", "glow_digits", "glow16"])
    parser.add_argument("--modes", nargs="+", default=list(MODES))
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.steps)
        return
    import torch

    print(f"torch {torch.__version__}, 1 thread, {os.cpu_count()} CPUs (shared machine)")
    header = f"{'model':12}{'mode':10}{'first 2 steps s':>16}{'step ms wall':>14}"
    print(header + f"{'step ms CPU':>13}{'speed-up':>10}{'break-even steps':>18}")
    for name in args.models:
        rows = {mode: measure(name, mode, args.steps) for mode in args.modes}
        base = rows.get("eager")
        for mode, row in rows.items():
            speed = even = ""
            if base is not None and mode != "eager":
                speed = f"{base['cpu'] / row['cpu']:.2f}x"
                cold = row["first"] - 2 * base["wall"]
                gain = base["wall"] - row["wall"]
                even = f"{cold / gain:,.0f}" if gain > 0 else "never"
            print(
                f"{name:12}{mode:10}{row['first']:16.1f}{1e3 * row['wall']:14.2f}"
                f"{1e3 * row['cpu']:13.2f}{speed:>10}{even:>18}"
            )


if __name__ == "__main__":
    main()
