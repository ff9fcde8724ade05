"""A short device check: glow_cifar10 training steps on random uint8 images.

For float32 and bf16 networks (and invertible backpropagation, ``train: {memory: invertible}``,
when this flowspec has it) it runs ``--steps`` optimizer steps of ``specs/glow_cifar10.yaml``
through :func:`flowspec.train` on random 8-bit 3x32x32 images and prints the throughput
(images/s over the steps after the first ``--warmup``), the peak device memory (CUDA) or the
bytes saved for the backward pass of one step (CPU), and the log-determinant gap between bf16
and float32 networks on one batch (dequantisation noise off; float64 as the reference).

Run on a GPU: ``python benchmarks/gpu_check.py`` (``--device cuda`` is the default when one is
visible). ``--tiny`` shrinks the flow (K = 2 steps per level, 16 hidden channels, 3x16x16) so
that the same path runs on a CPU in seconds; the tests run it that way.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

import flowspec
from flowspec.data import Splits
from flowspec.spec.training import TrainSpec
from flowspec.training.precision import networks_autocast

SPEC = Path(__file__).resolve().parent.parent / "specs" / "glow_cifar10.yaml"


def glow_spec(tiny: bool) -> dict[str, Any]:
    """glow_cifar10 as a dict; ``tiny``: K = 2, 16 channels, 3x16x16 images."""
    spec = copy.deepcopy(yaml.safe_load(SPEC.read_text()))
    if tiny:
        spec["input"]["shape"] = [3, 16, 16]
        for level in spec["levels"]:
            block = level["steps"][0]
            block["repeat"] = 2
            for layer in block["body"]:
                if "net" in layer:
                    layer["net"] = {**layer["net"], "channels": 16}
    spec.pop("train", None)
    return spec


def random_images(n: int, shape: list[int], seed: int = 0) -> Splits:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
    val = rng.integers(0, 256, size=(16, *shape), dtype=np.uint8)
    return Splits(train=x, val=val, test=val, name="random uint8", discrete_levels=256)


class StepClock:
    """A progress reporter that timestamps every optimizer step."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.times = device, []  # type: ignore[var-annotated]

    def step(self, *args: Any) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.times.append(time.perf_counter())

    def record(self, row: dict[str, Any], best: bool) -> None: ...
    def message(self, text: str) -> None: ...
    def close(self) -> None: ...


def saved_bytes(flow: flowspec.Flow, x: torch.Tensor, precision: str) -> int:
    """Bytes of the tensors autograd keeps for the backward pass of one step."""
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with networks_autocast(flow, precision):
            loss = -flow.log_prob(x).mean()
    loss.backward()
    flow.zero_grad(set_to_none=True)
    return total


def run_mode(
    spec: dict[str, Any], args: argparse.Namespace, device: torch.device, **settings: Any
) -> dict[str, Any]:
    """Train ``--steps`` steps in one mode; throughput and memory."""
    flow = flowspec.compile(spec, seed=0)
    data = random_images(args.batch_size * args.steps, spec["input"]["shape"])
    config = TrainSpec(
        steps=args.steps, batch_size=args.batch_size, lr=1e-4, warmup_steps=0, **settings
    )
    clock = StepClock(device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    flowspec.train(flow, data=data, config=config, device=str(device), progress=clock)
    gaps = np.diff(clock.times[args.warmup :]) if len(clock.times) > args.warmup + 1 else [0.0]
    step = statistics.median(gaps) if len(gaps) else float("nan")
    out: dict[str, Any] = {"images/s": args.batch_size / step if step else float("nan")}
    if device.type == "cuda":
        out["peak memory"] = f"{torch.cuda.max_memory_allocated(device) / 2**20:,.0f} MiB"
    else:
        x = torch.as_tensor(data.train[: args.batch_size])
        precision = settings.get("precision", "float32")
        out["peak memory"] = f"{saved_bytes(flow, x, precision) / 2**20:,.1f} MiB saved/step"
    return out


def logdet_gap(spec: dict[str, Any], device: torch.device, batch: int) -> dict[str, float]:
    """Max |logdet| error of float32 and bf16 networks against float64, on one batch."""
    flow = flowspec.compile(spec, seed=0).to(device)
    x = torch.as_tensor(random_images(batch, spec["input"]["shape"], seed=1).train).to(device)
    for step in flow.steps:
        if step.kind == "dequantize":
            step.module.noise = step.module.round = False
    with torch.no_grad():
        flow(x)  # actnorm's data-dependent init
        for p in flow.parameters():  # away from the identity couplings start as
            p.add_(0.02 * torch.randn_like(p))
        _, ld32 = flow(x)
        with networks_autocast(flow, "bf16"):
            _, ld16 = flow(x)
        _, ld64 = flow.double()(x)
    return {
        "mean |logdet|": float(ld64.abs().mean()),
        "float32": float((ld32.double() - ld64).abs().max()),
        "bf16": float((ld16.double() - ld64).abs().max()),
        "bf16 - float32": float((ld16 - ld32).abs().max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a small flow, for a CPU")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5, help="steps not timed")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    args.warmup = min(args.warmup, max(args.steps - 2, 0))
    device = torch.device(args.device)
    spec = glow_spec(args.tiny)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    params = flowspec.compile(spec).num_parameters()
    flow_name = "glow_cifar10" + " (tiny)" * args.tiny
    print(
        f"device: {name}  torch {torch.__version__}  flow: {flow_name} {params:,} parameters, "
        f"input {spec['input']['shape']}, batch {args.batch_size}"
    )
    modes: dict[str, dict[str, Any]] = {
        "float32": {},
        "bf16 networks": {"precision": "bf16"},
    }
    if "memory" in TrainSpec.model_fields:  # invertible backpropagation, where it exists
        modes["float32, memory: invertible"] = {"memory": "invertible"}
    for label, settings in modes.items():
        result = run_mode(spec, args, device, **settings)
        print(f"{label:>28}: {result['images/s']:9.1f} images/s   {result['peak memory']}")
    if "memory" not in TrainSpec.model_fields:
        print(f"{'memory: invertible':>28}: not in this flowspec")
    gap = logdet_gap(spec, device, min(args.batch_size, 16))
    print(
        f"logdet |error| vs float64 (mean |logdet| {gap['mean |logdet|']:.1f} nats): float32 "
        f"{gap['float32']:.2e}, bf16 networks {gap['bf16']:.2e}; bf16 - float32 "
        f"{gap['bf16 - float32']:.2e} nats"
    )


if __name__ == "__main__":
    main()
