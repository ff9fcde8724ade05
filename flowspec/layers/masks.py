"""Binary coupling masks, resolved to flat 0/1 tuples (pure Python).

Convention as in the course notes, eq. (7): ``b = 1`` marks the elements a coupling leaves
unchanged and conditions on; ``b = 0`` marks the elements it transforms. Masks are flattened in
C order over the per-example shape. ``alternating*`` masks flip with the index of the innermost
``repeat`` (even repetitions use the first pattern).

A resolved mask is a :class:`Mask`: a tuple of 0/1 that also holds itself as a numpy array.
Resolution is cached, so the 192 couplings of a paper-size Glow share a handful of mask objects
instead of holding 192 copies of a 196,608-element tuple.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Literal

import numpy as np

from flowspec.layers.base import Shape

__all__ = ["MASKS", "Mask", "MaskName", "MaskPattern", "is_channel_mask", "resolve_mask"]

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


class Mask(tuple):  # type: ignore[type-arg]
    """A resolved mask: a tuple of 0/1 (equal to the plain tuple) with a numpy view."""

    @cached_property
    def bits(self) -> np.ndarray:
        """The mask as a read-only boolean array (1 = kept)."""
        array = np.array(self, dtype=bool)
        array.flags.writeable = False
        return array


def resolve_mask(mask: str | tuple[int, ...], shape: Shape, repeat_index: int) -> Mask:
    """The flat 0/1 mask of ``mask`` for an input of ``shape`` at ``repeat_index``.

    Example:
        >>> resolve_mask("alternating", (4,), 1), resolve_mask((1, 0, 1), (3,), 0)
        ((0, 0, 1, 1), (1, 0, 1))
    """
    if not isinstance(mask, str):
        return _explicit(tuple(mask))
    named = MASKS[mask]
    return _named(mask, tuple(shape), named.alternates and repeat_index % 2 == 1)


@lru_cache(maxsize=256)
def _named(name: str, shape: Shape, odd_repetition: bool) -> Mask:
    named = MASKS[name]
    bits = named.pattern(shape)
    flip = named.flipped != odd_repetition
    return Mask(1 - b for b in bits) if flip else Mask(bits)


@lru_cache(maxsize=256)
def _explicit(values: tuple[int, ...]) -> Mask:
    return Mask(int(v) for v in values)


def is_channel_mask(mask: tuple[int, ...], shape: Shape) -> bool:
    """Whether ``mask`` keeps whole channels (constant over each channel's H x W plane)."""
    if len(shape) != 3 or len(mask) != shape[0] * shape[1] * shape[2]:
        return False
    bits = mask.bits if isinstance(mask, Mask) else np.array(mask, dtype=bool)
    planes = bits.reshape(shape[0], -1)
    return bool((planes == planes[:, :1]).all())
