"""The compiled flow: a flat list of steps, interpreted forward and backward by one loop each.

Convention (course notes, NICE/RealNVP/Glow): ``forward(x) -> (z, logdet)`` maps data to latent,
``logdet = log|det dz/dx|`` per example ``(N,)``; ``inverse(z) -> x``. ``z`` is always flat
``(N, D)`` with D the input's element count: the latents factored out by splits, in the order
they leave the flow, then the final latent, each flattened in C order.

A conditional flow (a spec with ``context:``) takes a ``context`` in every method: class labels
``(N,)`` or vectors ``(N, K)``, or one context for all examples. It is checked and encoded once
per call (:class:`~flowspec.nn.context.ContextEncoder`) and the features go to every step and to
the base. A missing context, or one given to an unconditional flow, is a ``ValueError``.

The two loops (:meth:`Flow.run_forward`, :meth:`Flow.decode`) are the only places that walk the
steps. Tools that need to see inside (the non-finite probe, the flow-steps figure, tests) pass
an ``observe`` callback, called after each step with the :class:`Step` and what it produced. A
runtime error inside a step is re-raised as :class:`StepError`, naming the step, its kind, its
spec path and the shapes it received.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["Flow", "Observer", "Step", "StepError"]


@dataclass(frozen=True, eq=False)
class Step:
    """One op of the flow: its module reads slot ``src`` and writes slots ``dst`` (two for a
    split: kept, then factored out). ``name`` is the instance path the module is registered
    under (``layers.0.3.1``), ``path`` the spec path it was written at (``layers.0.body.1``)."""

    name: str
    kind: str
    path: str
    module: nn.Module
    src: int
    dst: tuple[int, ...]


# observe(step, outputs, logdet): outputs is a tuple (one tensor, or two for a split); logdet is
# None when walking backwards.
Observer = Callable[[Step, tuple[Tensor, ...], "Tensor | None"], None]

_STEP_FAILURES = (RuntimeError, ValueError, IndexError)


class StepError(RuntimeError):
    """A step of a flow failed at run time; the message names the step and the shapes it saw."""


class Flow(nn.Module):
    """A normalizing flow compiled from a spec. Build it with :func:`flowspec.compile`."""

    def __init__(
        self,
        spec: Any,
        steps: Sequence[Step],
        latent_slots: Sequence[int],
        latent_shapes: Sequence[tuple[int, ...]],
        n_slots: int,
        base: nn.Module,
        context: nn.Module | None = None,
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
        self.context = context  # the ContextEncoder of a conditional flow
        self.register_buffer("_ref", torch.zeros(()), persistent=False)
        # A plain tuple (not a ModuleList): the modules are registered once, under their names.
        self._steps = tuple(steps)
        # What the loops run when nobody observes single steps: the steps, or compiled regions
        # of them (flowspec.nn.regions.compile_regions).
        self.schedule: tuple[Step, ...] = self._steps
        self._latent_slots = tuple(latent_slots)
        self._n_slots = n_slots
        self.graph: Any = None  # the FlowGraph it was compiled from (set by compile_graph)
        self._memory = "plain"
        self.memory_check: float | None = None  # invertible mode's debug check (see memory)
        self.passes: dict[str, list[str]] = {}  # optimisation pass -> steps it rewrote

    def _register(self, name: str, module: nn.Module) -> None:
        *parents, leaf = name.split(".")
        parent: nn.Module = self
        for part in parents:
            if part not in parent._modules:
                parent.add_module(part, nn.ModuleDict())
            parent = parent._modules[part]
        parent.add_module(leaf, module)

    # ------------------------------------------------------------------ the context
    @property
    def conditional(self) -> bool:
        """Whether the flow takes a context."""
        return self.context is not None

    def context_features(self, context: Any, n: int) -> Tensor | None:
        """The features ``(n, F)`` of ``context`` for ``n`` examples (None for an unconditional
        flow), after checking it; see the module docstring."""
        if self.context is None:
            if context is not None:
                raise ValueError(
                    "this flow is unconditional (its spec has no 'context:'); call it without "
                    "a context"
                )
            return None
        if context is None:
            raise ValueError(
                f"this flow is conditional: pass context=... ({self.context.describe()})"
            )
        return self.context.features_for(context, n)

    # ------------------------------------------------------------------ the two loops
    def run_forward(
        self, x: Tensor, context: Any = None, observe: Observer | None = None
    ) -> tuple[Tensor, Tensor]:
        """Data -> latent, calling ``observe`` after each step; see :meth:`forward`."""
        self._check_input(x)
        return self._forward_steps(x, self.context_features(context, x.shape[0]), observe)

    def _check_input(self, x: Tensor) -> None:
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"x has per-example shape {tuple(x.shape[1:])}; the flow's input is "
                f"{self.input_shape} (x must be (N, *input_shape))"
            )

    def _forward_steps(
        self, x: Tensor, context: Tensor | None, observe: Observer | None
    ) -> tuple[Tensor, Tensor]:
        """The forward pass given the context features: invertible backprop when the flow's
        memory mode asks for it and gradients are on, else the plain loop."""
        x = self._as_float(x)
        if observe is None and self._memory == "invertible" and torch.is_grad_enabled():
            from flowspec.nn.invertible import invertible_forward

            return invertible_forward(self, x, context, self.memory_check)
        return self._walk(x, context, observe)

    def _walk(
        self, x: Tensor, context: Tensor | None, observe: Observer | None
    ) -> tuple[Tensor, Tensor]:
        """The forward loop itself (``x`` already checked and in the flow's dtype; ``context``
        the encoded features or None)."""
        slots: list[Any] = [None] * self._n_slots
        slots[0] = x
        logdet = torch.zeros(x.shape[0], device=x.device, dtype=self._ref.dtype)
        step: Step | None = None
        try:
            for step in self._steps if observe is not None else self.schedule:
                y, ld = step.module(slots[step.src], context)
                outs = (y,) if len(step.dst) == 1 else tuple(y)
                for slot, value in zip(step.dst, outs):
                    slots[slot] = value
                logdet = logdet + ld
                if observe is not None:
                    observe(step, outs, ld)
        except _STEP_FAILURES as exc:
            raise _failure(step, "forward", slots[step.src] if step else x, exc) from exc
        z = torch.cat([slots[s].reshape(x.shape[0], -1) for s in self._latent_slots], dim=1)
        return z, logdet

    def decode(
        self,
        latents: Sequence[Tensor],
        context: Any = None,
        observe: Observer | None = None,
    ) -> Tensor:
        """Latent -> data: the steps walked backwards. ``latents`` are the per-scale latents in
        z order (flat or shaped); ``observe`` is called after each step's inverse."""
        features = self.context_features(context, latents[0].shape[0])
        return self._inverse_steps(latents, features, observe, with_logdet=False)[0]

    def _inverse_steps(
        self,
        latents: Sequence[Tensor],
        context: Tensor | None,
        observe: Observer | None,
        with_logdet: bool,
    ) -> tuple[Tensor, Tensor]:
        """The backward loop over the steps, given the context features; with ``with_logdet``
        also the summed ``log|det dx/dz|`` (each step's ``inverse_and_logdet``; zeros without)."""
        slots: list[Any] = [None] * self._n_slots
        n = latents[0].shape[0]
        for slot, value, shape in zip(self._latent_slots, latents, self.latent_shapes):
            slots[slot] = value.reshape(n, *shape)
        logdet = torch.zeros(n, device=latents[0].device, dtype=latents[0].dtype)
        step: Step | None = None
        try:
            for step in reversed(self._steps if observe is not None else self.schedule):
                y = slots[step.dst[0]] if len(step.dst) == 1 else tuple(slots[d] for d in step.dst)
                if with_logdet:
                    slots[step.src], ld = step.module.inverse_and_logdet(y, context)
                    logdet = logdet + ld
                else:
                    slots[step.src], ld = step.module.inverse(y, context), None
                if observe is not None:
                    observe(step, (slots[step.src],), ld)
        except _STEP_FAILURES as exc:
            seen = slots[step.dst[0]] if step else latents[0]
            raise _failure(step, "inverse", seen, exc) from exc
        return slots[0], logdet

    # ------------------------------------------------------------------ the public face
    @property
    def memory(self) -> str:
        """How a training step keeps what backward needs: ``"plain"`` (autograd stores every
        activation) or ``"invertible"`` (only ``z``: backward rebuilds each step's input with
        its inverse, :mod:`flowspec.nn.invertible`). Set from the spec's ``train: {memory:}``
        by :func:`flowspec.compile`; assignable. Outputs and gradients are the same either way
        (to rounding); only memory and time differ."""
        return self._memory

    @memory.setter
    def memory(self, mode: str) -> None:
        if mode not in ("plain", "invertible"):
            raise ValueError(f"memory must be 'plain' or 'invertible', got {mode!r}")
        self._memory = mode

    def forward(self, x: Tensor, context: Any = None) -> tuple[Tensor, Tensor]:
        """Data -> latent. ``x``: ``(N, *input_shape)``; returns ``z (N, D)``, ``logdet (N,)``.
        ``context``: the conditional flow's context (see the module docstring)."""
        return self.run_forward(x, context)

    def inverse(self, z: Tensor, context: Any = None) -> Tensor:
        """Latent -> data. ``z (N, D)`` -> ``(N, *input_shape)``."""
        self._check_latent(z)
        return self.decode(list(z.split(self.latent_sizes, dim=1)), context)

    def inverse_and_logdet(self, z: Tensor, context: Any = None) -> tuple[Tensor, Tensor]:
        """Latent -> data with ``log|det dx/dz|`` per example ``(N,)``, from one backward pass
        (each step's inverse also gives its log-determinant)."""
        self._check_latent(z)
        features = self.context_features(context, z.shape[0])
        return self._inverse_steps(list(z.split(self.latent_sizes, dim=1)), features, None, True)

    def _check_latent(self, z: Tensor) -> None:
        if z.dim() != 2 or z.shape[1] != self.dim:
            raise ValueError(f"z of shape {tuple(z.shape)}; the flow's latent is (N, {self.dim})")

    def encode(self, x: Tensor, context: Any = None) -> list[Tensor]:
        """The latents per scale, each with its own shape ``(N, *latent_shape)``, in z order."""
        z, _ = self.forward(x, context)
        return [
            p.reshape(x.shape[0], *s)
            for p, s in zip(z.split(self.latent_sizes, dim=1), self.latent_shapes)
        ]

    def log_prob(self, x: Tensor, context: Any = None) -> Tensor:
        """log p(x) = log p_Z(f(x)) + log|det df/dx| (notes eq. (7)), shape ``(N,)``; for a
        conditional flow log p(x | context).

        Raises:
            ValueError: ``x`` is not a tensor of shape ``(N, *input_shape)``, or the context
                does not fit the flow.
        """
        if not isinstance(x, Tensor):
            raise ValueError(
                f"x must be a torch.Tensor of shape (N, *{self.input_shape}), "
                f"got {type(x).__name__}"
            )
        self._check_input(x)
        features = self.context_features(context, x.shape[0])
        z, logdet = self._forward_steps(x, features, None)
        return self.base.log_prob(z, features) + logdet

    def sample(self, n: int, temperature: float = 1.0, context: Any = None) -> Tensor:
        """Draw ``n`` examples: z ~ base at ``temperature``, then ``inverse(z)``. ``context``:
        one context for all ``n`` (a label, or a ``(K,)`` vector) or ``n`` of them.

        Raises:
            ValueError: ``n`` is not an integer >= 0, or ``temperature`` is negative, NaN or
                infinite (0 gives the image of the base's mean), or the context does not fit.
        """
        self._check_sampling(n, temperature)
        features = self.context_features(context, n)
        z = self.base.sample(n, temperature, features)
        return self._inverse_steps(list(z.split(self.latent_sizes, dim=1)), features, None, False)[
            0
        ]

    @staticmethod
    def _check_sampling(n: int, temperature: float) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be an integer >= 0 (the number of samples), got {n!r}")
        if isinstance(temperature, bool) or not (0 <= float(temperature) < math.inf):
            raise ValueError(
                f"temperature must be a finite number >= 0 (it scales the base's standard "
                f"deviations), got {temperature!r}"
            )

    def sample_and_log_prob(
        self, n: int, temperature: float = 1.0, context: Any = None
    ) -> tuple[Tensor, Tensor]:
        """``n`` samples and the model's log-density of each, ``(n, *input_shape)`` and
        ``(n,)``, in one backward pass (each step's inverse also gives its log-determinant;
        an IAF layer needs no D-pass solve). The density is the model's at temperature 1,
        whatever ``temperature`` drew the samples; after a ``dequantize`` step it is the density
        of the continuous value before rounding, as :meth:`log_prob` scores ``x + u``.

        Example:
            >>> import flowspec, torch
            >>> flow = flowspec.compile("specs/realnvp_moons.yaml")
            >>> _ = flow(torch.randn(256, 2))  # actnorm's data-dependent initialisation
            >>> x, log_p = flow.eval().sample_and_log_prob(4)
            >>> bool(torch.allclose(log_p, flow.log_prob(x), atol=1e-4))
            True
        """
        self._check_sampling(n, temperature)
        features = self.context_features(context, n)
        z = self.base.sample(n, temperature, features)
        x, logdet = self._inverse_steps(
            list(z.split(self.latent_sizes, dim=1)), features, None, True
        )
        return x, self.base.log_prob(z, features) - logdet

    def bits_per_dim(self, x: Tensor, context: Any = None) -> Tensor:
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
        return -self.log_prob(x, context) / (self.dim * math.log(2.0))

    @torch.no_grad()
    def first_nonfinite(self, x: Tensor, context: Any = None) -> str | None:
        """Name of the first step whose output or logdet is NaN/Inf on ``x`` (None if all
        finite)."""
        found: list[str] = []

        def probe(step: Step, outs: tuple[Tensor, ...], logdet: Tensor | None) -> None:
            if not found and not all(torch.isfinite(t).all() for t in (*outs, logdet)):
                found.append(step.name)

        self.run_forward(x, context, observe=probe)
        return found[0] if found else None

    @torch.no_grad()
    def first_nonfinite_inverse(self, z: Tensor, context: Tensor | None = None) -> str | None:
        """Name of the first step of the inverse pass (latent -> data) whose output is NaN/Inf
        on ``z`` of shape ``(N, D)`` (None if all finite)."""
        found: list[str] = []

        def probe(step: Step, outs: tuple[Tensor, ...], logdet: Tensor | None) -> None:
            if not found and not all(torch.isfinite(t).all() for t in outs):
                found.append(step.name)

        self.decode(list(z.split(self.latent_sizes, dim=1)), context, observe=probe)
        return found[0] if found else None

    @property
    def steps(self) -> tuple[Step, ...]:
        """The steps in execution order (data -> latent)."""
        return self._steps

    @property
    def step_names(self) -> list[str]:
        return [step.name for step in self._steps]

    @property
    def discrete_levels(self) -> int | None:
        """The ``levels`` of a ``dequantize`` step that starts the flow (integer data), else
        None. (Not ``levels``: that name is the submodule of a multiscale flow's ``levels:``.)"""
        first = self._steps[0] if self._steps else None
        return first.module.levels if first is not None and first.kind == "dequantize" else None

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _as_float(self, x: Tensor) -> Tensor:
        """Integer data (e.g. pixel levels before ``dequantize``) in the flow's dtype."""
        return x if x.is_floating_point() else x.to(self._ref.dtype)


def _failure(step: Step | None, direction: str, seen: Any, exc: Exception) -> StepError:
    shapes = (
        " and ".join(str(tuple(t.shape)) for t in seen)
        if isinstance(seen, tuple)
        else str(tuple(getattr(seen, "shape", ())))
    )
    where = f"step '{step.name}' ({step.kind}, spec path {step.path})" if step else "the flow"
    return StepError(f"{where} failed in {direction} on input of shape {shapes}: {exc}")
