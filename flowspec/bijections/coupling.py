"""Coupling layers: additive (NICE) and affine (RealNVP, Glow).

With mask ``b`` (1 = kept, 0 = transformed), course notes eq. (7)-(8) / (27)-(28):
``z = b*x + (1-b) * (x * exp(s(b*x)) + t(b*x))`` and ``x = b*z + (1-b) * ((z - t) * exp(-s))``,
logdet ``sum((1-b) * s)``. With ``net_input: half`` the kept and transformed parts are gathered
along dim 1 (features or channels) instead, so the network sees only the kept part.
"""

from __future__ import annotations

from collections.abc import Callable
from math import prod

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flowspec.bijections.base import Bijection, sum_except_batch, zeros_logdet
from flowspec.graph.ir import OpNode
from flowspec.nets import build_net


class Coupling(Bijection):
    """Shared partitioning logic; subclasses define how the transformed part changes."""

    n_params = 1

    def __init__(
        self, mask: tuple[int, ...], shape: tuple[int, ...], net_spec: object, net_input: str
    ) -> None:
        super().__init__()
        self.half = net_input == "half"
        b = torch.tensor(mask, dtype=torch.float32).reshape(1, *shape)
        if self.half:
            per = prod(shape[1:])
            kept = [i for i in range(shape[0]) if mask[i * per]]
            moved = [i for i in range(shape[0]) if not mask[i * per]]
            order = torch.tensor(kept + moved)
            self.n_kept = len(kept)
            self.contiguous = kept + moved == list(range(shape[0]))
            self.register_buffer("order", order, persistent=False)
            self.register_buffer("unorder", torch.argsort(order), persistent=False)
            in_shape, out_shape = (len(kept), *shape[1:]), (len(moved), *shape[1:])
        else:
            self.contiguous = True
            self.register_buffer("b", b, persistent=False)
            self.register_buffer("kept", b.bool(), persistent=False)
            in_shape = out_shape = shape
        self.out_shape = out_shape
        self.net = build_net(net_spec, in_shape, out_shape, self.n_params)

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if not self.contiguous:
            x = x.index_select(1, self.order)
        return x[:, : self.n_kept], x[:, self.n_kept :]

    def _merge(self, kept: Tensor, moved: Tensor) -> Tensor:
        y = torch.cat([kept, moved], dim=1)
        return y if self.contiguous else y.index_select(1, self.unorder)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.half:
            kept, moved = self._split(x)
            moved, logdet = self.transform(moved, self.net(kept))
            return self._merge(kept, moved), logdet
        b = self.b.to(x.dtype)
        y, logdet = self.transform(x, self.net(b * x), 1 - b)
        return torch.where(self.kept, x, y), logdet

    def inverse(self, y: Tensor) -> Tensor:
        if self.half:
            kept, moved = self._split(y)
            return self._merge(kept, self.untransform(moved, self.net(kept)))
        b = self.b.to(y.dtype)
        return torch.where(self.kept, y, self.untransform(y, self.net(b * y)))

    def transform(
        self, x: Tensor, params: tuple[Tensor, ...], weight: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def untransform(self, y: Tensor, params: tuple[Tensor, ...]) -> Tensor:
        raise NotImplementedError


class AdditiveCoupling(Coupling):
    """NICE: ``z_t = x_t + t(x_c)``; logdet 0."""

    def transform(
        self, x: Tensor, params: tuple[Tensor, ...], weight: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        return x + _shaped(params[0], x.shape), zeros_logdet(x)

    def untransform(self, y: Tensor, params: tuple[Tensor, ...]) -> Tensor:
        return y - _shaped(params[0], y.shape)


class AffineCoupling(Coupling):
    """RealNVP: ``z_t = x_t * exp(s(x_c)) + t(x_c)``, with the log-scale ``s`` bounded."""

    n_params = 2

    def __init__(
        self,
        mask: tuple[int, ...],
        shape: tuple[int, ...],
        net_spec: object,
        net_input: str,
        log_scale: str,
    ) -> None:
        super().__init__(mask, shape, net_spec, net_input)
        self.bound = log_scale
        if log_scale == "scaled_tanh":
            self.scale = nn.Parameter(torch.ones(1, *self.out_shape))

    def log_scale(self, raw: Tensor) -> Tensor:
        """The bounded log-scale ``s`` from the net's raw output (see :data:`LOG_SCALES`)."""
        return LOG_SCALES[self.bound](self, raw)

    def transform(
        self, x: Tensor, params: tuple[Tensor, ...], weight: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        shift, raw = (_shaped(p, x.shape) for p in params)
        s = self.log_scale(raw)
        logdet = sum_except_batch(s if weight is None else s * weight)
        return x * torch.exp(s) + shift, logdet

    def untransform(self, y: Tensor, params: tuple[Tensor, ...]) -> Tensor:
        shift, raw = (_shaped(p, y.shape) for p in params)
        return (y - shift) * torch.exp(-self.log_scale(raw))


LOG_SCALES: dict[str, Callable[[AffineCoupling, Tensor], Tensor]] = {
    "tanh": lambda m, raw: torch.tanh(raw),
    "scaled_tanh": lambda m, raw: m.scale * torch.tanh(raw),
    "sigmoid": lambda m, raw: F.logsigmoid(raw + 2.0),  # Glow: scale = sigmoid(raw + 2)
    "none": lambda m, raw: raw,
}


def _shaped(t: Tensor, shape: torch.Size) -> Tensor:
    """``t`` as ``shape`` (conv nets already give it; MLPs give flat features)."""
    return t if t.shape == shape else t.reshape(shape)


def build_additive(node: OpNode) -> AdditiveCoupling:
    spec = node.spec
    return AdditiveCoupling(node.params["mask"], node.in_shape, spec.net, spec.net_input)


def build_affine(node: OpNode) -> AffineCoupling:
    spec = node.spec
    return AffineCoupling(
        node.params["mask"], node.in_shape, spec.net, spec.net_input, spec.log_scale
    )
