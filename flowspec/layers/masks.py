"""Binary coupling masks, resolved to flat 0/1 tuples (pure Python).

Convention as in the course notes, eq. (7): ``b = 1`` marks the elements a coupling leaves
unchanged and conditions on; ``b = 0`` marks the elements it transforms. Masks are flattened in
C order over the per-example shape. ``alternating*`` masks flip with the index of the innermost
``repeat`` (even repetitions use the first pattern).

On token sequences ``(T, D)`` (from ``patchify``) the masks are Jet's: ``channel`` masks split the
``D`` values of every token, spatial masks (``checkerboard``, ``vstripes``, ``hstripes``) keep or
transform whole tokens by their position ``(r, c)`` on the patch grid (token ``t = r * cols + c``).

A resolved mask is a :class:`Mask`: a tuple of 0/1 that also holds itself as a numpy array.
Resolution is cached, so the 192 couplings of a paper-size Glow share a handful of mask objects
instead of holding 192 copies of a 196,608-element tuple.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Literal

import numpy as np

from flowspec.layers.base import Grid, Shape

__all__ = [
    "MASKS",
    "Mask",
    "MaskName",
    "MaskPattern",
    "is_channel_mask",
    "resolve_mask",
    "split_axis",
]

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
    "vstripes",
    "vstripes_odd",
    "hstripes",
    "hstripes_odd",
    "random_channel",
]

# pattern(shape, grid, seed) -> flat 0/1 list; grid and seed are used by the masks that need them
Pattern = Callable[[Shape, Grid, int], list[int]]


def _first_half(shape: Shape, grid: Grid, seed: int) -> list[int]:
    n = shape[0]
    keep = (n + 1) // 2
    return [1] * keep + [0] * (n - keep)


def _even(shape: Shape, grid: Grid, seed: int) -> list[int]:
    n = 1
    for s in shape:
        n *= s
    return [1 - i % 2 for i in range(n)]


def _spatial(keep: Callable[[int, int], bool]) -> Pattern:
    """A pattern over positions: pixels ``(y, x)`` of images in every channel, or whole tokens
    at ``(r, c)`` of the patch grid."""

    def pattern(shape: Shape, grid: Grid, seed: int) -> list[int]:
        if len(shape) == 3:
            c, h, w = shape
            return [int(keep(y, x)) for _ in range(c) for y in range(h) for x in range(w)]
        _, d = shape
        return [int(keep(*divmod(t, grid[1]))) for t in range(grid[0] * grid[1]) for _ in range(d)]

    return pattern


def _channels(kept: list[int], shape: Shape) -> list[int]:
    """Keep the channels (images) or the token values (tokens) listed in ``kept``."""
    keep = set(kept)
    if len(shape) == 2:
        t, d = shape
        return [int(k in keep) for _ in range(t) for k in range(d)]
    c, per = shape[0], shape[1] * shape[2]
    return [int(ch in keep) for ch in range(c) for _ in range(per)]


def _channel(shape: Shape, grid: Grid, seed: int) -> list[int]:
    n = shape[-1] if len(shape) == 2 else shape[0]
    return _channels(list(range(n // 2)), shape)


def _random_channel(shape: Shape, grid: Grid, seed: int) -> list[int]:
    """Jet's channel coupling: a seeded random half of the channels (token values)."""
    n = shape[-1] if len(shape) == 2 else shape[0]
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return _channels(order[: n // 2], shape)


@dataclass(frozen=True)
class MaskPattern:
    """A named mask: the base pattern, whether it is flipped, whether it alternates, whether it
    is drawn from a seed."""

    pattern: Pattern
    ranks: tuple[int, ...]
    flipped: bool = False
    alternates: bool = False
    seeded: bool = False


_checkerboard = _spatial(lambda y, x: (y + x) % 2 == 0)
_vstripes = _spatial(lambda y, x: x % 2 == 0)
_hstripes = _spatial(lambda y, x: y % 2 == 0)

MASKS: dict[str, MaskPattern] = {
    "first_half": MaskPattern(_first_half, (1,)),
    "second_half": MaskPattern(_first_half, (1,), flipped=True),
    "alternating": MaskPattern(_first_half, (1,), alternates=True),
    "even": MaskPattern(_even, (1,)),
    "odd": MaskPattern(_even, (1,), flipped=True),
    "alternating_parity": MaskPattern(_even, (1,), alternates=True),
    "checkerboard": MaskPattern(_checkerboard, (2, 3)),
    "checkerboard_odd": MaskPattern(_checkerboard, (2, 3), flipped=True),
    "alternating_checkerboard": MaskPattern(_checkerboard, (2, 3), alternates=True),
    "channel": MaskPattern(_channel, (2, 3)),
    "channel_second": MaskPattern(_channel, (2, 3), flipped=True),
    "alternating_channel": MaskPattern(_channel, (2, 3), alternates=True),
    "vstripes": MaskPattern(_vstripes, (2, 3)),
    "vstripes_odd": MaskPattern(_vstripes, (2, 3), flipped=True),
    "hstripes": MaskPattern(_hstripes, (2, 3)),
    "hstripes_odd": MaskPattern(_hstripes, (2, 3), flipped=True),
    "random_channel": MaskPattern(_random_channel, (2, 3), seeded=True),
}


class Mask(tuple):  # type: ignore[type-arg]
    """A resolved mask: a tuple of 0/1 (equal to the plain tuple) with a numpy view."""

    @cached_property
    def bits(self) -> np.ndarray:
        """The mask as a read-only boolean array (1 = kept)."""
        array = np.array(self, dtype=bool)
        array.flags.writeable = False
        return array


def resolve_mask(
    mask: str | tuple[int, ...],
    shape: Shape,
    repeat_index: int,
    grid: Grid | None = None,
    seed: int = 0,
) -> Mask:
    """The flat 0/1 mask of ``mask`` for an input of ``shape`` at ``repeat_index``.

    ``grid`` is the patch grid of a token sequence (default: one row of tokens); ``seed`` draws
    ``random_channel``.

    Example:
        >>> resolve_mask("alternating", (4,), 1), resolve_mask((1, 0, 1), (3,), 0)
        ((0, 0, 1, 1), (1, 0, 1))
        >>> resolve_mask("checkerboard", (4, 1), 0, grid=(2, 2))  # tokens on a 2x2 grid
        (1, 0, 0, 1)
        >>> resolve_mask("alternating_channel", (2, 4), 1)  # odd repetition: the second half
        (0, 0, 1, 1, 0, 0, 1, 1)
    """
    if not isinstance(mask, str):
        return _explicit(tuple(mask))
    named = MASKS[mask]
    odd = named.alternates and repeat_index % 2 == 1
    where = grid or (1, shape[0])
    return _named(mask, tuple(shape), odd, where, seed if named.seeded else 0)


@lru_cache(maxsize=256)
def _named(name: str, shape: Shape, odd_repetition: bool, grid: Grid, seed: int) -> Mask:
    named = MASKS[name]
    bits = named.pattern(shape, grid, seed)
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


def split_axis(mask: tuple[int, ...], shape: Shape) -> int | None:
    """The axis of ``(N, *shape)`` along which ``mask`` cuts whole slices, so that a coupling can
    gather the kept part and give its conditioner only that (``net_input: half``): 1 for vectors
    (features), 1 for images with a channel mask, 1 for token masks (whole tokens) and 2 for
    channel masks (the same values of every token) on token sequences; None otherwise.

    Example:
        >>> split_axis((1, 1, 0, 0), (2, 2)), split_axis((1, 0, 1, 0), (2, 2))
        (1, 2)
    """
    if len(shape) == 1:
        return 1
    if len(shape) == 3:
        return 1 if is_channel_mask(mask, shape) else None
    bits = mask.bits if isinstance(mask, Mask) else np.array(mask, dtype=bool)
    tokens = bits.reshape(shape)
    if (tokens == tokens[:, :1]).all():
        return 1
    if (tokens == tokens[:1]).all():
        return 2
    return None
