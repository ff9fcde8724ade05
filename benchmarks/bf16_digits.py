"""bf16 against float32 on glow_digits: the training curves, and the seed-to-seed noise.

Trains ``specs/glow_digits.yaml`` (its own settings: 40 epochs, early stopping) with float32
and with bf16 networks (``train: {precision: bf16}``) for each of ``--seeds`` seeds, and prints
the validation bits/dim per epoch of every run, then each run's test bits/dim (float32 scoring,
as ``flowspec eval``). bf16 is within noise when its gap to float32 at the same seed is no larger
than the gap between two float32 seeds.

Run: ``python benchmarks/bf16_digits.py [--seeds 0 1] [--epochs 40]`` (minutes on one CPU thread)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import flowspec
from flowspec.data import load_splits
from flowspec.spec.training import TrainSpec
from flowspec.training.evaluate import evaluate

SPEC = Path(__file__).resolve().parent.parent / "specs" / "glow_digits.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=None, help="default: the spec's")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = flowspec.load_spec(SPEC)
    base = spec.train or TrainSpec()
    if args.epochs:
        base = base.model_copy(update={"epochs": args.epochs})
    test = load_splits("digits", (1, 8, 8)).test
    curves: dict[str, list[float]] = {}
    scores: dict[str, float] = {}
    for seed in args.seeds:
        for precision in ("float32", "bf16"):
            config = base.model_copy(update={"seed": seed, "precision": precision})
            start = time.perf_counter()
            result = flowspec.train(spec, config=config, figures=False)
            label = f"{precision} seed {seed}"
            curves[label] = [row["bits_per_dim"] for row in result.history]
            scores[label] = evaluate(result.flow, test).bits_per_dim
            print(f"{label}: {len(curves[label])} epochs in {time.perf_counter() - start:.0f} s, "
                  f"best val {min(curves[label]):.4f}, test {scores[label]:.4f} bits/dim",
                  flush=True)  # fmt: skip
    print("\nvalidation bits/dim per epoch")
    labels = list(curves)
    print("epoch " + "".join(f"{label:>18}" for label in labels))
    for epoch in range(max(len(c) for c in curves.values())):
        cells = [f"{c[epoch]:18.4f}" if epoch < len(c) else " " * 18 for c in curves.values()]
        print(f"{epoch + 1:>5} " + "".join(cells))
    for seed in args.seeds:
        gap = scores[f"bf16 seed {seed}"] - scores[f"float32 seed {seed}"]
        print(f"test bits/dim, seed {seed}: bf16 - float32 = {gap:+.4f}")
    if len(args.seeds) > 1:
        f32 = [scores[f"float32 seed {s}"] for s in args.seeds]
        print(f"float32 seed-to-seed spread (the noise): {max(f32) - min(f32):.4f}")


if __name__ == "__main__":
    main()
