"""Jet's coupling conditioner: a bidirectional ViT over token sequences (``net: {type: vit}``).

A coupling on tokens ``(N, T, D)`` hands its conditioner either the kept tokens ``(T_k, D)``
(a token mask with ``net_input: half``: Jet's spatial couplings drop the transformed tokens, so
the conditioner never sees them and attention runs over half the sequence), the kept values of
every token ``(T, D_k)`` (a channel mask: Jet's channel couplings), or the masked input ``b * x``
at full size (``net_input: masked``). ``ViTNet`` maps that to ``P`` tensors shaped like the
transformed part: its ``j``-th output token parameterises the ``j``-th transformed token, which
needs as many kept as transformed tokens (the graph stage checks it: ``net-tokens``).

The network is ``TokenTransformer(causal=False, final_norm=True)`` (big_vision's ViT encoder:
input projection, learned positional embedding initialised with std ``1/sqrt(width)``,
pre-LayerNorm attention + GELU MLP blocks, encoder LayerNorm) with a zero-initialised output
projection, so a fresh coupling is the identity. Jet's ``final_proj`` outputs the bias first and
the raw scale second; so does this one (parameter 0 is the shift of the affine transform).
"""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor, nn

from flowspec.nn.attention import TokenTransformer
from flowspec.nn.emit import Emitted
from flowspec.nn.transformer_source import VIT_SOURCE

__all__ = ["ViTNet"]


class ViTNet(nn.Module):
    """Bidirectional transformer from the part a coupling keeps to ``n_out`` parameters per
    transformed element.

    Arguments:
        spec: the ``vit`` net spec (width, depth, heads, mlp_ratio).
        in_shape: ``(T_k, D_k)``, what the conditioner reads of one example.
        out_shape: ``(T_t, D_t)``, the transformed part; ``T_t`` must equal ``T_k``.
        n_out: parameters per transformed element (2 for an affine transform).
        context: width of a conditional flow's context features (0: none); a linear map of
            them is added to every token after the positional embedding.

    Example:
        >>> import torch
        >>> from flowspec.layers.nets import ViTSpec
        >>> net = ViTNet(ViTSpec(width=16, heads=2), (8, 12), (8, 12), 2)
        >>> shift, raw = net(torch.randn(3, 8, 12))
        >>> tuple(shift.shape), bool(raw.abs().max() == 0)  # zero at init: the identity
        ((3, 8, 12), True)
    """

    def __init__(
        self,
        spec: Any,
        in_shape: tuple[int, ...],
        out_shape: tuple[int, ...],
        n_out: int,
        context: int = 0,
    ) -> None:
        super().__init__()
        if len(in_shape) != 2 or len(out_shape) != 2 or in_shape[0] != out_shape[0]:
            raise ValueError(
                f"the vit conditioner maps (T, D) to (T, D') token by token; got {in_shape} "
                f"-> {out_shape}"
            )
        self.in_shape, self.n_out = tuple(in_shape), n_out
        self.net = TokenTransformer(
            in_shape[0],
            in_shape[1],
            params=n_out,
            out_width=out_shape[1],
            width=spec.width,
            depth=spec.depth,
            heads=spec.heads,
            mlp_ratio=spec.mlp_ratio,
            causal=False,
            final_norm=True,
            pos_std=1.0 / math.sqrt(spec.width),
            context=context,
        )

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, ...]:
        """Kept part ``(N, T_k, D_k)`` (and the context features ``(N, context)``, if built
        with them) -> ``n_out`` tensors ``(N, T_t, D_t)``."""
        return self.net(x, context).unbind(1)

    def emit(self) -> Emitted:
        net = self.net.emit()
        return Emitted.of(f"ViTNet({net.expr})", {"ViTNet": VIT_SOURCE}, [net])
