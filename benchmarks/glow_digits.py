"""Training step, memory and sampling of ``specs/glow_digits.yaml``: flowspec against plain PyTorch.

The baseline is the same Glow written by hand below: dequantize (17 levels) + logit (alpha 0.05),
then 3 levels of squeeze, K = 6 steps (actnorm, LU 1x1 convolution, affine coupling with a
conv3x3-ReLU-conv1x1-ReLU-conv3x3 conditioner of 48 channels and a sigmoid scale) and a split
with a learned conv3x3 prior. Its parameter count must equal the compiled flow's, both get the
compiled flow's weights, and their log-likelihoods must agree before anything is timed.

Measures, with the two models interleaved step by step (alternating which goes first) so that
machine noise hits both alike:

* time of one training step: ``bits_per_dim(x).mean()``, backward, Adam step (median of all);
* memory: bytes of the distinct tensors autograd saves for backward in one step, counted with
  ``torch.autograd.graph.saved_tensors_hooks`` (the activation memory a step holds at its peak,
  on top of weights and optimizer state; deterministic, unlike RSS on a shared machine);
* time to draw 1000 samples (eval mode, no grad; median over rounds).

Run: ``python benchmarks/glow_digits.py [--rounds 10] [--steps 20] [--threads 1]``
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import flowspec
from flowspec.data import load_splits

SPEC = Path(__file__).resolve().parent.parent / "specs" / "glow_digits.yaml"
LEVELS, K, HIDDEN, BINS, ALPHA = 3, 6, 48, 17, 0.05
LOG_2PI = math.log(2 * math.pi)


class HandActNorm(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h, w = x.shape[2:]
        return x * self.log_scale.exp() + self.bias, h * w * self.log_scale.sum()

    def inverse(self, y: Tensor) -> Tensor:
        return (y - self.bias) * torch.exp(-self.log_scale)


class HandInvConv(nn.Module):
    """W = P L (U + diag(sign * exp(log_s))); P and sign fixed."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.register_buffer("p", torch.eye(c))
        self.register_buffer("sign", torch.ones(c))
        self.lower = nn.Parameter(torch.zeros(c, c))
        self.upper = nn.Parameter(torch.zeros(c, c))
        self.log_s = nn.Parameter(torch.zeros(c))
        self.register_buffer("strict", torch.tril(torch.ones(c, c), -1))
        self.register_buffer("eye", torch.eye(c))

    def weight(self) -> Tensor:
        lower = self.lower * self.strict + self.eye
        upper = self.upper * self.strict.T + torch.diag(self.sign * self.log_s.exp())
        return self.p @ lower @ upper

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        w = self.weight()
        h, wd = x.shape[2:]
        return F.conv2d(x, w[:, :, None, None]), h * wd * self.log_s.sum()

    def inverse(self, y: Tensor) -> Tensor:
        return F.conv2d(y, torch.linalg.inv(self.weight())[:, :, None, None])


