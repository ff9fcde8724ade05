"""Jet's pieces: token masks against big_vision's formulas, the ViT conditioner of couplings on
tokens (what it reads, its size), and Jet's bounded scale as the ``sigmoid2`` log-scale row."""

from __future__ import annotations

import math

import pytest
import torch

import flowspec
from flowspec.layers.masks import resolve_mask, split_axis
from flowspec.layers.nets import ViTSpec
from flowspec.nn.transforms import LOG_SCALES, SIGMOID_LOG_SCALE_MIN
from flowspec.nn.vit import ViTNet
from tests.catalogue import TOKENS, VIT
from tests.helpers import example_spec


def _transformed_tokens(mask: str, grid: tuple[int, int], width: int = 2) -> list[int]:
    bits = resolve_mask(mask, (grid[0] * grid[1], width), 0, grid=grid)
    return [t for t in range(grid[0] * grid[1]) if bits[t * width] == 0]


def _jet_flat_index_masks(rows: int, cols: int) -> dict[str, list[int]]:
    """Transformed token indices by big_vision's jet.py formulas (on the flat token index)."""
    n = rows * cols
    shifted = [t + t // cols for t in range(n)]  # arange(n).reshape(rows, cols) + row index
    return {
        "vstripes": list(range(1, n, 2)),
        "hstripes": [t for t in range(n) if (t // cols) % 2 == 1],
        "checkerboard": [t for t in range(n) if shifted[t] % 2 == 1],
    }


@pytest.mark.parametrize("grid", [(2, 2), (4, 4), (2, 6), (6, 4), (16, 16)])
def test_token_masks_equal_jet_on_even_widths(grid: tuple[int, int]) -> None:
    for kind, transformed in _jet_flat_index_masks(*grid).items():
        assert _transformed_tokens(kind, grid) == transformed
        # Jet's "-inv" masks are the "_odd" ones: they transform what the plain mask keeps.
        kept = sorted(set(range(grid[0] * grid[1])) - set(transformed))
        assert _transformed_tokens(f"{kind}_odd", grid) == kept


def test_token_masks_keep_their_geometric_meaning_on_odd_widths() -> None:
    # Jet's flat-index formulas would turn stripes into a checkerboard on a 3-column grid.
    assert _transformed_tokens("vstripes", (3, 3)) == [1, 4, 7]
    assert _transformed_tokens("hstripes", (3, 3)) == [3, 4, 5]
    assert _transformed_tokens("checkerboard", (3, 3)) == [1, 3, 5, 7]


def test_channel_masks_split_the_values_of_every_token() -> None:
    first = resolve_mask("channel", (3, 4), 0)
    assert first == (1, 1, 0, 0) * 3 and split_axis(first, (3, 4)) == 2
    drawn = [resolve_mask("random_channel", (3, 8), 0, seed=s)[:8] for s in range(6)]
    assert all(sum(bits) == 4 for bits in drawn)  # always half
    assert drawn[0] == resolve_mask("random_channel", (3, 8), 0, seed=0)[:8]  # reproducible
    assert len(set(drawn)) > 1  # and different per seed (per op instance)
    assert split_axis(resolve_mask("checkerboard", (4, 3), 0, grid=(2, 2)), (4, 3)) == 1


def test_every_random_channel_coupling_of_a_flow_draws_its_own_half() -> None:
    layer = {"type": "affine_coupling", "mask": "random_channel", "net": VIT}
    graph = flowspec.build_graph(
        example_spec([2, 4, 4], [TOKENS, {"repeat": 6, "body": [layer]}], seed=3)
    )
    masks = [op.params["mask"][:8] for op in graph.ops() if op.kind == "affine_coupling"]
    assert len(set(masks)) > 1 and all(sum(m) == 4 for m in masks)
    again = flowspec.build_graph(
        example_spec([2, 4, 4], [TOKENS, {"repeat": 6, "body": [layer]}], seed=3)
    )
    assert masks == [op.params["mask"][:8] for op in again.ops() if op.kind == "affine_coupling"]


@pytest.mark.parametrize(
    ("mask", "reads", "writes"),
    [
        ("checkerboard", (8, 4), (8, 4)),  # Jet's spatial coupling: the kept tokens only
        ("hstripes_odd", (8, 4), (8, 4)),
        ("channel", (16, 2), (16, 2)),  # Jet's channel coupling: kept values of every token
    ],
)
def test_the_vit_reads_only_what_the_coupling_keeps(
    mask: str, reads: tuple[int, int], writes: tuple[int, int]
) -> None:
    spec = example_spec([1, 8, 8], [TOKENS, {"type": "affine_coupling", "mask": mask, "net": VIT}])
    coupling = flowspec.compile(spec).steps[1].module
    vit = coupling.net.net
    assert (vit.tokens, vit.proj_in.in_features) == reads
    assert (vit.params, vit.out_width) == (2, writes[1])
    x = torch.randn(2, 1, 8, 8)
    _, logdet = flowspec.compile(spec)(x)
    assert torch.equal(logdet, torch.zeros(2))  # zero-initialised: the identity


def test_vit_net_shapes_identity_and_size() -> None:
    spec = ViTSpec(width=16, depth=2, heads=4, mlp_ratio=4)
    net = ViTNet(spec, (8, 6), (8, 6), 2)
    shift, raw = net(torch.randn(3, 8, 6))
    assert shift.shape == raw.shape == (3, 8, 6) and torch.equal(raw, torch.zeros_like(raw))
    w = 16
    block = 2 * 2 * w + (3 * w * w + 3 * w) + (w * w + w) + (4 * w * w + 4 * w) + (4 * w * w + w)
    expected = (6 * w + w) + 8 * w + 2 * block + 2 * w + (w * 12 + 12)
    assert sum(p.numel() for p in net.parameters()) == expected
    with pytest.raises(ValueError, match="token by token"):
        ViTNet(spec, (5, 4), (4, 4), 2)


def test_sigmoid2_is_jets_bounded_scale() -> None:
    raw = torch.linspace(-7, 30, 75, dtype=torch.float64)  # above the floor (raw ~ -7.7)
    log_scale = LOG_SCALES["sigmoid2"](None, raw)
    scale = log_scale.exp()
    assert torch.allclose(scale, 2.0 * torch.sigmoid(raw), rtol=1e-12)
    assert torch.all((scale > 0) & (scale < 2))
    assert LOG_SCALES["sigmoid2"](None, torch.zeros(1, dtype=torch.float64)) == 0
    # floored far out like Glow's sigmoid (sampling cannot divide by an underflowed scale)
    far = LOG_SCALES["sigmoid2"](None, torch.tensor([-1000.0, -7.0], dtype=torch.float64))
    assert far.tolist() == [
        SIGMOID_LOG_SCALE_MIN,
        -7.0 - math.log1p(math.exp(-7.0)) + math.log(2.0),
    ]
    # Jet writes y = (x + b) * s; flowspec's affine y = x * s + t is the same map with t = b * s.
    x, b = torch.randn(5, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    s = 2.0 * torch.sigmoid(torch.randn(5, dtype=torch.float64))
    assert torch.allclose((x + b) * s, x * s + b * s)
