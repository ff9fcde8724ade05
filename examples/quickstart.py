"""flowspec from Python, end to end: spec -> graph -> flow -> train -> evaluate -> sample -> file.

Run: ``python examples/quickstart.py [--steps 1500] [--out runs/quickstart]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import flowspec
from flowspec import train
from flowspec.data import load_splits, moons_log_density


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--out", type=Path, default=Path("runs/quickstart"))
    args = parser.parse_args()

    spec = flowspec.load_spec("specs/realnvp_moons.yaml")
    print(flowspec.format_graph(flowspec.build_graph(spec)))

    # Keyword settings override the spec's train: section and keep its other fields (threads: 1).
    result = train(spec, data="moons", steps=args.steps, lr=2e-3, out_dir=args.out, overwrite=True)
    flow = result.flow.eval()

    splits = load_splits("moons", (2,))
    test = torch.from_numpy(splits.test)
    with torch.no_grad():
        nll = -flow.log_prob(test).mean().item()
        samples = flow.sample(2000, temperature=1.0)
    best = -moons_log_density(splits.test.astype(np.float64)).mean()
    print(f"test NLL {nll:.3f} nats (the true density scores {best:.3f})")
    print(
        f"samples: mean {samples.mean(0).numpy().round(2)}, data mean "
        f"{splits.test.mean(0).round(2)}"
    )

    path = flowspec.save(flow, args.out / "quickstart.safetensors")
    again = flowspec.load(path).eval()
    with torch.no_grad():
        assert torch.equal(again.log_prob(test), flow.log_prob(test))
    print(f"saved and reloaded {path}")


if __name__ == "__main__":
    main()