class HandCoupling(nn.Module):
    """Keep the first half of the channels, scale and shift the second half."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.half = c // 2
        self.net = nn.Sequential(
            nn.Conv2d(self.half, HIDDEN, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(HIDDEN, HIDDEN, 1),
            nn.ReLU(),
            nn.Conv2d(HIDDEN, 2 * (c - self.half), 3, padding=1),
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x1, x2 = x[:, : self.half], x[:, self.half :]
        shift, raw = self.net(x1).chunk(2, dim=1)
        log_s = F.logsigmoid(raw + 2.0)
        return torch.cat([x1, x2 * log_s.exp() + shift], 1), log_s.flatten(1).sum(1)

    def inverse(self, y: Tensor) -> Tensor:
        y1, y2 = y[:, : self.half], y[:, self.half :]
        shift, raw = self.net(y1).chunk(2, dim=1)
        return torch.cat([y1, (y2 - shift) * torch.exp(-F.logsigmoid(raw + 2.0))], 1)


def squeeze(x: Tensor) -> Tensor:
    n, c, h, w = x.shape
    x = x.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
    return x.reshape(n, 4 * c, h // 2, w // 2)


def unsqueeze(y: Tensor) -> Tensor:
    n, c, h, w = y.shape
    y = y.reshape(n, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
    return y.reshape(n, c // 4, 2 * h, 2 * w)


class HandGlow(nn.Module):
    """Glow for (1, 8, 8) integer images; ``log_prob`` is per example, as flowspec's."""

    def __init__(self) -> None:
        super().__init__()
        self.steps = nn.ModuleList()
        self.priors = nn.ModuleList()
        c = 1
        for level in range(LEVELS):
            c *= 4
            self.steps.append(
                nn.ModuleList(
                    m for _ in range(K) for m in (HandActNorm(c), HandInvConv(c), HandCoupling(c))
                )
            )
            if level < LEVELS - 1:
                self.priors.append(nn.Conv2d(c // 2, c, 3, padding=1))
                c //= 2

    def log_prob(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        y = (x.float() + torch.rand(x.shape)) / BINS
        p = ALPHA + (1 - 2 * ALPHA) * y
        h = torch.log(p) - torch.log1p(-p)
        logdet = (math.log(1 - 2 * ALPHA) - torch.log(p) - torch.log1p(-p)).flatten(1).sum(1)
        logdet = logdet - x[0].numel() * math.log(BINS)
        latents = []
        for level, steps in enumerate(self.steps):
            h = squeeze(h)
            for step in steps:
                h, ld = step(h)
                logdet = logdet + ld
            if level < len(self.priors):
                h, out = h.chunk(2, dim=1)
                mean, log_std = self.priors[level](h).chunk(2, dim=1)
                latents.append(((out - mean) * torch.exp(-log_std)).reshape(n, -1))
                logdet = logdet - log_std.flatten(1).sum(1)
        z = torch.cat([*latents, h.reshape(n, -1)], 1)
        return -0.5 * (z * z + LOG_2PI).sum(1) + logdet

    def bits_per_dim(self, x: Tensor) -> Tensor:
        return -self.log_prob(x) / (x[0].numel() * math.log(2))

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        shapes = [(2, 4, 4), (4, 2, 2), (16, 1, 1)]
        z = torch.randn(n, 64).split([math.prod(s) for s in shapes], dim=1)
        h = z[-1].reshape(n, *shapes[-1])
        for level in reversed(range(LEVELS)):
            if level < len(self.priors):
                mean, log_std = self.priors[level](h).chunk(2, dim=1)
                out = z[level].reshape(n, *shapes[level]) * log_std.exp() + mean
                h = torch.cat([h, out], 1)
            for step in reversed(self.steps[level]):
                h = step.inverse(h)
            h = unsqueeze(h)
        y = (torch.sigmoid(h) - ALPHA) / (1 - 2 * ALPHA)
        return torch.floor(y * BINS).clamp(0, BINS - 1)


def copy_state(flow: nn.Module, hand: HandGlow) -> None:
    """Give the hand-written model the flow's parameters and LU buffers, in execution order."""
    hand_params = [p for level in hand.steps for p in level.parameters()]
    hand_params += list(hand.priors.parameters())
    flow_params = [p for n, p in flow.named_parameters() if ".split." not in n]
    flow_params += [p for n, p in flow.named_parameters() if ".split." in n]
    assert [p.shape for p in flow_params] == [p.shape for p in hand_params]
    flow_lu = [m for m in flow.modules() if type(m).__name__ == "InvConv"]
    hand_lu = [m for m in hand.modules() if isinstance(m, HandInvConv)]
    with torch.no_grad():
        for a, b in zip(flow_params, hand_params):
            b.copy_(a)
        for a, b in zip(flow_lu, hand_lu):
            b.p.copy_(a.p)
            b.sign.copy_(a.sign)


def saved_bytes(step: Callable[[], Tensor]) -> int:
    """Bytes of the distinct storages autograd saves for backward while ``step`` builds a loss."""
    storages: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = step()
    loss.backward()
    return sum(storages.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=20, help="training steps per round")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = torch.from_numpy(load_splits("digits", (1, 8, 8)).train)

    flow = flowspec.compile(SPEC)
    hand = HandGlow()
    n_flow, n_hand = flow.num_parameters(), sum(p.numel() for p in hand.parameters())
    assert n_flow == n_hand, (n_flow, n_hand)
    with torch.no_grad():
        flow(data[:512])  # actnorm's data-dependent init, then the same weights in both
    copy_state(flow, hand)
    torch.manual_seed(0)
    a = flow.log_prob(data[:64])
    torch.manual_seed(0)
    b = hand.log_prob(data[:64])
    assert torch.allclose(a, b, rtol=1e-4, atol=1e-3), (a - b).abs().max()

    models = {"flowspec": flow, "hand": hand}
    opts = {k: torch.optim.Adam(m.parameters(), lr=1e-4) for k, m in models.items()}
    gen = torch.Generator().manual_seed(0)
    batches = [
        data[torch.randint(len(data), (args.batch_size,), generator=gen)] for _ in range(args.steps)
    ]

    def train(name: str, x: Tensor) -> float:
        model, opt = models[name], opts[name]
        start = time.perf_counter()
        loss = model.bits_per_dim(x).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - start

    def sample(name: str) -> float:
        model = models[name]
        model.eval()
        start = time.perf_counter()
        with torch.no_grad():
            model.sample(1000)
        model.train()
        return time.perf_counter() - start

    for name in models:  # warm-up
        train(name, batches[0])
        sample(name)
    step_times: dict[str, list[float]] = {k: [] for k in models}
    sample_times: dict[str, list[float]] = {k: [] for k in models}
    for r in range(args.rounds):
        for i, x in enumerate(batches):  # step by step, alternating which model goes first
            for name in list(models)[:: 1 if (r + i) % 2 == 0 else -1]:
                step_times[name].append(train(name, x))
        for name in list(models)[:: 1 if r % 2 == 0 else -1]:
            sample_times[name].append(sample(name))
    memory = {
        k: saved_bytes(lambda m=m: m.bits_per_dim(batches[0]).mean()) for k, m in models.items()
    }

    step = {k: statistics.median(v) for k, v in step_times.items()}
    draw = {k: statistics.median(v) for k, v in sample_times.items()}
    ratio = {
        "step": step["flowspec"] / step["hand"],
        "step (fastest of each)": min(step_times["flowspec"]) / min(step_times["hand"]),
        "memory": memory["flowspec"] / memory["hand"],
        "sampling": draw["flowspec"] / draw["hand"],
    }
    print(f"glow_digits: {n_flow} parameters in both models; batch {args.batch_size}, ", end="")
    print(f"{args.threads} thread(s), {args.rounds} rounds x {args.steps} steps")
    print(f"{'':10}{'step (ms)':>12}{'saved MiB':>12}{'1000 samples (s)':>18}")
    for k in models:
        print(f"{k:10}{1e3 * step[k]:12.2f}{memory[k] / 2**20:12.2f}{draw[k]:18.3f}")
    print("ratio flowspec / hand: " + ", ".join(f"{k} {v:.3f}" for k, v in ratio.items()))
    print(f"step ratio {'meets' if ratio['step'] <= 1.05 else 'MISSES'} the target <= 1.05")


if __name__ == "__main__":
    main()
