"""The one catalogue of op examples: every layer kind, on vectors and images, in every variant
worth checking. Every oracle test over ops draws from here, and a test fails until each kind in
``ALL_OPS`` has an entry."""

from __future__ import annotations

from typing import Any

import pytest

MLP = {"type": "mlp", "hidden": [16, 16], "activation": "tanh"}
CONV = {"type": "glow_conv", "channels": 8}
RESNET = {"type": "resnet", "channels": 8, "blocks": 1}
VIT = {"type": "vit", "width": 8, "depth": 1, "heads": 2}
TOKENS = {"type": "patchify", "patch": 2}  # (C, H, W) -> ((H/2)(W/2), 4C) tokens
SPLINE = {"type": "spline", "bins": 5, "bound": 2.0}
MADE = {"hidden": [12, 12], "activation": "tanh"}

Example = tuple[str, list[int], list[dict[str, Any]]]  # (variant id, input shape, layers)


def _on(layer: dict[str, Any], *shapes: list[int], name: str = "") -> list[Example]:
    """One example of ``layer`` per input shape, named ``<name>-CxHxW``."""
    return [(f"{name}{'-' if name else ''}{'x'.join(map(str, s))}", s, [layer]) for s in shapes]


OP_EXAMPLES: dict[str, list[Example]] = {
    "additive_coupling": [
        ("vector-half", [5], [{"type": "additive_coupling", "mask": "even", "net": MLP}]),
        *_on(
            {"type": "additive_coupling", "mask": "first_half", "net_input": "masked", "net": MLP},
            [4],
            name="masked",
        ),
        *_on(
            {
                "type": "additive_coupling",
                "mask": "checkerboard",
                "net_input": "masked",
                "net": RESNET,
            },
            [2, 4, 4],
            name="checkerboard-resnet",
        ),
        *_on(
            {
                "type": "additive_coupling",
                "mask": "checkerboard",
                "net_input": "masked",
                "net": CONV,
            },
            [2, 4, 6],
            name="checkerboard-glow",
        ),
    ],
    "affine_coupling": [
        *_on(
            {"type": "affine_coupling", "mask": [1, 0, 0, 1, 0], "net": MLP},
            [5],
            name="explicit",
        ),
        *_on(
            {
                "type": "affine_coupling",
                "mask": "alternating",
                "net_input": "masked",
                "log_scale": "tanh",
                "net": {**MLP, "towers": "separate"},
            },
            [4],
            name="separate",
        ),
        *_on({"type": "affine_coupling", "mask": "odd", "log_scale": "none", "net": MLP}, [3]),
        *_on(
            {
                "type": "affine_coupling",
                "mask": "channel_second",
                "log_scale": "sigmoid",
                "net": CONV,
            },
            [4, 3, 2],
            name="channel-second",
        ),
        *_on(
            {"type": "affine_coupling", "mask": "checkerboard", "net_input": "masked", "net": CONV},
            [1, 4, 4],
            [2, 4, 6],
            [3, 8, 8],
            name="checkerboard-glow",
        ),
        *_on(
            {
                "type": "affine_coupling",
                "mask": "checkerboard_odd",
                "net_input": "masked",
                "log_scale": "tanh",
                "net": RESNET,
            },
            [1, 4, 4],
            [3, 8, 8],
            name="checkerboard-resnet",
        ),
        *_on(
            {"type": "affine_coupling", "mask": "channel", "log_scale": "sigmoid", "net": CONV},
            [2, 4, 6],
            [3, 8, 8],
            name="channel-glow",
        ),
        *_on(
            {"type": "affine_coupling", "mask": "channel_second", "net": RESNET},
            [2, 4, 6],
            [4, 2, 2],
            name="channel-resnet",
        ),
        *[
            (
                f"vit-{mask}-tokens",
                [1, 4, 4],
                [
                    TOKENS,
                    {"type": "affine_coupling", "mask": mask, "log_scale": "sigmoid2", "net": VIT},
                ],
            )
            for mask in ("channel", "random_channel", "checkerboard", "vstripes", "hstripes_odd")
        ],
        (
            "vit-masked-tokens",
            [2, 2, 4],
            [
                TOKENS,
                {
                    "type": "affine_coupling",
                    "mask": "alternating_checkerboard",
                    "net_input": "masked",
                    "net": VIT,
                },
            ],
        ),
        (
            "vit-1d-tokens",
            [8],
            [
                {"type": "patchify", "patch": 2},
                {"type": "affine_coupling", "mask": "checkerboard", "net": VIT},
            ],
        ),
    ],
    "coupling": [
        (
            "vit-additive-checkerboard-tokens",
            [1, 4, 4],
            [
                TOKENS,
                {
                    "type": "coupling",
                    "mask": "checkerboard",
                    "transform": {"type": "additive"},
                    "net": VIT,
                },
            ],
        ),
        *_on(
            {
                "type": "coupling",
                "mask": "alternating",
                "transform": {"type": "additive"},
                "net": MLP,
            },
            [4],
            name="additive",
        ),
        *_on(
            {
                "type": "coupling",
                "mask": "checkerboard",
                "net_input": "masked",
                "transform": {"type": "affine", "log_scale": "sigmoid"},
                "net": CONV,
            },
            [2, 4, 4],
            name="affine-checkerboard",
        ),
        *_on(
            {"type": "coupling", "mask": "even", "transform": SPLINE, "net": MLP},
            [5],
            name="spline",
        ),
        *_on(
            {
                "type": "coupling",
                "mask": "alternating",
                "net_input": "masked",
                "transform": {**SPLINE, "bins": 3, "min_derivative": 0.01},
                "net": MLP,
            },
            [4],
            name="spline-masked",
        ),
        *_on(
            {
                "type": "coupling",
                "mask": "checkerboard",
                "net_input": "masked",
                "transform": SPLINE,
                "net": CONV,
            },
            [2, 4, 4],
            name="spline-checkerboard",
        ),
        *_on(
            {"type": "coupling", "mask": "channel", "transform": SPLINE, "net": RESNET},
            [4, 2, 2],
            name="spline-channel",
        ),
    ],
    "autoregressive": [
        *_on({"type": "autoregressive", "net": MADE}, [4], name="maf-affine"),
        *_on(
            {"type": "autoregressive", "direction": "iaf", "order": "random", "net": MADE},
            [5],
            name="iaf-affine-random",
        ),
        *_on(
            {"type": "autoregressive", "transform": SPLINE, "order": "reversed", "net": MADE},
            [4],
            name="maf-spline-reversed",
        ),
        *_on(
            {"type": "autoregressive", "direction": "iaf", "transform": SPLINE, "net": MADE},
            [3],
            name="iaf-spline",
        ),
        *_on(
            {
                "type": "autoregressive",
                "transform": {"type": "additive"},
                "order": [2, 0, 3, 1],
                "net": {"hidden": [2], "activation": "tanh"},
            },
            [4],
            name="maf-additive-narrow",
        ),
    ],
    "tarflow": [
        ("tokens-4x4", [1, 4, 4], [TOKENS, {"type": "tarflow", "width": 8, "heads": 2}]),
        (
            "reverse-softplus-clip",
            [2, 4, 2],
            [
                TOKENS,
                {
                    "type": "tarflow",
                    "width": 8,
                    "depth": 1,
                    "heads": 2,
                    "order": "reverse",
                    "log_scale": "softplus",
                    "clip": 1.5,
                    "final_norm": True,
                },
            ],
        ),
        (
            "learned-start-alternating",
            [1, 4, 4],
            [
                TOKENS,
                {
                    "repeat": 2,
                    "body": [
                        {
                            "type": "tarflow",
                            "width": 8,
                            "heads": 2,
                            "start": "learned",
                            "order": "alternating",
                            "clip": 2.0,
                        }
                    ],
                    "vary": {"depth": [1, 2]},
                },
            ],
        ),
        (
            "vector-1d-tokens",
            [3],
            [{"type": "patchify", "patch": 1}, {"type": "tarflow", "width": 8, "heads": 2}],
        ),
    ],
    "permute": [
        *_on({"type": "permute", "order": "random"}, [5], [3, 8, 8], name="random"),
        *_on({"type": "permute", "order": "reverse"}, [3, 2, 2], name="reverse"),
        ("tokens-random", [1, 4, 4], [TOKENS, {"type": "permute", "order": "random"}]),
        ("tokens-reverse", [2, 2, 4], [TOKENS, {"type": "permute", "order": "reverse"}]),
    ],
    "actnorm": [
        *_on({"type": "actnorm"}, [3], [1, 4, 4], [2, 4, 6], [3, 8, 8]),
        ("tokens", [2, 4, 4], [TOKENS, {"type": "actnorm"}]),
    ],
    "scale": _on({"type": "scale"}, [3], [1, 2, 2]),
    "batchnorm": _on({"type": "batchnorm"}, [3], [2, 2, 3], [1, 4, 4], [2, 4, 6]),
    "invconv": [
        *_on({"type": "invconv"}, [3], name="lu"),
        *_on({"type": "invconv", "lu": True}, [1, 4, 4], [2, 4, 6], [3, 8, 8], name="lu"),
        *_on({"type": "invconv", "lu": False}, [3, 2, 2], [2, 4, 6], [3, 8, 8], name="plain"),
        ("tokens-lu", [1, 4, 4], [TOKENS, {"type": "invconv"}]),
        ("tokens-plain", [2, 2, 4], [TOKENS, {"type": "invconv", "lu": False}]),
    ],
    "squeeze": _on({"type": "squeeze"}, [2, 4, 2], [1, 4, 4], [2, 4, 6], [3, 8, 8]),
    "patchify": [
        *_on(TOKENS, [1, 4, 4], [2, 4, 6], name="patch2"),
        *_on({"type": "patchify", "patch": 3}, [2, 6, 3], [6], name="patch3"),
    ],
    "split": [
        *_on({"type": "split", "prior": "learned"}, [4, 2, 2], [2, 4, 6], name="learned"),
        *_on({"type": "split", "prior": "standard"}, [4], [2, 4, 6], name="standard"),
    ],
    "dequantize": [
        *_on({"type": "dequantize", "levels": 8}, [3]),
        *_on({"type": "dequantize", "levels": 17}, [1, 4, 4], [2, 4, 6]),
    ],
    "logit": [
        *_on({"type": "logit", "alpha": 0.05}, [3], [1, 4, 4], [2, 4, 6]),
        *_on({"type": "logit", "alpha": 0.0}, [3, 8, 8], name="alpha0"),
    ],
}


def op_example_params(rank: int | None = None) -> list[Any]:
    """``pytest.param(kind, shape, layers)`` for every example (of one input rank if given)."""
    return [
        pytest.param(kind, shape, layers, id=f"{kind}-{variant}")
        for kind, variants in OP_EXAMPLES.items()
        for variant, shape, layers in variants
        if rank is None or len(shape) == rank
    ]
