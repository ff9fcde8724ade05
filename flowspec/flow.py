"""The compiled flow: a flat schedule of bijections, interpreted forward and backward.

Convention (course notes, NICE/RealNVP/Glow): ``forward(x) -> (z, logdet)`` maps data to latent,
``logdet = log|det dz/dx|`` per example ``(N,)``; ``inverse(z) -> x``. ``z`` is always flat
``(N, D)`` with D the input's element count: the latents factored out by splits, in the order
they leave the flow, then the final latent, each flattened in C order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class Step:
    """One scheduled op: its module reads slot ``src`` and writes slots ``dst``."""

    name: str
    module: nn.Module
    src: int
    dst: tuple[int, ...]


class Flow(nn.Module):
    """A normalizing flow compiled from a spec. Build it with :func:`flowspec.compile`."""

    def __init__(
        self,
        spec: Any,
        steps: list[Step],
        latent_slots: list[int],
        latent_shapes: list[tuple[int, ...]],
        n_slots: int,
        base: nn.Module,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.input_shape: tuple[int, ...] = tuple(spec.input.shape)
        self.latent_shapes = [tuple(s) for s in latent_shapes]
        self.latent_sizes = [math.prod(s) for s in self.latent_shapes]
        self.dim = math.prod(self.input_shape)
        for step in steps:
            self._register(step.name, step.module)
        self.base = base
        self.register_buffer("_ref", torch.zeros(()), persistent=False)
        # Plain lists (not ModuleLists): the modules are registered once, under their spec paths.
        self._schedule = [(s.module, s.src, s.dst) for s in steps]
        self._names = [s.name for s in steps]
        self._latent_slots = list(latent_slots)
        self._n_slots = n_slots

    def _register(self, name: str, module: nn.Module) -> None:
        *parents, leaf = name.split(".")
        parent: nn.Module = self
        for part in parents:
            if part not in parent._modules:
                parent.add_module(part, nn.ModuleDict())
            parent = parent._modules[part]
        parent.add_module(leaf, module)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Data -> latent. ``x``: ``(N, *input_shape)``; returns ``z (N, D)``, ``logdet (N,)``."""
        slots: list[Any] = [None] * self._n_slots
        slots[0] = self._as_float(x)
        logdet = torch.zeros(x.shape[0], device=x.device, dtype=self._ref.dtype)
        for module, src, dst in self._schedule:
            y, ld = module(slots[src])
            if len(dst) == 1:
                slots[dst[0]] = y
            else:
                for slot, value in zip(dst, y):
                    slots[slot] = value
            logdet = logdet + ld
        z = torch.cat([slots[s].reshape(x.shape[0], -1) for s in self._latent_slots], dim=1)
        return z, logdet

    def _as_float(self, x: Tensor) -> Tensor:
        """Integer data (e.g. pixel levels before ``dequantize``) in the flow's dtype."""
        return x if x.is_floating_point() else x.to(self._ref.dtype)

    def inverse(self, z: Tensor) -> Tensor:
        """Latent -> data: the schedule walked backwards. ``z (N, D)`` -> ``(N, *input_shape)``."""
        return self.decode(list(z.split(self.latent_sizes, dim=1)))

    def encode(self, x: Tensor) -> list[Tensor]:
        """The latents per scale, each with its own shape ``(N, *latent_shape)``, in z order."""
        z, _ = self.forward(x)
        return [
            p.reshape(x.shape[0], *s)
            for p, s in zip(z.split(self.latent_sizes, dim=1), self.latent_shapes)
        ]

    def decode(self, latents: list[Tensor]) -> Tensor:
        """Inverse of :meth:`encode` (latents may be flat or shaped)."""
        slots: list[Any] = [None] * self._n_slots
        n = latents[0].shape[0]
        for slot, value, shape in zip(self._latent_slots, latents, self.latent_shapes):
            slots[slot] = value.reshape(n, *shape)
        for module, src, dst in reversed(self._schedule):
            y = slots[dst[0]] if len(dst) == 1 else tuple(slots[d] for d in dst)
            slots[src] = module.inverse(y)
        return slots[0]

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x) = log p_Z(f(x)) + log|det df/dx| (notes eq. (7)), shape ``(N,)``."""
        z, logdet = self.forward(x)
        return self.base.log_prob(z) + logdet

    def sample(self, n: int, temperature: float = 1.0) -> Tensor:
        """Draw ``n`` examples: z ~ base at ``temperature``, then ``inverse(z)``."""
        return self.inverse(self.base.sample(n, temperature))

    def bits_per_dim(self, x: Tensor) -> Tensor:
        """Bits per dimension, ``-log p(x) / (D ln 2)`` per example ``(N,)``, D = x's element
        count.

        Convention (RealNVP, Glow): with a ``dequantize`` layer first, ``x`` holds integers
        0..levels-1 and ``p`` is the model's density of the dequantised ``x + u`` at that integer
        scale (the layer's ``-D log(levels)`` is part of ``logdet``; one fresh draw of
        ``u ~ U[0, 1)^D`` per call), which is the number the papers report: in expectation over
        ``u`` an upper bound on the code length of the discrete ``x``. Uniform integers under a
        perfect model give ``log2(levels)``. Without ``dequantize`` it is the continuous
        density of ``x`` as given. Evaluate in eval mode (batchnorm then uses its running
        averages, and no statistics are updated)."""
        return -self.log_prob(x) / (self.dim * math.log(2.0))

    @torch.no_grad()
    def first_nonfinite(self, x: Tensor) -> str | None:
        """Name of the first op whose output or logdet is NaN/Inf on ``x`` (None if all finite)."""
        slots: list[Any] = [None] * self._n_slots
        slots[0] = self._as_float(x)
        for name, (module, src, dst) in zip(self._names, self._schedule):
            y, ld = module(slots[src])
            outs = (y,) if len(dst) == 1 else tuple(y)
            if not all(torch.isfinite(t).all() for t in (*outs, ld)):
                return name
            for slot, value in zip(dst, outs):
                slots[slot] = value
        return None

    @property
    def step_names(self) -> list[str]:
        return list(self._names)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
