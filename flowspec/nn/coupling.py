"""Couplings (NICE, RealNVP, Glow): one structure, the elementwise map from a table.

With mask ``b`` (1 = kept, 0 = transformed), course notes eq. (7)-(8) / (27)-(28), for the affine
transform: ``z = b*x + (1-b) * (x * exp(s(b*x)) + t(b*x))`` and
``x = b*z + (1-b) * ((z - t) * exp(-s))``, logdet ``sum((1-b) * s)``. With ``net_input: half``
the kept and transformed parts are gathered instead, along the axis the mask cuts (features,
channels, whole tokens, or the same values of every token: ``flowspec.layers.masks.split_axis``),
so the network sees only the kept part (Jet's couplings on tokens). Which elementwise map is
applied is a row of :data:`flowspec.nn.transforms.TRANSFORMS`.
"""

from __future__ import annotations

import hashlib
from math import prod
from typing import Any

import torch
from torch import Tensor

from flowspec.layers.masks import split_axis
from flowspec.nn.base import Bijection, sum_except_batch, zeros_logdet
from flowspec.nn.emit import Emitted, emit_part, literal
from flowspec.nn.nets import build_net
from flowspec.nn.transforms import Transform, build_transform

__all__ = ["Coupling", "build"]


class Coupling(Bijection):
    """A coupling on ``(N, *shape)``: ``transform`` changes the elements where ``mask`` is 0,
    with parameters the conditioner ``net`` computes from the elements where it is 1."""

    def __init__(
        self,
        mask: tuple[int, ...],
        shape: tuple[int, ...],
        net_spec: Any,
        net_input: str,
        transform: Transform,
        context: int = 0,
    ) -> None:
        super().__init__()
        self.half = net_input == "half"
        self.transform = transform
        self.mask, self.shape, self.net_input = tuple(mask), tuple(shape), net_input
        b = torch.tensor(mask, dtype=torch.get_default_dtype()).reshape(1, *shape)
        if self.half:
            # gather along the axis the mask cuts: features, channels, tokens or token values
            self.axis = split_axis(mask, shape) or 1
            stride = prod(shape[self.axis :])
            size = shape[self.axis - 1]
            kept = [i for i in range(size) if mask[i * stride]]
            moved = [i for i in range(size) if not mask[i * stride]]
            order = torch.tensor(kept + moved)
            self.n_kept = len(kept)
            self.contiguous = kept + moved == list(range(size))
            self.register_buffer("order", order, persistent=False)
            self.register_buffer("unorder", torch.argsort(order), persistent=False)
            before, after = shape[: self.axis - 1], shape[self.axis :]
            in_shape, out_shape = (*before, len(kept), *after), (*before, len(moved), *after)
        else:
            self.contiguous = True
            self.register_buffer("b", b, persistent=False)
            self.register_buffer("kept", b.bool(), persistent=False)
            in_shape = out_shape = shape
        self.takes_context = context > 0
        self.net = build_net(net_spec, in_shape, out_shape, transform.n_params, context)
        transform.add_parameters(self, out_shape)

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if not self.contiguous:
            x = x.index_select(self.axis, self.order)
        return x.split([self.n_kept, x.shape[self.axis] - self.n_kept], dim=self.axis)

    def _merge(self, kept: Tensor, moved: Tensor) -> Tensor:
        y = torch.cat([kept, moved], dim=self.axis)
        return y if self.contiguous else y.index_select(self.axis, self.unorder)

    def _params(self, conditioned: Tensor, context: Tensor | None) -> tuple[Tensor, ...]:
        return self.net(conditioned, context if self.takes_context else None)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.half:
            kept, moved = self._split(x)
            moved, log_abs = self.transform.forward(self, moved, self._params(kept, context))
            logdet = zeros_logdet(x) if log_abs is None else sum_except_batch(log_abs)
            return self._merge(kept, moved), logdet
        b = self.b.to(x.dtype)
        y, log_abs = self.transform.forward(self, x, self._params(b * x, context))
        logdet = zeros_logdet(x) if log_abs is None else sum_except_batch(log_abs * (1 - b))
        return torch.where(self.kept, x, y), logdet

    def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        return self.inverse_and_logdet(y, context, with_logdet=False)[0]

    def inverse_and_logdet(
        self, y: Tensor, context: Tensor | None = None, with_logdet: bool = True
    ) -> tuple[Tensor, Tensor | None]:
        """The inverse and ``log|det dx/dy|`` from one pass of the conditioner."""
        if self.half:
            kept, moved = self._split(y)
            params = self._params(kept, context)
            if not with_logdet:
                return self._merge(kept, self.transform.inverse(self, moved, params)), None
            moved, log_abs = self.transform.inverse_and_logabsdet(self, moved, params)
            logdet = zeros_logdet(y) if log_abs is None else sum_except_batch(log_abs)
            return self._merge(kept, moved), logdet
        b = self.b.to(y.dtype)
        params = self._params(b * y, context)
        if not with_logdet:
            return torch.where(self.kept, y, self.transform.inverse(self, y, params)), None
        x, log_abs = self.transform.inverse_and_logabsdet(self, y, params)
        logdet = zeros_logdet(y) if log_abs is None else sum_except_batch(log_abs * (1 - b))
        return torch.where(self.kept, y, x), logdet

    def inverse_and_forward(
        self, y: Tensor, context: Tensor | None, need_input: bool
    ) -> tuple[Tensor, list[Tensor], Tensor, Tensor]:
        """Invertible backprop (:mod:`flowspec.nn.invertible`): the input ``x`` rebuilt from
        ``y`` and this coupling's forward graph, with one conditioner evaluation for both.

        The kept elements are the same in ``x`` and ``y``, so the conditioner runs once, with
        grad, on the kept part of a leaf holding ``y``; the transform is inverted with its
        detached output and re-applied, with grad, to a second leaf holding ``x``. The
        gradient with respect to ``x`` is the sum of the two leaves' gradients (the first
        one's is zero where elements are transformed). Returns ``(x, leaves, y, logdet)``."""
        source = y.detach().requires_grad_(need_input)
        if self.half:
            params = self._params(self._split(source)[0], context)
            kept, moved = self._split(y)
            with torch.no_grad():
                fixed = tuple(p.detach() for p in params)
                x = self._merge(kept, self.transform.inverse(self, moved, fixed))
            leaf = x.detach().requires_grad_(need_input)
            kept, moved = self._split(leaf)
            moved, log_abs = self.transform.forward(self, moved, params)
            logdet = zeros_logdet(y) if log_abs is None else sum_except_batch(log_abs)
            return x, [source, leaf], self._merge(kept, moved), logdet
        b = self.b.to(y.dtype)
        params = self._params(b * source, context)
        with torch.no_grad():
            fixed = tuple(p.detach() for p in params)
            x = torch.where(self.kept, y, self.transform.inverse(self, y, fixed))
        leaf = x.detach().requires_grad_(need_input)
        out, log_abs = self.transform.forward(self, leaf, params)
        logdet = zeros_logdet(y) if log_abs is None else sum_except_batch(log_abs * (1 - b))
        return x, [source, leaf], torch.where(self.kept, leaf, out), logdet

    def emit(self) -> Emitted:
        net = emit_part(self.net, "the conditioner")
        transform = emit_part(self.transform, "the coupling's transform")
        mask, own = literal(self.mask), {"Coupling": SOURCE}
        if len(self.mask) > 32:  # an image mask: a named constant of 0/1 digits, once per mask
            bits = "".join(map(str, self.mask))
            mask = "MASK_" + hashlib.sha256(bits.encode()).hexdigest()[:8]
            rows = "\n".join(f'    "{bits[i : i + 64]}"' for i in range(0, len(bits), 64))
            shape = " x ".join(map(str, self.shape))
            own[mask] = f"{mask} = (  # {shape}, C order, 1 = kept\n{rows}\n)"
        args = [mask, literal(self.shape), net.expr, literal(self.net_input), transform.expr]
        if self.half and self.axis != 1:  # the kept part is gathered along another dim
            args.append(f"axis={self.axis}")
        return Emitted.of(f"Coupling({', '.join(args)})", own, (net, transform))


