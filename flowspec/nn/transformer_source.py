"""The transformer parts as standalone PyTorch source, for ``flowspec export -o model.py``.

:mod:`flowspec.nn.attention`, :mod:`flowspec.nn.tarflow` and :mod:`flowspec.nn.vit` write
themselves out with these classes (see :mod:`flowspec.nn.emit`). They perform the same tensor
operations in the same order as flowspec's modules, so the generated model reproduces flowspec
bit for bit, including the key/value-cached sampler; what they leave out is argument checking
and the fixed-shape masked cache that flowspec uses under ``torch.compile``. Parameter and buffer
names are flowspec's, so flowspec's weights files load into them.
"""

from __future__ import annotations

__all__ = ["TARFLOW_SOURCE", "TRANSFORMER_SOURCE", "VIT_SOURCE"]

TRANSFORMER_SOURCE = '''
def write_slot(cache: Tensor, new: Tensor, position: Tensor) -> Tensor:
    """cache with the one-token new at position along dim 2 (in place when no gradient is
    recorded, as in sampling)."""
    if torch.is_grad_enabled():
        return cache.index_copy(2, position.reshape(1), new)
    return cache.index_copy_(2, position.reshape(1), new)


class KVCache:
    """Keys and values (N, heads, tokens, head_width) per layer, filled up to position."""

    def __init__(self, keys: list[Tensor], values: list[Tensor], position: Tensor) -> None:
        self.keys, self.values, self.position = keys, values, position


class SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def split(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        n, t, _ = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        return q, k, v

    def merge(self, y: Tensor) -> Tensor:
        n, _, t, _ = y.shape
        return self.out(y.transpose(1, 2).reshape(n, t, -1))

    def forward(self, x: Tensor, causal: bool) -> Tensor:
        q, k, v = self.split(x)
        return self.merge(F.scaled_dot_product_attention(q, k, v, is_causal=causal))

    def step(self, x: Tensor, keys: Tensor, values: Tensor, position: Tensor, seen: int):
        q, k, v = self.split(x)
        keys, values = write_slot(keys, k, position), write_slot(values, v, position)
        y = F.scaled_dot_product_attention(q, keys[:, :, :seen], values[:, :, :seen])
        return self.merge(y), keys, values


class TransformerBlock(nn.Module):
    """Pre-LayerNorm: h += attention(LN(h)); h += MLP(LN(h)), a GELU MLP."""

    def __init__(self, width: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm_attn = nn.LayerNorm(width)
        self.attn = SelfAttention(width, heads)
        self.norm_mlp = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, mlp_ratio * width), nn.GELU(), nn.Linear(mlp_ratio * width, width)
        )

    def forward(self, h: Tensor, causal: bool) -> Tensor:
        h = h + self.attn(self.norm_attn(h), causal)
        return h + self.mlp(self.norm_mlp(h))

    def step(self, h: Tensor, keys: Tensor, values: Tensor, position: Tensor, seen: int):
        a, keys, values = self.attn.step(self.norm_attn(h), keys, values, position, seen)
        h = h + a
        return h + self.mlp(self.norm_mlp(h)), keys, values


class TokenTransformer(nn.Module):
    """Tokens (N, T, in_width) -> parameters (N, params, T, out_width): input projection plus
    learned positional embedding (plus a linear map of the context features, added to every
    token), depth pre-LayerNorm blocks (causal or not), an optional final LayerNorm and the
    output projection. A causal one can also run one token at a time with a KV cache (step)."""

    def __init__(
        self, tokens: int, in_width: int, *, params: int, out_width: int, width: int,
        depth: int, heads: int, mlp_ratio: int, causal: bool, final_norm: bool, context: int,
    ) -> None:  # fmt: skip
        super().__init__()
        self.tokens, self.params, self.causal, self.out_width = tokens, params, causal, out_width
        self.heads, self.head_width = heads, width // heads
        self.proj_in = nn.Linear(in_width, width)
        self.pos = nn.Parameter(torch.zeros(tokens, width))
        self.proj_context = nn.Linear(context, width) if context else None
        self.blocks = nn.ModuleList(TransformerBlock(width, heads, mlp_ratio) for _ in range(depth))
        self.norm_out = nn.LayerNorm(width) if final_norm else nn.Identity()
        self.proj_out = nn.Linear(width, params * out_width)

    def embed(self, h: Tensor, context: Tensor | None) -> Tensor:
        if self.proj_context is None:
            return h
        return h + self.proj_context(context.to(h.dtype)).unsqueeze(1)

    def read_out(self, h: Tensor) -> Tensor:
        n, t, _ = h.shape
        out = self.proj_out(self.norm_out(h)).reshape(n, t, self.params, self.out_width)
        return out.transpose(1, 2)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        h = self.embed(self.proj_in(x) + self.pos[: x.shape[1]], context)
        for block in self.blocks:
            h = block(h, self.causal)
        return self.read_out(h)

    def new_cache(self, batch: int, device: torch.device, dtype: torch.dtype) -> KVCache:
        shape = (batch, self.heads, self.tokens, self.head_width)
        keys = [torch.zeros(shape, device=device, dtype=dtype) for _ in self.blocks]
        values = [torch.zeros(shape, device=device, dtype=dtype) for _ in self.blocks]
        return KVCache(keys, values, torch.zeros((), dtype=torch.long, device=device))

    def step(self, x: Tensor, cache: KVCache, context: Tensor | None = None) -> Tensor:
        """One new token (N, 1, in_width) at cache.position -> its parameters."""
        position = cache.position
        seen = int(position) + 1
        h = self.embed(self.proj_in(x) + self.pos.index_select(0, position.reshape(1)), context)
        for i, block in enumerate(self.blocks):
            h, cache.keys[i], cache.values[i] = block.step(
                h, cache.keys[i], cache.values[i], position, seen
            )
        cache.position = position + 1
        return self.read_out(h)
'''

