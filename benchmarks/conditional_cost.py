"""What conditioning costs per training step: a conditional spec against its unconditional twin.

Default pair: ``specs/conditional_digits.yaml`` (class-conditional Glow: the digit embedded and
fed to every conditioner, split prior and the base) against ``specs/glow_digits.yaml`` (the same
Glow without a context), on batches of scikit-learn digits with their labels. One step is the
mean NLL, backward, clipping and Adam. Steps alternate between the two flows so machine noise
hits both alike; the ratio of median step times is printed (conditional / unconditional), with
the parameter counts. Both specs train for the same number of steps (40 epochs of 22), so the
ratio is the ratio of their CPU budgets.

Run: ``python benchmarks/conditional_cost.py [--steps 60] [--threads 1]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

import flowspec
from flowspec.data import load_splits

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conditional", default=str(ROOT / "specs" / "conditional_digits.yaml"))
    parser.add_argument("--unconditional", default=str(ROOT / "specs" / "glow_digits.yaml"))
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    flows = {"conditional": flowspec.compile(args.conditional),
             "unconditional": flowspec.compile(args.unconditional)}  # fmt: skip
    cond = flows["conditional"]
    splits = load_splits(cond.spec.data.name, tuple(cond.input_shape), context=cond.spec.context)
    x = torch.from_numpy(splits.train)
    labels = torch.from_numpy(splits.contexts[0])
    optimizers = {k: torch.optim.Adam(f.parameters(), lr=1e-3) for k, f in flows.items()}
    times: dict[str, list[float]] = {k: [] for k in flows}
    generator = torch.Generator().manual_seed(0)
    for _ in range(args.steps):
        index = torch.randint(0, len(x), (args.batch_size,), generator=generator)
        for name, flow in flows.items():
            context = labels[index] if flow.conditional else None
            began = time.perf_counter()
            loss = -flow.log_prob(x[index], context).mean()
            optimizers[name].zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(flow.parameters(), 50.0)
            optimizers[name].step()
            times[name].append(time.perf_counter() - began)
    warm = slice(5, None)
    median = {k: statistics.median(v[warm]) for k, v in times.items()}
    for name, flow in flows.items():
        print(f"{name:>13}: {flow.spec.name}, {flow.num_parameters():,} parameters, "
              f"median step {1000 * median[name]:.1f} ms")  # fmt: skip
    print(
        f"ratio conditional / unconditional: {median['conditional'] / median['unconditional']:.2f}"
    )


if __name__ == "__main__":
    main()