SOURCE = '''
class Coupling(nn.Module):
    """A coupling: with mask b (1 = kept, 0 = transformed) the transform changes the elements
    where b is 0, with parameters the conditioner net computes from those where it is 1. With
    net_input "half" the kept and transformed parts are gathered along dim axis (1: features,
    channels or tokens; 2: the values of every token) and the net sees only the kept part; with
    "masked" it sees b * x at full size."""

    def __init__(self, mask, shape, net: nn.Module, net_input: str, transform, axis=1) -> None:
        super().__init__()
        mask = tuple(int(bit) for bit in mask)  # a tuple, or a string of 0/1 digits
        self.half = net_input == "half"
        self.transform = transform
        b = torch.tensor(mask, dtype=torch.get_default_dtype()).reshape(1, *shape)
        if self.half:
            self.axis = axis
            stride, size = math.prod(shape[axis:]), shape[axis - 1]
            kept = [i for i in range(size) if mask[i * stride]]
            moved = [i for i in range(size) if not mask[i * stride]]
            order = torch.tensor(kept + moved)
            self.n_kept = len(kept)
            self.contiguous = kept + moved == list(range(size))
            self.register_buffer("order", order, persistent=False)
            self.register_buffer("unorder", torch.argsort(order), persistent=False)
            out_shape = (*shape[: axis - 1], len(moved), *shape[axis:])
        else:
            self.contiguous = True
            self.register_buffer("b", b, persistent=False)
            self.register_buffer("kept", b.bool(), persistent=False)
            out_shape = tuple(shape)
        self.net = net
        transform.add_parameters(self, out_shape)

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if not self.contiguous:
            x = x.index_select(self.axis, self.order)
        return x.split([self.n_kept, x.shape[self.axis] - self.n_kept], dim=self.axis)

    def _merge(self, kept: Tensor, moved: Tensor) -> Tensor:
        y = torch.cat([kept, moved], dim=self.axis)
        return y if self.contiguous else y.index_select(self.axis, self.unorder)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.half:
            kept, moved = self._split(x)
            moved, log_abs = self.transform.forward(self, moved, self.net(kept))
            logdet = zeros_logdet(x) if log_abs is None else sum_except_batch(log_abs)
            return self._merge(kept, moved), logdet
        b = self.b.to(x.dtype)
        y, log_abs = self.transform.forward(self, x, self.net(b * x))
        logdet = zeros_logdet(x) if log_abs is None else sum_except_batch(log_abs * (1 - b))
        return torch.where(self.kept, x, y), logdet

    def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        if self.half:
            kept, moved = self._split(y)
            return self._merge(kept, self.transform.inverse(self, moved, self.net(kept)))
        b = self.b.to(y.dtype)
        return torch.where(self.kept, y, self.transform.inverse(self, y, self.net(b * y)))
'''


def build(spec: Any, in_shape: tuple[int, ...], params: Any) -> Coupling:
    """Any coupling kind: ``coupling`` with its ``transform``, or ``additive_coupling`` /
    ``affine_coupling`` with theirs fixed."""
    transform = build_transform(spec.transform_spec)
    return Coupling(
        params["mask"], in_shape, spec.net, spec.net_input, transform, params.get("context", 0)
    )
