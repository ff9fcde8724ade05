"""Record behaviour fingerprints of every shipped spec, through the public API only.

For each spec in ``specs/`` and ``examples/``: compile it (its own seed), run one forward pass on
fixed domain inputs (data-dependent init), perturb every parameter by 0.05 x N(0, 1) (0.002 for
paper-size specs) from a fixed generator so no coupling is an identity, then record the parameter
count and, in float64, ``z`` and ``logdet`` on fixed inputs and 4 samples at a fixed seed. Small
specs also keep the weights file that ``flowspec.save`` wrote, so a later flowspec must load a
file written by an earlier one and reproduce the numbers bit for bit
(``tests/test_fingerprints.py``).

Run from the repository root: ``python tests/fingerprints/record.py`` (rewrites the files; only do
this on purpose, when a change of behaviour is intended); ``python tests/fingerprints/record.py
NAME ...`` records only those specs (a newly shipped one), leaving the other files untouched.
Conditional specs are recorded at fixed contexts (``domain_contexts``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import flowspec  # noqa: E402

OUT = Path(__file__).resolve().parent
LARGE = {"realnvp_cifar10", "glow_cifar10"}  # parameter count and a 2-example forward only
HUGE = {"tarflow_imagenet64", "jet_imagenet64"}  # parameter count only (compiled on meta)


def spec_files() -> list[Path]:
    return sorted((ROOT / "specs").glob("*.yaml")) + sorted((ROOT / "examples").glob("*.yaml"))


def domain_contexts(spec: flowspec.FlowSpec, n: int, seed: int) -> torch.Tensor | None:
    """Fixed contexts of a conditional spec: labels cycling through the classes, or standard
    normal vectors (None for an unconditional spec)."""
    if spec.context is None:
        return None
    classes = getattr(spec.context, "classes", None)
    if classes is not None:
        return torch.arange(n) % classes
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, spec.context.features, generator=gen, dtype=torch.float64)


def domain_inputs(spec: flowspec.FlowSpec, n: int, seed: int) -> torch.Tensor:
    """Fixed inputs in the flow's domain: integers below ``levels`` after ``dequantize``."""
    gen = torch.Generator().manual_seed(seed)
    shape = (n, *spec.input.shape)
    first = spec.preprocess[0] if spec.preprocess else None
    if first is not None and first.type == "dequantize":
        return torch.randint(0, first.levels, shape, generator=gen).double()
    return torch.randn(shape, generator=gen, dtype=torch.float64)


@torch.no_grad()
def prepare(path: Path) -> flowspec.Flow:
    """Compile, initialise on data and perturb (float32, as a user's model is); paper-size
    specs get a smaller perturbation, since 512-channel convolutions amplify it to overflow."""
    flow = flowspec.compile(path)
    scale = 0.002 if path.stem in LARGE else 0.05
    torch.manual_seed(0)
    context = domain_contexts(flow.spec, 64, seed=1)
    if context is not None and context.is_floating_point():
        context = context.float()
    flow(domain_inputs(flow.spec, 64, seed=1).float(), context)
    gen = torch.Generator().manual_seed(2)
    for p in flow.parameters():
        p.add_(scale * torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype))
    return flow


@torch.no_grad()
def fingerprint(flow: flowspec.Flow, n: int) -> dict[str, torch.Tensor]:
    """``x``, ``z``, ``logdet`` and 4 samples in float64, eval mode, fixed seeds, torch on one
    thread (a parallel reduction, as in CPU attention, splits its sums by the thread count and
    so changes the last bits)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fingerprint(flow, n)
    finally:
        torch.set_num_threads(threads)


def _fingerprint(flow: flowspec.Flow, n: int) -> dict[str, torch.Tensor]:
    flow = flow.double().eval()
    x = domain_inputs(flow.spec, n, seed=3)
    torch.manual_seed(4)
    z, logdet = flow(x, domain_contexts(flow.spec, n, seed=3))
    torch.manual_seed(5)
    sample = flow.sample(4, temperature=0.7, context=domain_contexts(flow.spec, 4, seed=5))
    out = {"x": x, "z": z, "logdet": logdet, "sample": sample}
    bad = [key for key, value in out.items() if not torch.isfinite(value).all()]
    if bad:
        raise ValueError(f"{flow.spec.name}: non-finite {bad}; a fingerprint must be finite")
    return out


def main(only: set[str] | None = None) -> None:
    """Record every spec (or only the named ones, keeping the others' files as they are)."""
    counts = json.loads((OUT / "parameters.json").read_text()) if only else {}
    for path in spec_files():
        name = path.stem
        if only and name not in only:
            continue
        if name in HUGE:
            with torch.device("meta"):
                counts[name] = flowspec.compile(path).num_parameters()
            continue
        flow = prepare(path)
        counts[name] = flow.num_parameters()
        if name in LARGE:
            tensors = fingerprint(flow, 2)
        else:
            weights = OUT / f"{name}.safetensors"
            flowspec.save(flow, weights)
            tensors = fingerprint(flowspec.load(weights), 16)
        save_file({k: v.contiguous() for k, v in tensors.items()}, OUT / f"{name}.expected")
        print(f"{name}: {counts[name]:,} parameters")
    (OUT / "parameters.json").write_text(json.dumps(counts, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(set(sys.argv[1:]) or None)
