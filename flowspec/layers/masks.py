"""Binary coupling masks, resolved to flat 0/1 tuples (pure Python).

Convention as in the course notes, eq. (7): ``b = 1`` marks the elements a coupling leaves
unchanged and conditions on; ``b = 0`` marks the elements it transforms. Masks are flattened in
C order over the per-example shape. ``alternating*`` masks flip with the index of the innermost
``repeat`` (even repetitions use the first pattern).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from flowspec.layers.base import Shape

__all__ = ["MASKS", "MaskName", "MaskPattern", "is_channel_mask", "resolve_mask"]

MaskName = Literal[
    "first_half",
    "second_half",
    "even",
    "odd",
    "alternating",
    "alternating_parity",
    "checkerboard",
    "checkerboard_odd",
    "channel",
    "channel_second",
    "alternating_checkerboard",
    "alternating_channel",
]


def _first_half(shape: Shape) -> list[int]:
    n = shape[0]
    keep = (n + 1) // 2
    return [1] * keep + [0] * (n - keep)


def _even(shape: Shape) -> list[int]:
    n = 1
    for s in shape:
        n *= s
    return [1 - i % 2 for i in range(n)]


def _checkerboard(shape: Shape) -> list[int]:
    c, h, w = shape
    return [1 - (y + x) % 2 for _ in range(c) for y in range(h) for x in range(w)]


def _channel(shape: Shape) -> list[int]:
    c = shape[0]
    per_channel = 1
    for s in shape[1:]:
        per_channel *= s
    keep = c // 2
    return [1 if ch < keep else 0 for ch in range(c) for _ in range(per_channel)]


@dataclass(frozen=True)
class MaskPattern:
    """A named mask: the base pattern, whether it is flipped, whether it alternates."""

    pattern: Callable[[Shape], list[int]]
    ranks: tuple[int, ...]
    flipped: bool = False
    alternates: bool = False


MASKS: dict[str, MaskPattern] = {
    "first_half": MaskPattern(_first_half, (1,)),
    "second_half": MaskPattern(_first_half, (1,), flipped=True),
    "alternating": MaskPattern(_first_half, (1,), alternates=True),
    "even": MaskPattern(_even, (1,)),
    "odd": MaskPattern(_even, (1,), flipped=True),
    "alternating_parity": MaskPattern(_even, (1,), alternates=True),
    "checkerboard": MaskPattern(_checkerboard, (3,)),
    "checkerboard_odd": MaskPattern(_checkerboard, (3,), flipped=True),
    "alternating_checkerboard": MaskPattern(_checkerboard, (3,), alternates=True),
    "channel": MaskPattern(_channel, (3,)),
    "channel_second": MaskPattern(_channel, (3,), flipped=True),
    "alternating_channel": MaskPattern(_channel, (3,), alternates=True),
}


def resolve_mask(mask: str | tuple[int, ...], shape: Shape, repeat_index: int) -> tuple[int, ...]:
    """The flat 0/1 mask of ``mask`` for an input of ``shape`` at ``repeat_index``."""
    if not isinstance(mask, str):
        return tuple(int(v) for v in mask)
    named = MASKS[mask]
    bits = named.pattern(shape)
    flip = named.flipped != (named.alternates and repeat_index % 2 == 1)
    return tuple(1 - b for b in bits) if flip else tuple(bits)


def is_channel_mask(mask: tuple[int, ...], shape: Shape) -> bool:
    """Whether ``mask`` keeps whole channels (constant over each channel's H x W plane)."""
    if len(shape) != 3:
        return False
    plane = shape[1] * shape[2]
    return all(len(set(mask[c * plane : (c + 1) * plane])) == 1 for c in range(shape[0]))
