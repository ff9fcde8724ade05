"""Train on your own data: write an array to .npy, point flowspec at it.

The data here is a noisy ring in 2-D, saved as ``ring.npy`` of shape (N, 2); any (N, D) array
works the same way with a spec whose ``input.shape`` is ``[D]`` (and (N, C, H, W) for images).

Run: ``python examples/own_data.py [--steps 1000] [--out runs/own_data]``
The same from the shell: ``flowspec train specs/realnvp_moons.yaml --data ring.npy``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import flowspec
from flowspec import train


def make_ring(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    angle = rng.uniform(0, 2 * np.pi, n)
    radius = 1.0 + 0.1 * rng.standard_normal(n)
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("runs/own_data"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    data_file = args.out / "ring.npy"
    np.save(data_file, make_ring(20_000))

    result = train("realnvp_moons", data=str(data_file), steps=args.steps, lr=2e-3,
                   out_dir=args.out, overwrite=True)  # fmt: skip
    with torch.no_grad():
        radii = result.flow.eval().sample(2000).norm(dim=1)
    print(
        f"best validation NLL {result.best_val_nll:.3f} nats; sample radius "
        f"{radii.mean():.3f} +- {radii.std():.3f} (data: 1.000 +- 0.100)"
    )
    print(f"files: {', '.join(p.name for p in result.files)}")
    assert flowspec.load(args.out / "model.safetensors").num_parameters() > 0


if __name__ == "__main__":
    main()
