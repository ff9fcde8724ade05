"""Helpers shared by the tests (imported as ``tests.helpers``; conftest.py holds fixtures only)."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import flowspec
from flowspec.nn.flow import Flow
from flowspec.nn.oracles import example_inputs, perturb_parameters

ROOT = Path(__file__).resolve().parent.parent
SPEC_FILES = sorted((ROOT / "specs").glob("*.yaml")) + sorted((ROOT / "examples").glob("*.yaml"))
# Paper-scale specs: validated and compiled, but too large for per-example float64 Jacobians.
LARGE_SPECS = {"realnvp_cifar10", "glow_cifar10", "tarflow_imagenet64", "jet_imagenet64"}
# Of those, the ones too large to allocate or run in the tests: compiled on the meta device
# (shapes and parameter counts, no memory), never run.
HUGE_SPECS = {"tarflow_imagenet64", "jet_imagenet64"}


def narrowed(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of a paper-size spec's raw YAML data with its structure kept (patches, levels,
    squeezes, splits, priors, masks, block kinds and options) but narrow conditioners
    (transformers of width 16, one layer, 2 heads; 8 channels, one residual block) and at most 2
    repetitions of each repeat block, so that it compiles and runs in seconds."""
    data = copy.deepcopy(data)
    caps = {"channels": 8, "repeat": 2, "blocks": 1, "width": 16, "depth": 1, "heads": 2}

    def shrink(node: Any) -> None:
        if isinstance(node, dict):
            for key, cap in caps.items():
                if key in node:
                    node[key] = min(node[key], cap)
            if "vary" in node:  # one value per (remaining) repetition
                node["vary"] = {k: v[: node["repeat"]] for k, v in node["vary"].items()}
            for value in node.values():
                shrink(value)
        elif isinstance(node, list):
            for value in node:
                shrink(value)

    shrink(data)
    return data


def example_spec(shape: list[int], layers: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A spec dict of ``layers`` on inputs of ``shape``; leading preprocessing layers
    (``dequantize``, ``logit``) go to ``preprocess``, where the spec's grammar wants them."""
    first = 0
    while first < len(layers) and layers[first].get("type") in ("dequantize", "logit"):
        first += 1
    sections = {"preprocess": layers[:first]} if first else {}
    return {
        "flowspec": 1,
        "name": "example",
        "input": {"shape": shape},
        **sections,
        "layers": layers[first:],
        **extra,
    }


def prepared_flow(
    shape: list[int], layers: list[dict[str, Any]], scale: float = 0.3, seed: int = 2
) -> Flow:
    """A float64 flow of ``layers`` whose data-dependent init has run on a batch of domain
    inputs and whose weights are then perturbed, so that no layer is an identity."""
    flow = flowspec.compile(example_spec(shape, layers)).double()
    with torch.no_grad():
        flow.train()
        x = example_inputs(flow, 64, torch.Generator().manual_seed(1))
        if len(shape) == 3 and flow.steps[0].kind not in ("dequantize", "logit"):
            loc = torch.arange(shape[0], dtype=torch.float64).reshape(1, -1, 1, 1)
            x = loc + (1 + loc) * x  # channels of different location and scale
        flow(x)
    return perturb_parameters(flow, scale=scale, seed=seed)


# A flow with every layer whose buffers have an invariant (weights-file checks).
WEIGHTS_SPEC = example_spec(
    [2],
    [
        {"type": "actnorm"},
        {"type": "affine_coupling", "mask": "first_half", "net": {"type": "mlp", "hidden": [8]}},
        {"type": "permute", "order": "reverse"},
        {"type": "invconv", "lu": True},
        {"type": "batchnorm"},
        {"type": "affine_coupling", "mask": "first_half", "net": {"type": "mlp", "hidden": [8]}},
    ],
    data={"name": "moons"},
)


def rewrite_weights(
    path: Path, edit: Callable[[dict[str, torch.Tensor], dict[str, str]], None], name: str
) -> Path:
    """A copy of ``path`` (named ``name``, beside it) with tensors and metadata edited; the
    checksums stay as they were unless ``edit`` recomputes them (:func:`reseal`), as someone
    editing the file on purpose would (a flipped bit does not)."""
    with safe_open(str(path), framework="pt") as fh:
        metadata = dict(fh.metadata())
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    edit(tensors, metadata)
    out = path.parent / name
    save_file(tensors, str(out), metadata=metadata)
    return out


def reseal(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Recompute both checksums, as someone editing a file on purpose would."""
    from flowspec.io import tensors_digest

    metadata["tensors_sha256"] = tensors_digest(tensors)
    metadata["spec_sha256"] = hashlib.sha256(metadata["spec"].encode()).hexdigest()


def set_tensor(key: str, value: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """An edit for :func:`rewrite_weights`: tensor ``key`` replaced by ``value(tensor)``,
    checksums recomputed."""

    def edit(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
        tensors[key] = value(tensors[key])
        reseal(tensors, metadata)

    return edit


def one_thread_per_module() -> Any:
    """An autouse, module-scoped fixture running torch on one thread while the module's tests
    run: tiny tensors are fastest on one thread and immune to a busy machine's
    oversubscription. Use as ``one_thread = one_thread_per_module()`` at a module's top."""

    @pytest.fixture(scope="module", autouse=True)
    def one_thread() -> Iterator[None]:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        yield
        torch.set_num_threads(threads)

    return one_thread
