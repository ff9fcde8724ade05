"""Shared fixtures: one small example flow per op kind (vector and image variants)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SPEC_FILES = sorted((ROOT / "specs").glob("*.yaml")) + sorted((ROOT / "examples").glob("*.yaml"))
# Paper-scale specs: validated and compiled, but too large for per-example float64 Jacobians.
LARGE_SPECS = {"realnvp_cifar10", "glow_cifar10"}

MLP = {"type": "mlp", "hidden": [16, 16], "activation": "tanh"}
CONV = {"type": "glow_conv", "channels": 8}
RESNET = {"type": "resnet", "channels": 8, "blocks": 1}

# kind -> list of (variant id, input shape, layers). Every kind in ALL_OPS must appear here.
OP_EXAMPLES: dict[str, list[tuple[str, list[int], list[dict[str, Any]]]]] = {
    "additive_coupling": [
        ("vector-half", [5], [{"type": "additive_coupling", "mask": "even", "net": MLP}]),
        (
            "vector-masked",
            [4],
            [
                {
                    "type": "additive_coupling",
                    "mask": "first_half",
                    "net_input": "masked",
                    "net": MLP,
                }
            ],
        ),
        (
            "image-checkerboard",
            [2, 4, 4],
            [
                {
                    "type": "additive_coupling",
                    "mask": "checkerboard",
                    "net_input": "masked",
                    "net": RESNET,
                }
            ],
        ),
    ],
    "affine_coupling": [
        (
            "vector-explicit",
            [5],
            [
                {
                    "type": "affine_coupling",
                    "mask": [1, 0, 0, 1, 0],
                    "net": MLP,
                    "log_scale": "scaled_tanh",
                }
            ],
        ),
        (
            "vector-separate",
            [4],
            [
                {
                    "type": "affine_coupling",
                    "mask": "alternating",
                    "net_input": "masked",
                    "log_scale": "tanh",
                    "net": {**MLP, "towers": "separate"},
                }
            ],
        ),
        (
            "vector-none",
            [3],
            [{"type": "affine_coupling", "mask": "odd", "log_scale": "none", "net": MLP}],
        ),
        (
            "image-channel",
            [4, 3, 2],
            [
                {
                    "type": "affine_coupling",
                    "mask": "channel_second",
                    "log_scale": "sigmoid",
                    "net": CONV,
                }
            ],
        ),
        (
            "image-checkerboard",
            [1, 4, 4],
            [
                {
                    "type": "affine_coupling",
                    "mask": "checkerboard_odd",
                    "net_input": "masked",
                    "net": RESNET,
                }
            ],
        ),
    ],
    "permute": [
        ("vector-random", [5], [{"type": "permute", "order": "random"}]),
        ("image-reverse", [3, 2, 2], [{"type": "permute", "order": "reverse"}]),
    ],
    "actnorm": [
        ("vector", [3], [{"type": "actnorm"}]),
        ("image", [2, 3, 3], [{"type": "actnorm"}]),
    ],
    "scale": [("vector", [3], [{"type": "scale"}]), ("image", [1, 2, 2], [{"type": "scale"}])],
    "batchnorm": [
        ("vector", [3], [{"type": "batchnorm"}]),
        ("image", [2, 2, 3], [{"type": "batchnorm"}]),
    ],
    "invconv": [
        ("vector-lu", [3], [{"type": "invconv"}]),
        ("image-lu", [3, 2, 2], [{"type": "invconv", "lu": True}]),
        ("image-plain", [3, 2, 2], [{"type": "invconv", "lu": False}]),
    ],
    "squeeze": [("image", [2, 4, 2], [{"type": "squeeze"}])],
    "split": [
        ("image-learned", [4, 2, 2], [{"type": "split", "prior": "learned"}]),
        ("vector-standard", [4], [{"type": "split", "prior": "standard"}]),
    ],
    "dequantize": [("vector", [3], [{"type": "dequantize", "levels": 8}])],
    "logit": [("vector", [3], [{"type": "logit", "alpha": 0.05}])],
}


def example_spec(shape: list[int], layers: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"flowspec": 1, "name": "example", "input": {"shape": shape}, "layers": layers, **extra}


def op_example_params() -> list[Any]:
    return [
        pytest.param(kind, shape, layers, id=f"{kind}-{variant}")
        for kind, variants in OP_EXAMPLES.items()
        for variant, shape, layers in variants
    ]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
