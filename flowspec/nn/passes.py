"""Optimisation passes over the compiled steps: the same function, computed with less work.

Each pass is a row of :data:`PASSES`: a function that looks at one :class:`~flowspec.nn.flow.Step`
and, where it applies, rewrites how its module computes, keeping every parameter object under
its name (weights files, optimizer state and checkpoints do not change). ``compile_graph``
applies :data:`~flowspec.spec.passes.DEFAULT_PASSES`; ``flowspec.compile(spec, passes=())``
switches them off and ``flow.passes`` says what was applied where. Each pass is proven by the
float64 oracles to give the same outputs and gradients (to 1e-12) on and off
(``tests/nn/test_passes.py``) and measured in ``benchmarks/passes.py``.

- ``fuse_towers``: separate conditioner towers reading the same input (``towers: separate``,
  the course notebook's shift and log-scale MLPs) run as one batched product per layer: one
  ``addmm`` for both first layers, then one ``baddbmm`` per layer.
- ``kept_inputs``: a coupling with ``net_input: masked`` feeds its MLP ``b * x``, whose
  transformed coordinates are zeros; the first layer multiplies only the kept ones (the columns
  of its weight for them), the same function at ``k / D`` of the cost.

A conditional flow's context features are appended to the MLP's input as in :class:`MLPNet`
(``with_context``); ``kept_inputs`` keeps their columns too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flowspec.nn.nets import MLPNet, with_context
from flowspec.spec.passes import DEFAULT_PASSES

__all__ = ["DEFAULT_PASSES", "PASSES", "FastMLP", "apply_passes"]


class FastMLP(nn.Module):
    """An :class:`MLPNet` computed with its towers fused (``fuse``) and/or its first layer
    restricted to the input coordinates ``kept``. Holds the same ``towers`` / ``trunk``
    submodules, so its parameters keep their names."""

    def __init__(self, net: MLPNet) -> None:
        super().__init__()
        self.n_out, self.separate, self.out_shape = net.n_out, net.separate, net.out_shape
        self.sizes, self.activation = net.sizes, net.activation
        if net.separate:
            self.towers = net.towers
        else:
            self.trunk = net.trunk
        self.fuse = False
        self.register_buffer("kept", None, persistent=False)

    def _first(self, layer: nn.Linear, x: Tensor) -> Tensor:
        if self.kept is None:
            return layer(x)
        weight = layer.weight.index_select(1, self.kept)
        return F.linear(x.index_select(1, self.kept), weight, layer.bias)

    def _chain(self, seq: nn.Sequential, x: Tensor) -> Tensor:
        x = self._first(seq[0], x)
        for module in list(seq)[1:]:
            x = module(x)
        return x

    def _fused(self, x: Tensor) -> Tensor:
        """Towers ``[Linear, act, Linear, ..., Linear]`` as stacked products: (T, N, out)."""
        towers = list(self.towers)
        first = [t[0] for t in towers]
        weight = torch.cat([f.weight for f in first])
        if self.kept is not None:
            x, weight = x.index_select(1, self.kept), weight.index_select(1, self.kept)
        h = F.linear(x, weight, torch.cat([f.bias for f in first]))
        h = h.view(x.shape[0], len(towers), -1).transpose(0, 1)
        for index in range(1, len(towers[0])):
            module = towers[0][index]
            if isinstance(module, nn.Linear):
                w = torch.stack([t[index].weight for t in towers])
                b = torch.stack([t[index].bias for t in towers])
                h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
            else:
                h = module(h)
        return h

    def emit(self) -> Any:
        """As Python source (``flowspec export``): the plain MLP, the same function with the
        same parameter names."""
        return MLPNet.emit(self)  # type: ignore[arg-type]

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, ...]:
        x = with_context(x, context)
        if self.fuse:
            parts = tuple(self._fused(x).unbind(0))
        elif self.separate:
            parts = tuple(self._chain(tower, x) for tower in self.towers)
        else:
            parts = self._chain(self.trunk, x).chunk(self.n_out, dim=1)
        if len(self.out_shape) == 1:
            return parts
        return tuple(p.reshape(x.shape[0], *self.out_shape) for p in parts)


def _fast(step: Any) -> FastMLP | None:
    """The step's MLP conditioner as a :class:`FastMLP` (wrapped in place), or None."""
    net = getattr(step.module, "net", None)
    if isinstance(net, MLPNet):
        step.module.net = net = FastMLP(net)
    return net if isinstance(net, FastMLP) else None


def fuse_towers(step: Any) -> bool:
    """Separate MLP towers reading one input: one batched product per layer."""
    net = getattr(step.module, "net", None)
    if not isinstance(net, (MLPNet, FastMLP)) or not net.separate:
        return False
    fast = _fast(step)
    assert fast is not None
    fast.fuse = True
    return True


def kept_inputs(step: Any) -> bool:
    """``net_input: masked`` on vectors: the first layer reads only the kept coordinates."""
    coupling = step.module
    b = getattr(coupling, "b", None)
    net = getattr(coupling, "net", None)
    if b is None or b.dim() != 2 or not isinstance(net, (MLPNet, FastMLP)):
        return False
    fast = _fast(step)
    assert fast is not None
    kept = torch.nonzero(b[0]).flatten().to(b.device)
    d = b.shape[1]  # the context's features, if any, follow the D coordinates
    context = torch.arange(d, fast.sizes[0], device=b.device, dtype=kept.dtype)
    fast.kept = torch.cat([kept, context])
    return True


PASSES: dict[str, Callable[[Any], bool]] = {
    "fuse_towers": fuse_towers,
    "kept_inputs": kept_inputs,
}


def apply_passes(steps: Sequence[Any], names: Sequence[str]) -> dict[str, list[str]]:
    """Apply the passes ``names`` (in :data:`PASSES` order) to ``steps``; returns, per pass,
    the names of the steps it rewrote."""
    unknown = sorted(set(names) - set(PASSES))
    if unknown:
        raise ValueError(f"unknown pass(es) {unknown}; known: {sorted(PASSES)}")
    return {
        name: [step.name for step in steps if rewrite(step)]
        for name, rewrite in PASSES.items()
        if name in names
    }
