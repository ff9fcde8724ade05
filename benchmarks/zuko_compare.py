"""flowspec against zuko (probabilists/zuko) on the shipped spline and MAF specs, side by side.

Pairs, each trained in one run on the same data, batches, steps, schedule and seed:

* ``nsf``: flowspec ``specs/nsf_checkerboard.yaml`` (spline couplings) against zuko's ``NSF``
  (autoregressive splines) on the checkerboard;
* ``nsf-ar``: flowspec's autoregressive spline layers built like zuko's NSF (MADE conditioners,
  spline bound 5) against the same zuko ``NSF``: the same architecture in both libraries;
* ``maf``: flowspec ``specs/maf_spirals.yaml`` (affine MAF with actnorm) against zuko's ``MAF``
  on the spirals.

zuko's hidden width is chosen so that its parameter count is the closest to flowspec's (printed).
Both models see identical batches (one shared permutation per epoch), Adam with the flowspec
spec's learning rate, warm-up and cosine schedule, gradient-norm clipping at 10, one thread.
Training steps alternate between the two models, so machine load hits both alike; the ratio of
median step times is printed (flowspec / zuko: below 1 means flowspec is faster). Test NLL
(nats) is computed on the 5,000-point test split, beside the exact density's
(:func:`flowspec.data.log_density`).

zuko is a benchmark-only dependency: ``pip install -e ".[bench]"``.

Run: ``python benchmarks/zuko_compare.py [--steps 2000] [--pairs nsf maf nsf-ar]``
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

import flowspec
from flowspec.data import load_splits, log_density
from flowspec.spec.training import TrainSpec
from flowspec.training.schedule import learning_rate

ROOT = Path(__file__).resolve().parent.parent

# flowspec's autoregressive spline stack written like zuko's NSF(2, transforms=3): orders
# alternating, MADE 64-64, 8 bins on [-5, 5], a standard normal base.
NSF_AR = {
    "flowspec": 1,
    "name": "nsf_autoregressive",
    "input": {"shape": [2]},
    "layers": [
        {
            "repeat": 3,
            "body": [
                {
                    "type": "autoregressive",
                    "order": "alternating",
                    "transform": {"type": "spline", "bins": 8, "bound": 5.0},
                    "net": {"hidden": [64, 64]},
                }
            ],
        }
    ],
    "data": {"name": "checkerboard"},
    "train": {"lr": 2.0e-3, "warmup_steps": 100, "schedule": "cosine"},
}


@dataclass(frozen=True)
class Pair:
    """A flowspec spec and the zuko flow family it is compared with."""

    spec: object
    zuko: str
    transforms: int


PAIRS = {
    "nsf": Pair(ROOT / "specs" / "nsf_checkerboard.yaml", "NSF", 6),
    "nsf-ar": Pair(NSF_AR, "NSF", 3),
    "maf": Pair(ROOT / "specs" / "maf_spirals.yaml", "MAF", 10),
}


def zuko_flow(family: str, transforms: int, hidden: int) -> nn.Module:
    import zuko

    return getattr(zuko.flows, family)(2, transforms=transforms, hidden_features=(hidden, hidden))


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def matched_width(family: str, transforms: int, target: int) -> int:
    """The hidden width whose zuko flow has the parameter count closest to ``target``."""
    return min(range(8, 257), key=lambda h: abs(count(zuko_flow(family, transforms, h)) - target))


def zuko_log_prob(flow: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: flow().log_prob(x)


def train_side_by_side(
    flows: dict[str, tuple[nn.Module, Callable[[torch.Tensor], torch.Tensor]]],
    train: torch.Tensor,
    config: TrainSpec,
    steps: int,
    seed: int,
) -> dict[str, list[float]]:
    """Train every model on the same batches, alternating steps; the step times of each."""
    optimizers = {name: torch.optim.Adam(m.parameters(), lr=config.lr) for name, (m, _) in
                  flows.items()}  # fmt: skip
    times: dict[str, list[float]] = {name: [] for name in flows}
    generator = torch.Generator().manual_seed(seed)
    batch, per_epoch = config.batch_size, len(train) // config.batch_size
    perm = torch.randperm(len(train), generator=generator)
    for step in range(steps):
        if step and step % per_epoch == 0:
            perm = torch.randperm(len(train), generator=generator)
        start = (step % per_epoch) * batch
        x = train[perm[start : start + batch]]
        lr = learning_rate(step, steps, config)
        for name, (module, log_prob) in flows.items():
            optimizer = optimizers[name]
            for group in optimizer.param_groups:
                group["lr"] = lr
            began = time.perf_counter()
            loss = -log_prob(x).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(module.parameters(), 10.0)
            optimizer.step()
            times[name].append(time.perf_counter() - began)
    return times


@torch.no_grad()
def test_nll(log_prob: Callable[[torch.Tensor], torch.Tensor], test: torch.Tensor) -> float:
    return float(-torch.cat([log_prob(chunk) for chunk in test.split(2500)]).double().mean())


def run_pair(name: str, pair: Pair, steps: int, seed: int) -> dict[str, object]:
    spec = flowspec.load_spec(pair.spec)
    data = spec.data.name
    splits = load_splits(data, (2,))
    train, test = torch.from_numpy(splits.train), torch.from_numpy(splits.test)
    config = (spec.train or TrainSpec()).model_copy(update={"batch_size": 256})
    ours = flowspec.compile(spec, seed=seed)
    with torch.no_grad():
        ours(train[:512])  # actnorm's data-dependent initialisation
    width = matched_width(pair.zuko, pair.transforms, ours.num_parameters())
    torch.manual_seed(seed)
    theirs = zuko_flow(pair.zuko, pair.transforms, width)
    times = train_side_by_side(
        {"flowspec": (ours, ours.log_prob), "zuko": (theirs, zuko_log_prob(theirs))},
        train,
        config,
        steps,
        seed,
    )
    ours.eval()
    warm = slice(min(20, steps // 4), None)  # the first steps include allocator warm-up
    median = {k: statistics.median(v[warm]) for k, v in times.items()}
    return {
        "pair": name,
        "data": data,
        "params": (ours.num_parameters(), count(theirs)),
        "zuko": f"{pair.zuko}(transforms={pair.transforms}, hidden=({width}, {width}))",
        "ms": (1000 * median["flowspec"], 1000 * median["zuko"]),
        "nll": (test_nll(ours.log_prob, test), test_nll(zuko_log_prob(theirs), test)),
        "true": float(-np.mean(log_density(data, splits.test))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pairs", nargs="+", default=list(PAIRS), choices=list(PAIRS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{args.steps} steps of batch 256 each, seed {args.seed}, one thread, steps interleaved")
    for name in args.pairs:
        r = run_pair(name, PAIRS[name], args.steps, args.seed)
        (ours_p, theirs_p), (ours_ms, theirs_ms) = r["params"], r["ms"]
        ours_nll, theirs_nll = r["nll"]
        print(
            f"\n[{name}] on {r['data']}: flowspec {ours_p:,} parameters, zuko {r['zuko']} "
            f"{theirs_p:,} ({100 * (theirs_p / ours_p - 1):+.1f}%)\n"
            f"  step time (median): flowspec {ours_ms:.2f} ms, zuko {theirs_ms:.2f} ms, "
            f"ratio flowspec/zuko {ours_ms / theirs_ms:.2f}\n"
            f"  test NLL (nats): flowspec {ours_nll:.4f}, zuko {theirs_nll:.4f}, "
            f"true density {r['true']:.4f}"
        )
        if not all(map(math.isfinite, r["nll"])):
            print("  (a non-finite NLL: that model diverged)")


if __name__ == "__main__":
    main()
