"""The optimisation passes on the seed_moons training step, against its GEMM floor and the
hand-written model, in one run.

Contenders, each a full training step at batch 128 (``-log_prob(x).mean()``, backward, Adam with
its fused kernel as ``flowspec train`` uses it), interleaved round by round:

- ``GEMM floor``: the same matrix products as the model's forward and backward (per coupling,
  two towers of 2 -> 256 -> 256 -> 2 linear layers: ``x W^T`` forward, ``g W`` and ``g^T x``
  backward) and nothing else, no optimizer;
- ``hand-written``: the course notebook's model in plain PyTorch (``benchmarks/overhead.py``);
- flowspec with no pass, with each pass, and with both (:mod:`flowspec.nn.passes`).

Prints the median time per step and its ratio to the floor and to the hand-written model
(the goal: the flowspec step within 1.3x of the floor). Before timing, the outputs of every
flowspec variant are checked equal to the pass-free one in float64.

Run: ``python benchmarks/passes.py [--rounds 7] [--steps 20]``
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

import flowspec

HERE = Path(__file__).resolve().parent
SPEC = HERE.parent / "specs" / "seed_moons.yaml"
VARIANTS = {"no pass": (), "kept_inputs": ("kept_inputs",), "fuse_towers": ("fuse_towers",)}
VARIANTS["both passes"] = ("kept_inputs", "fuse_towers")


def hand_written() -> torch.nn.Module:
    spec = importlib.util.spec_from_file_location("overhead", HERE / "overhead.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.HandFlow()


def gemm_floor(batch: int, hidden: int = 256, couplings: int = 8) -> Callable[[], None]:
    """The model's matrix products, forward and backward, with nothing between them."""
    sizes = [2, hidden, hidden, 2]
    weights = [
        [torch.randn(b, a) * 0.05 for a, b in zip(sizes[:-1], sizes[1:])]
        for _ in range(2 * couplings)
    ]
    x = torch.randn(batch, 2)

    def run() -> None:
        for tower in weights:
            acts = [x]
            for w in tower:
                acts.append(acts[-1] @ w.T)
            grad = acts[-1]
            for w, a in zip(reversed(tower), reversed(acts[:-1])):
                grad.T @ a  # the weight's gradient
                grad = grad @ w  # the input's gradient

    return run


def trainer(model: torch.nn.Module, data: torch.Tensor) -> Callable[[], None]:
    opt = torch.optim.Adam(model.parameters(), lr=1e-5, fused=True)
    state = {"i": 0}

    def run() -> None:
        x = data[state["i"] % len(data)]
        state["i"] += 1
        loss = -model.log_prob(x).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return run


def check_equal(flows: dict[str, flowspec.Flow]) -> float:
    x = torch.randn(256, 2, dtype=torch.float64)
    ref = None
    worst = 0.0
    for flow in flows.values():
        with torch.no_grad():
            z, logdet = copy.deepcopy(flow).double()(x)
        if ref is None:
            ref = (z, logdet)
        worst = max(worst, float((z - ref[0]).abs().max()), float((logdet - ref[1]).abs().max()))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20, help="steps per round")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    flows = {name: flowspec.compile(SPEC, passes=p) for name, p in VARIANTS.items()}
    print(f"float64 outputs, largest difference to 'no pass': {check_equal(flows):.1e}")
    data = torch.randn(50, args.batch_size, 2)
    runs = {"GEMM floor": gemm_floor(args.batch_size)}
    runs["hand-written"] = trainer(hand_written(), data)
    runs.update({name: trainer(flow, data) for name, flow in flows.items()})
    for run in runs.values():  # warm-up
        for _ in range(5):
            run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(args.rounds):
        for name in list(runs)[:: 1 if r % 2 == 0 else -1]:
            start = time.process_time()
            for _ in range(args.steps):
                runs[name]()
            times[name].append((time.process_time() - start) / args.steps)
    med = {name: statistics.median(t) for name, t in times.items()}
    floor, hand = med["GEMM floor"], med["hand-written"]
    print(f"seed_moons training step, batch {args.batch_size}, 1 thread, CPU time per step")
    print(f"{'':14}{'ms':>8}{'/ floor':>9}{'/ hand':>8}")
    for name, t in med.items():
        print(f"{name:14}{1e3 * t:8.2f}{t / floor:9.2f}{t / hand:8.2f}")


if __name__ == "__main__":
    main()
