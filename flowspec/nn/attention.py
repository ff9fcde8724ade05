"""A small pre-LayerNorm transformer over token sequences, causal or bidirectional, with a KV cache.

``TokenTransformer`` is the conditioner of TarFlow blocks (causal) and of ViT couplings
(bidirectional, Jet). It maps tokens ``(N, T, in_width)`` to ``P`` parameters per output element,
``(N, P, T, out_width)`` (parameter-major, as every conditioner in ``flowspec.nn``):

1. ``h = proj_in(x) + pos[:T] (+ proj_context(c))``: a linear input projection to the model
   width and a learned positional embedding. A conditional flow's context features ``c``
   ``(N, context)`` (a class label's embedding or one-hot vector, or a real vector: the flow
   encodes the context once for all its layers) are mapped linearly to one vector of model width
   per example and ADDED TO EVERY TOKEN, as TarFlow adds its class embedding.
2. ``depth`` pre-LayerNorm blocks ``h += attention(LN(h)); h += MLP(LN(h))`` with a GELU MLP of
   ``mlp_ratio * width`` hidden units; causal attention lets token ``i`` see tokens ``<= i`` only.
3. An optional final LayerNorm (ViT's encoder norm; TarFlow has none) and a ZERO-INITIALISED
   linear map (weight and bias) to ``P * out_width`` values per token, so a fresh conditioner
   outputs exactly zero.

Causal models can also run one token at a time: ``new_cache`` allocates a :class:`KVCache` for
all ``tokens`` positions, and each ``step`` embeds one new token at the cache's position, writes
its keys and values into their slot and attends to the slots filled so far. The cache has a fixed
shape and its position is a tensor; under ``torch.compile`` a mask hides the empty slots, so
``step`` is traced once and that graph serves every position, while eager steps attend to the
filled slots only (no wasted work on empty ones). Attention is
``torch.nn.functional.scaled_dot_product_attention`` throughout.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flowspec.nn.emit import Emitted, literal
from flowspec.nn.transformer_source import TRANSFORMER_SOURCE

__all__ = ["KVCache", "TokenTransformer"]


@dataclass
class KVCache:
    """Keys and values of every position, ``(N, heads, tokens, head_width)`` per layer, filled
    up to ``position`` (a 0-dim integer tensor: the number of tokens seen so far, which is also
    the position of the next one). ``TokenTransformer.step`` writes each new token's keys and
    values into its slot: in place under ``torch.no_grad`` (sampling), into new tensors when
    gradients are recorded, so the cached pass stays differentiable."""

    keys: list[Tensor]
    values: list[Tensor]
    position: Tensor

    @property
    def length(self) -> int:
        """The number of tokens the cache holds (reads the position tensor)."""
        return int(self.position)


def _write(cache: Tensor, new: Tensor, position: Tensor) -> Tensor:
    """``cache`` with the one-token ``new`` at ``position`` along dim 2: written in place when no
    gradient is recorded (sampling), into a new tensor otherwise (the cached pass stays
    differentiable)."""
    if torch.is_grad_enabled():
        return cache.index_copy(2, position.reshape(1), new)
    return cache.index_copy_(2, position.reshape(1), new)


class _SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        n, t, _ = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        return q, k, v

    def _merge(self, y: Tensor) -> Tensor:
        n, _, t, _ = y.shape
        return self.out(y.transpose(1, 2).reshape(n, t, -1))

    def forward(self, x: Tensor, causal: bool) -> Tensor:
        q, k, v = self._split(x)
        return self._merge(F.scaled_dot_product_attention(q, k, v, is_causal=causal))

    def step(
        self, x: Tensor, keys: Tensor, values: Tensor, position: Tensor, seen: Tensor | int
    ) -> tuple[Tensor, Tensor, Tensor]:
        q, k, v = self._split(x)
        keys, values = _write(keys, k, position), _write(values, v, position)
        if isinstance(seen, int):  # eager: attend to the filled slots only
            y = F.scaled_dot_product_attention(q, keys[:, :, :seen], values[:, :, :seen])
        else:  # compiled: every slot, the empty ones masked, so the shapes never change
            y = F.scaled_dot_product_attention(q, keys, values, attn_mask=seen)
        return self._merge(y), keys, values


class _Block(nn.Module):
    def __init__(self, width: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm_attn = nn.LayerNorm(width)
        self.attn = _SelfAttention(width, heads)
        self.norm_mlp = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, mlp_ratio * width), nn.GELU(), nn.Linear(mlp_ratio * width, width)
        )

    def forward(self, h: Tensor, causal: bool) -> Tensor:
        h = h + self.attn(self.norm_attn(h), causal)
        return h + self.mlp(self.norm_mlp(h))

    def step(
        self, h: Tensor, keys: Tensor, values: Tensor, position: Tensor, seen: Tensor | int
    ) -> tuple[Tensor, Tensor, Tensor]:
        a, keys, values = self.attn.step(self.norm_attn(h), keys, values, position, seen)
        h = h + a
        return h + self.mlp(self.norm_mlp(h)), keys, values


class TokenTransformer(nn.Module):
    """Transformer conditioner over ``tokens`` positions with zero-initialised output.

    Arguments:
        tokens: the longest sequence it will see (size of the positional embedding).
        in_width: values per input token.
        params: ``P``, the number of parameters per output element.
        out_width: values per output token; defaults to ``in_width``.
        width: model width (divisible by ``heads``).
        depth: number of attention + MLP blocks.
        heads: attention heads.
        mlp_ratio: hidden units of the MLP per unit of width.
        causal: token ``i`` sees only tokens ``<= i``; enables ``step``.
        final_norm: a LayerNorm before the output projection (ViT's encoder norm).
        pos_std: standard deviation of the initial positional embedding.
        context: width of the context features it takes per example (0: none).

    Example:
        >>> net = TokenTransformer(6, 4, params=2, width=16, heads=2, causal=True)
        >>> out = net(torch.randn(3, 6, 4))
        >>> tuple(out.shape), bool(out.abs().max() == 0)  # (N, P, T, out_width); zero at init
        ((3, 2, 6, 4), True)
    """

    slots: Tensor

    def __init__(
        self,
        tokens: int,
        in_width: int,
        *,
        params: int = 1,
        out_width: int | None = None,
        width: int = 64,
        depth: int = 2,
        heads: int = 4,
        mlp_ratio: int = 4,
        causal: bool = False,
        final_norm: bool = False,
        pos_std: float = 0.02,
        context: int = 0,
    ) -> None:
        super().__init__()
        out_width = in_width if out_width is None else out_width
        sizes = {
            "tokens": tokens,
            "in_width": in_width,
            "out_width": out_width,
            "params": params,
            "depth": depth,
            "mlp_ratio": mlp_ratio,
        }
        for name, value in sizes.items():
            if value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        if heads < 1 or width < 1 or width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        if context < 0:
            raise ValueError(f"context must be a width >= 0, got {context}")
        self.tokens, self.params, self.causal = tokens, params, causal
        # the sizes as built (the generated source of ``emit`` rebuilds the same module)
        self.sizes = {
            "params": params,
            "out_width": out_width,
            "width": width,
            "depth": depth,
            "heads": heads,
            "mlp_ratio": mlp_ratio,
            "causal": causal,
            "final_norm": final_norm,
            "context": context,
        }
        self.in_width = in_width
        self.out_width = out_width
        self.heads, self.head_width = heads, width // heads
        self.proj_in = nn.Linear(in_width, width)
        self.pos = nn.Parameter(torch.randn(tokens, width) * pos_std)
        self.context = context
        self.proj_context = nn.Linear(context, width) if context else None
        self.blocks = nn.ModuleList(_Block(width, heads, mlp_ratio) for _ in range(depth))
        self.norm_out = nn.LayerNorm(width) if final_norm else nn.Identity()
        self.proj_out = nn.Linear(width, params * self.out_width)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)
        self.register_buffer("slots", torch.arange(tokens), persistent=False)

    def _embed(self, h: Tensor, context: Tensor | None) -> Tensor:
        if self.proj_context is None:
            if context is not None:
                raise ValueError("this transformer was built without a context; got one")
            return h
        if context is None:
            raise ValueError(f"this transformer needs context features (N, {self.context})")
        return h + self.proj_context(context.to(h.dtype)).unsqueeze(1)

    def _read_out(self, h: Tensor) -> Tensor:
        n, t, _ = h.shape
        out = self.proj_out(self.norm_out(h)).reshape(n, t, self.params, self.out_width)
        return out.transpose(1, 2)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """Full pass over a sequence.

        Arguments:
            x: tokens ``(N, T, in_width)`` with ``T <= tokens``, at positions ``0 .. T-1``.
            context: features ``(N, context)``, if built with a context.

        Returns:
            Parameters ``(N, P, T, out_width)``.
        """
        if x.dim() != 3 or x.shape[1] > self.tokens:
            raise ValueError(f"expected (N, T<={self.tokens}, D) tokens, got {tuple(x.shape)}")
        h = self._embed(self.proj_in(x) + self.pos[: x.shape[1]], context)
        for block in self.blocks:
            h = block(h, self.causal)
        return self._read_out(h)

    def new_cache(
        self, batch: int, *, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> KVCache:
        """An empty cache for ``step`` (causal models only), on the parameters' device and dtype."""
        if not self.causal:
            raise ValueError("a KV cache needs a causal transformer (causal=True)")
        device, dtype = device or self.pos.device, dtype or self.pos.dtype
        shape = (batch, self.heads, self.tokens, self.head_width)
        keys = [torch.zeros(shape, device=device, dtype=dtype) for _ in self.blocks]
        values = [torch.zeros(shape, device=device, dtype=dtype) for _ in self.blocks]
        return KVCache(keys, values, torch.zeros((), dtype=torch.long, device=device))

    def step(self, x: Tensor, cache: KVCache, context: Tensor | None = None) -> Tensor:
        """Process ONE new token at position ``cache.position``, given the cache of the earlier
        ones; the cache moves on by one. The result equals that position of a full causal pass
        over all tokens so far.

        Arguments:
            x: the new token, ``(N, 1, in_width)``.
            cache: from ``new_cache``, holding the tokens at positions ``0 .. position - 1``.
            context: as in ``forward``.

        Returns:
            Parameters for that position, ``(N, P, 1, out_width)``.
        """
        position = cache.position
        seen: Tensor | int
        if torch.compiler.is_compiling():  # one graph for every position: a mask, no sync
            seen = (self.slots <= position).reshape(1, 1, 1, -1)
        else:  # eager: check the arguments, and attend to the filled slots only
            if x.dim() != 3 or x.shape[1] != 1:
                raise ValueError(f"step takes one token (N, 1, D), got shape {tuple(x.shape)}")
            seen = cache.length + 1
            if seen > self.tokens:
                raise ValueError(f"the cache already holds all {self.tokens} positions")
        h = self._embed(self.proj_in(x) + self.pos.index_select(0, position.reshape(1)), context)
        for i, block in enumerate(self.blocks):
            h, cache.keys[i], cache.values[i] = block.step(
                h, cache.keys[i], cache.values[i], position, seen
            )
        cache.position = position + 1
        return self._read_out(h)

    def emit(self) -> Emitted:
        """This transformer in the generated source of ``flowspec export``."""
        keywords = ", ".join(f"{k}={literal(v)}" for k, v in self.sizes.items())
        expr = f"TokenTransformer({self.tokens}, {self.in_width}, {keywords})"
        return Emitted(expr, {"TokenTransformer": TRANSFORMER_SOURCE})
