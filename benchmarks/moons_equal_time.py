"""A TarFlow-style stack against RealNVP on two moons, at equal training time.

``specs/tarflow_moons.yaml`` (2 tokens of one value each, causal-transformer blocks of
alternating direction) and ``specs/realnvp_moons.yaml`` (affine couplings with MLPs) are timed
per optimizer step in the same process, interleaved (median of ``--reps`` rounds of
``--timing-steps`` steps each). RealNVP trains for its spec's own schedule; TarFlow gets as many
steps as fit in the same time at its measured speed (its spec's learning-rate schedule stretched
or shrunk to that length). Both are then scored on the same test split, next to the exact NLL of
the data's own density. Prints one row per model and the time ratio of the two runs.

Run: ``python benchmarks/moons_equal_time.py [--reps 5] [--timing-steps 20]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import flowspec
from flowspec.data import load_splits, moons_log_density
from flowspec.spec.training import TrainSpec
from flowspec.training.evaluate import evaluate

ROOT = Path(__file__).resolve().parent.parent
SPECS = {
    "realnvp": ROOT / "specs" / "realnvp_moons.yaml",
    "tarflow": ROOT / "specs" / "tarflow_moons.yaml",
}


def step_seconds(flow: flowspec.Flow, x: torch.Tensor, steps: int) -> float:
    """Seconds per Adam step of ``flow`` on batch ``x`` (after a warm-up step)."""
    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-4)
    start = None
    for i in range(steps + 1):
        if i == 1:
            start = time.perf_counter()
        loss = -flow.log_prob(x).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--timing-steps", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    specs = {name: flowspec.load_spec(path) for name, path in SPECS.items()}
    splits = load_splits("moons", (2,), seed=0)
    batch = torch.from_numpy(splits.train[: specs["realnvp"].train.batch_size]).float()
    timings: dict[str, list[float]] = {name: [] for name in specs}
    flows = {name: flowspec.compile(spec) for name, spec in specs.items()}
    for _ in range(args.reps):  # interleaved, so machine noise hits both alike
        for name, flow in flows.items():
            timings[name].append(step_seconds(flow, batch, args.timing_steps))
    per_step = {name: statistics.median(t) for name, t in timings.items()}
    base = specs["realnvp"].train
    realnvp_steps = base.steps or base.epochs * (len(splits.train) // base.batch_size)
    budget = realnvp_steps * per_step["realnvp"]
    steps = {"realnvp": realnvp_steps, "tarflow": max(1, round(budget / per_step["tarflow"]))}
    exact = float(-np.mean(moons_log_density(splits.test)))
    print(
        f"two moons, {len(splits.train)} train / {len(splits.test)} test points, 1 thread; "
        f"step times: median of {args.reps} x {args.timing_steps} interleaved steps"
    )
    widths = {"model": -8, "params": 8, "ms/step": 8, "steps": 6, "train s": 8, "test NLL": 9}
    print(" ".join(f"{h:<{-w}}" if w < 0 else f"{h:>{w}}" for h, w in widths.items()))
    seconds = {}
    for name, spec in specs.items():
        config = spec.train.model_copy(update={"steps": steps[name], "epochs": None})
        result = flowspec.train(spec, data=splits, config=TrainSpec(**config.model_dump()))
        seconds[name] = result.seconds
        score = evaluate(result.flow, splits.test)
        print(
            f"{name:8s} {result.flow.num_parameters():8d} {1e3 * per_step[name]:8.2f} "
            f"{steps[name]:6d} {result.seconds:8.1f} {score.nll:9.4f}"
        )
    print(f"exact density of the data: test NLL {exact:.4f} nats")
    print(f"training time tarflow / realnvp: {seconds['tarflow'] / seconds['realnvp']:.2f}")


if __name__ == "__main__":
    main()
