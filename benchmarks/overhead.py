"""Training-step overhead of a flowspec-compiled flow against the same model written by hand.

The baseline is the course notebook's two-moons model (``specs/seed_moons.yaml``) written in
plain PyTorch: 8 affine couplings with masks [1,0]/[0,1], separate shift and log-scale MLP towers
(256, 256, ReLU) on b*x, tanh log-scale. Both models get identical weights; one step is
``-log_prob(x).mean()``, backward, Adam. Steps of the two are interleaved in rounds so machine
noise hits both alike; the ratio of medians is printed (target: <= 1.05).

Run: ``python benchmarks/overhead.py [--steps 200] [--rounds 5] [--batch-size 128]``
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

import torch
from torch import Tensor, nn

import flowspec

SPEC = Path(__file__).resolve().parent.parent / "specs" / "seed_moons.yaml"


def tower(d: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, d)
    )


class HandCoupling(nn.Module):
    """Notebook eq. (27): z = b*x + (1-b)*(x*exp(s(b*x)) + t(b*x)), logdet sum((1-b)*s)."""

    def __init__(self, mask: list[float], hidden: int = 256) -> None:
        super().__init__()
        self.register_buffer("b", torch.tensor([mask]))
        self.shift = tower(len(mask), hidden)
        self.log_scale = tower(len(mask), hidden)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        bx = self.b * x
        t, s = self.shift(bx), torch.tanh(self.log_scale(bx))
        z = bx + (1 - self.b) * (x * torch.exp(s) + t)
        return z, ((1 - self.b) * s).sum(1)


class HandFlow(nn.Module):
    def __init__(self, n_layers: int = 8) -> None:
        super().__init__()
        masks = [[1.0, 0.0], [0.0, 1.0]]
        self.layers = nn.ModuleList(HandCoupling(masks[i % 2]) for i in range(n_layers))

    def log_prob(self, x: Tensor) -> Tensor:
        logdet = torch.zeros(x.shape[0])
        for layer in self.layers:
            x, ld = layer(x)
            logdet = logdet + ld
        return -0.5 * (x * x + math.log(2 * math.pi)).sum(1) + logdet


def copy_weights(flow: nn.Module, hand: HandFlow) -> None:
    """Give the hand-written model the compiled flow's weights, tensor by tensor."""
    flow_params = list(flow.parameters())
    hand_params = [
        p
        for layer in hand.layers
        for net in (layer.shift, layer.log_scale)
        for p in net.parameters()
    ]
    assert [p.shape for p in flow_params] == [p.shape for p in hand_params]
    with torch.no_grad():
        for a, b in zip(flow_params, hand_params):
            b.copy_(a)


def time_steps(model: nn.Module, opt: torch.optim.Optimizer, data: Tensor, steps: int) -> float:
    start = time.perf_counter()
    for i in range(steps):
        x = data[i % len(data)]
        loss = -model.log_prob(x).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is least noisy)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    flow = flowspec.compile(SPEC)
    hand = HandFlow()
    copy_weights(flow, hand)
    n_flow, n_hand = (sum(p.numel() for p in m.parameters()) for m in (flow, hand))
    assert n_flow == n_hand == 1_073_184, (n_flow, n_hand)
    x = torch.randn(64, 2)
    with torch.no_grad():
        assert torch.allclose(flow.log_prob(x), hand.log_prob(x), atol=1e-4)
    data = torch.randn(50, args.batch_size, 2)
    opts = {m: torch.optim.Adam(m.parameters(), lr=1e-4) for m in (flow, hand)}
    for model in (flow, hand):  # warm-up
        time_steps(model, opts[model], data, 20)
    times: dict[str, list[float]] = {"flowspec": [], "hand-written": []}
    for _ in range(args.rounds):
        times["flowspec"].append(time_steps(flow, opts[flow], data, args.steps))
        times["hand-written"].append(time_steps(hand, opts[hand], data, args.steps))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"threads: {torch.get_num_threads()}  batch: {args.batch_size}  params: {n_flow:,}")
    for name, t in med.items():
        print(f"{name:>13}: {t * 1e3:.3f} ms/step (median of {args.rounds} rounds x {args.steps})")
    print(
        f"ratio flowspec / hand-written: {med['flowspec'] / med['hand-written']:.3f} "
        "(target <= 1.05)"
    )


if __name__ == "__main__":
    main()
