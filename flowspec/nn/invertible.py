"""Invertible backpropagation: train a flow without storing its activations.

With ``flow.memory = "invertible"`` (``train: {memory: invertible}`` in the spec), a forward pass
that needs gradients runs the flow's own loop (:meth:`Flow.run_forward`) under ``no_grad`` and
saves only its output ``z``. The backward pass walks the steps in reverse: it rebuilds each
step's input from its outputs with the step's inverse, re-runs that step alone with grad enabled
and back-propagates through it. Saved memory is the size of ``z`` (plus the inputs of
checkpointed steps) whatever the depth; the price is an inverse and a local forward per step.

A step may rebuild its input and its local graph in one pass with
``inverse_and_forward(outputs, context, need_input) -> (x, leaves, outputs, logdet)``: a coupling
runs its conditioner once for both (the kept half is the same in ``x`` and ``y``), so backward
costs one conditioner evaluation more than plain autograd, not two. The default (any other
bijection) is ``inverse`` under ``no_grad``, then ``forward`` on the detached input.

What a step (or any of its submodules) declares:

- ``invertible_backprop = False``: its input cannot be rebuilt exactly from its output (batch
  norm in training, whose batch statistics are lost; dequantisation, which draws noise). The
  step is then *checkpointed*: its input is stored and its forward re-run with the random state
  of the first run. Active dropout counts the same.
- ``initialized``: a falsy value means a data-dependent initialisation (actnorm) is pending;
  the flow's first forward pass must run without gradients (``flowspec.train`` does it).

Steps before the first one with trainable parameters are never rebuilt when the input needs no
gradient (dequantize and logit at the start of an image flow cost nothing). Buffers that a
recompute changes (running statistics) are restored, so they are updated once per training step,
as under plain autograd. Autocast is replayed. Second-order gradients are refused.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from flowspec.nn.backprop_plan import (
    MEMORY_MODES,
    BackpropMode,
    Plan,
    backprop_mode,
    plan_of,
    require_initialized,
)
from flowspec.nn.recompute import RngState, frozen_buffers, replay_rng, rng_state

__all__ = ["MEMORY_MODES", "BackpropMode", "backprop_mode", "invertible_forward"]

_STEP_FAILURES = (RuntimeError, ValueError, IndexError)


def invertible_forward(
    flow: Any, x: Tensor, context: Tensor | None = None, check: float | None = None
) -> tuple[Tensor, Tensor]:
    """``flow``'s forward pass ``(z, logdet)`` with backward by inversion (module docstring).

    Arguments:
        flow: a :class:`~flowspec.nn.flow.Flow` (its steps, its loop and its latent layout).
        x: the input, already in the flow's dtype.
        context: the conditioning input, or None.
        check: debug mode: also store every step's input and, in backward, raise if a rebuilt
            input differs from the stored one by more than this max-abs error. Memory is then
            that of plain autograd.

    Without grad mode, or when nothing requires grad, this is the plain forward pass.
    """
    plan = plan_of(flow, x, context, check)
    if not torch.is_grad_enabled() or plan.first == len(plan.steps):
        return flow._walk(x, context, None)
    if not plan.ready:
        require_initialized(plan)
        plan.ready = True
    z, logdet = _InvertibleFunction.apply(plan, x, context, *plan.params)
    return z, logdet


class _Recorder:
    """Observes the forward loop: keeps the inputs and random states of the steps whose input
    backward cannot rebuild (or of every step, in check mode)."""

    def __init__(self, plan: Plan, x: Tensor) -> None:
        keep = plan.keep
        self.wanted = {s.src: i for i, s in enumerate(plan.steps) if keep[i]}
        self.index = plan.index
        self.next_rng = {i + 1 for i, k in enumerate(keep[1:]) if k}
        self.inputs: dict[int, Tensor] = {}
        self.rng: dict[int, RngState] = {}
        if keep and keep[0]:
            self.inputs[0], self.rng[0] = x, rng_state(x)

    def __call__(self, step: Any, outs: tuple[Tensor, ...], logdet: Tensor | None) -> None:
        i = self.index[id(step)]
        for slot, value in zip(step.dst, outs):
            if slot in self.wanted:
                self.inputs[self.wanted[slot]] = value
        if i + 1 in self.next_rng:
            self.rng[i + 1] = rng_state(outs[0])


class _InvertibleFunction(torch.autograd.Function):
    """``apply(plan, x, context, *params) -> (z, logdet)``; see the module docstring."""

    @staticmethod
    def forward(ctx: Any, plan: Plan, x: Tensor, context: Tensor | None, *params: Tensor) -> Any:
        recorder = _Recorder(plan, x)
        z, logdet = plan.flow._walk(x, context, recorder)
        kind = x.device.type
        ctx.plan = plan
        ctx.autocast = kind, torch.get_autocast_dtype(kind), torch.is_autocast_enabled(kind)
        ctx.kept = sorted(recorder.inputs)
        ctx.rng = recorder.rng
        ctx.save_for_backward(z, context, *(recorder.inputs[i] for i in ctx.kept))
        return z, logdet

    @staticmethod
    def backward(ctx: Any, grad_z: Tensor | None, grad_logdet: Tensor | None) -> Any:
        if torch.is_grad_enabled():
            raise RuntimeError(
                "invertible backprop does not support create_graph=True or higher-order "
                "gradients; use memory 'plain' for them"
            )
        plan: Plan = ctx.plan
        z, context, *inputs = ctx.saved_tensors
        stored = dict(zip(ctx.kept, inputs))
        wants_context = ctx.needs_input_grad[2]
        ctx_in = None if context is None else context.detach().requires_grad_(wants_context)
        walk = _BackwardWalk(plan, ctx_in, ctx.autocast, stored, ctx.rng)
        walk.start(z, grad_z, grad_logdet)
        for i in reversed(range(plan.first, len(plan.steps))):
            walk.step(i)
        grad_x = walk.grads.get(0) if ctx.needs_input_grad[1] else None
        return (None, grad_x, walk.grad_context, *walk.grad_params)


class _BackwardWalk:
    """The state of the backward pass: the values and gradients of the slots not yet consumed,
    and the gradients gathered so far."""

    def __init__(
        self,
        plan: Plan,
        context: Tensor | None,
        autocast: tuple[str, torch.dtype, bool],
        stored: dict[int, Tensor],
        rng: dict[int, RngState],
    ) -> None:
        self.plan, self.context, self.autocast = plan, context, autocast
        self.stored, self.rng = stored, rng
        self.values: dict[int, Tensor] = {}
        self.grads: dict[int, Tensor | None] = {}
        self.grad_context: Tensor | None = None
        self.grad_params: list[Tensor | None] = [None] * len(plan.params)
        self.grad_logdet: Tensor | None = None

    def start(self, z: Tensor, grad_z: Tensor | None, grad_logdet: Tensor | None) -> None:
        flow, n = self.plan.flow, z.shape[0]
        parts = z.split(flow.latent_sizes, dim=1)
        grads = (
            grad_z.split(flow.latent_sizes, dim=1) if grad_z is not None else [None] * len(parts)
        )
        for slot, value, grad, shape in zip(flow._latent_slots, parts, grads, flow.latent_shapes):
            self.values[slot] = value.reshape(n, *shape)
            self.grads[slot] = None if grad is None else grad.reshape(n, *shape)
        self.grad_logdet = grad_logdet

    def step(self, i: int) -> None:
        plan, step = self.plan, self.plan.steps[i]
        outs = [self.values.pop(d) for d in step.dst]
        seeds = [self.grads.pop(d, None) for d in step.dst]
        need_input = plan.input_grad[i]
        try:
            with contextlib.ExitStack() as stack:
                if plan.stateful[i]:
                    stack.enter_context(frozen_buffers(*plan.stateful[i]))
                if self.autocast[2]:
                    stack.enter_context(torch.autocast(*self.autocast))
                x, leaves, y, logdet = self._local_graph(i, outs, need_input)
        except _STEP_FAILURES as exc:
            raise RuntimeError(
                f"step '{step.name}' ({step.kind}, spec path {step.path}) failed while "
                f"invertible backprop rebuilt its input: {exc}"
            ) from exc
        self.values[step.src] = x
        produced = list(y) if len(step.dst) > 1 else [y]
        pairs = [
            (o, g)
            for o, g in zip([*produced, logdet], [*seeds, self.grad_logdet])
            if g is not None and o.requires_grad
        ]
        wrt = [leaf for leaf in leaves if leaf.requires_grad]
        use_context = self.context is not None and self.context.requires_grad
        wrt += [self.context] if use_context else []
        wrt += [plan.params[j] for j in plan.owned[i]]
        got: list[Tensor | None] = [None] * len(wrt)
        if pairs and wrt:
            outputs, grads = zip(*pairs)
            got = list(torch.autograd.grad(outputs, wrt, grads, allow_unused=True))
        n_leaves = len(wrt) - len(plan.owned[i]) - int(use_context)
        self.grads[step.src] = _sum(got[:n_leaves]) if need_input else None
        if use_context:
            self.grad_context = _add(self.grad_context, got[n_leaves])
        for j, g in zip(plan.owned[i], got[n_leaves + int(use_context) :]):
            self.grad_params[j] = _add(self.grad_params[j], g)

    def _local_graph(
        self, i: int, outs: list[Tensor], need_input: bool
    ) -> tuple[Tensor, list[Tensor], Any, Tensor]:
        """Step ``i``'s input and its forward graph from detached leaves."""
        plan, step = self.plan, self.plan.steps[i]
        module, context = step.module, self.context
        y = outs[0] if len(outs) == 1 else tuple(outs)
        if plan.modes[i] == "checkpoint":
            x = self.stored[i]
            leaf = x.detach().requires_grad_(need_input and x.is_floating_point())
            with torch.enable_grad(), replay_rng(self.rng.get(i), x.device):
                out, logdet = module(leaf, context)
            return x, [leaf], out, logdet
        rebuild = getattr(module, "inverse_and_forward", None)
        with torch.enable_grad():
            if rebuild is not None:
                x, leaves, out, logdet = rebuild(y, context, need_input)
            else:
                with torch.no_grad():
                    x = module.inverse(y, context)
                leaf = x.detach().requires_grad_(need_input)
                out, logdet = module(leaf, context)
                leaves = [leaf]
        if plan.check is not None:
            self._check(i, x)
        return x, leaves, out, logdet

    def _check(self, i: int, x: Tensor) -> None:
        step, tolerance = self.plan.steps[i], self.plan.check
        error = (x - self.stored[i]).abs().max().item()
        if not error <= tolerance:
            raise RuntimeError(
                f"the input of step '{step.name}' ({step.kind}) rebuilt by its inverse differs "
                f"from the stored one by {error:.3g} > check={tolerance:.3g}"
            )


def _add(total: Tensor | None, term: Tensor | None) -> Tensor | None:
    return term if total is None else total if term is None else total + term


def _sum(terms: Sequence[Tensor | None]) -> Tensor | None:
    total: Tensor | None = None
    for term in terms:
        total = _add(total, term)
    return total