TARFLOW_SOURCE = '''
INV_SOFTPLUS_1 = math.log(math.e - 1.0)  # softplus(INV_SOFTPLUS_1) == 1


def log_softplus(u: Tensor) -> Tensor:
    """log(softplus(u)), without underflowing to -inf for very negative u."""
    low = u < -30.0
    safe = torch.where(low, torch.zeros_like(u), u)
    return torch.where(low, u, torch.log(F.softplus(safe)))


# raw log-scale r -> log-scale a (none: TarFlow's; softplus: STARFlow's, 1 at r = 0)
TARFLOW_LOG_SCALES = {
    "none": lambda r: r,
    "softplus": lambda r: log_softplus(r + INV_SOFTPLUS_1),
}


class TarFlowBlock(nn.Module):
    """TarFlow's affine autoregressive block on tokens (N, T, D): the causal transformer net
    gives shift b_i and log-scale a_i of token i from the tokens before it, and
    z_i = (x_i - b_i) * exp(-a_i), logdet = -sum(a). Without a learned start token the net reads
    tokens 0..T-2 and token 0 passes unchanged; with one it reads [start, x_0..x_{T-2}]. The
    inverse runs token by token with a key/value cache."""

    def __init__(
        self, tokens: int, token_width: int, net: nn.Module, log_scale: str,
        clip: float | None, reverse: bool, learned_start: bool,
    ) -> None:  # fmt: skip
        super().__init__()
        self.tokens, self.log_scale, self.clip, self.reverse = tokens, log_scale, clip, reverse
        self.learned_start = learned_start
        self.length = tokens if learned_start else tokens - 1
        if learned_start:
            self.start = nn.Parameter(torch.zeros(1, 1, token_width))
        self.net = net

    def order(self, x: Tensor) -> Tensor:
        return x.flip(1) if self.reverse else x

    def start_token(self, x: Tensor) -> Tensor:
        return self.start.to(x.dtype).expand(x.shape[0], 1, -1)

    def shift_and_log_scale(self, out: Tensor) -> tuple[Tensor, Tensor]:
        if self.clip is not None:
            out = self.clip * torch.tanh(out / self.clip)
        return out[:, 0], TARFLOW_LOG_SCALES[self.log_scale](out[:, 1])

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = self.order(x)
        seq = x[:, :-1]
        if self.learned_start:
            seq = torch.cat([self.start_token(x), seq], dim=1)
        shift, log_scale = self.shift_and_log_scale(self.net(seq, context))
        fixed = self.tokens - self.length
        moved = (x[:, fixed:] - shift) * torch.exp(-log_scale)
        z = torch.cat([x[:, :fixed], moved], dim=1)
        return self.order(z), -log_scale.sum(dim=(1, 2))

    def inverse(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        cache = self.net.new_cache(z.shape[0], z.device, z.dtype)
        z = self.order(z)
        fixed = self.tokens - self.length
        xs = [z[:, i : i + 1] for i in range(fixed)]
        for j in range(self.length):
            token = self.start_token(z) if self.learned_start and j == 0 else xs[-1]
            shift, log_scale = self.shift_and_log_scale(self.net.step(token, cache, context))
            i = fixed + j
            xs.append(z[:, i : i + 1] * torch.exp(log_scale) + shift)
        return self.order(torch.cat(xs, dim=1))
'''

VIT_SOURCE = '''
class ViTNet(nn.Module):
    """Jet's coupling conditioner: a bidirectional TokenTransformer from the kept part of the
    tokens to n_out parameters per transformed element (bias first, raw scale second)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, ...]:
        return self.net(x, context).unbind(1)
'''
