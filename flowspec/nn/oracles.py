"""Numerical oracles for a compiled flow (``flowspec check`` runs them; so do the tests).

* round trip: ``max |inverse(forward(x)) - x|`` and ``max |forward(inverse(z)) - z|``;
* log-determinant: the flow's ``logdet`` against ``log|det J|`` of the brute-force Jacobian of
  ``x -> z`` from autograd, per example, in float64 (at a fixed context, for a conditional flow);
* the inverse's log-determinant (what ``sample_and_log_prob`` sums) against minus the forward's
  at the point it returns;
* round trip on data (flows that start with ``dequantize``): integer data through the flow as
  it is used, with dequantisation noise and the inverse's rounding, must come back exactly.

A conditional flow is checked at random contexts (:func:`example_context`).

Stochastic ops (dequantization noise) are made deterministic for the first three comparisons
and batch-statistics ops run in eval mode, so that every example is an independent bijection.
An error or a tolerance that is not finite is a failure, never a pass.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from flowspec.nn.flow import Flow

__all__ = [
    "OracleResult",
    "data_round_trip",
    "deterministic",
    "example_context",
    "example_inputs",
    "jacobian_logdet",
    "perturb_parameters",
    "run_oracles",
]


@dataclass(frozen=True)
class OracleResult:
    name: str
    error: float
    tolerance: float

    @property
    def ok(self) -> bool:
        """Within tolerance; NaN or infinite errors (or tolerances) always fail."""
        finite = math.isfinite(self.error) and math.isfinite(self.tolerance)
        return bool(finite and self.error <= self.tolerance)


@contextlib.contextmanager
def deterministic(flow: Flow) -> Iterator[Flow]:
    """Eval mode, no dequantization noise or rounding; restores everything afterwards."""
    saved = [(m, m.noise, m.round) for m in flow.modules() if hasattr(m, "noise")]
    training = flow.training
    flow.eval()
    for m, _, _ in saved:
        m.noise, m.round = False, False
    try:
        yield flow
    finally:
        for m, noise, rnd in saved:
            m.noise, m.round = noise, rnd
        flow.train(training)


@torch.no_grad()
def perturb_parameters(flow: Flow, scale: float = 0.1, seed: int = 0) -> Flow:
    """Add ``scale`` x N(0, 1) noise to every parameter, in place.

    Fresh flows start as (near) identities because their last layers are zero-initialised; a
    comparison on such a flow would pass trivially, so checks of a spec perturb it first.
    """
    gen = torch.Generator().manual_seed(seed)
    for p in flow.parameters():
        p.add_(scale * torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype))
    return flow


def example_inputs(flow: Flow, n: int, generator: torch.Generator | None = None) -> Tensor:
    """Inputs in the flow's domain: uniform in (0.05, 0.95) x levels after ``dequantize``,
    uniform in (0.05, 0.95) before a ``logit``, standard normal otherwise."""
    shape = (n, *flow.input_shape)
    kind = flow.steps[0].kind if flow.steps else None
    if kind in ("dequantize", "logit"):
        u = 0.05 + 0.9 * torch.rand(shape, generator=generator, dtype=torch.float64)
        return u * flow.steps[0].module.levels if kind == "dequantize" else u
    return torch.randn(shape, generator=generator, dtype=torch.float64)


def example_context(flow: Flow, n: int, generator: torch.Generator | None = None) -> Tensor | None:
    """Random contexts for ``n`` examples (None for an unconditional flow): uniform class
    labels, or standard normal vectors."""
    if not flow.conditional:
        return None
    classes = flow.context.classes
    if classes is not None:
        return torch.randint(0, classes, (n,), generator=generator)
    return torch.randn(n, flow.context.features, generator=generator, dtype=torch.float64)


def jacobian_logdet(flow: Flow, x: Tensor, context: Tensor | None = None) -> Tensor:
    """``log|det dz/dx|`` per example from the autograd Jacobian (float64), shape ``(N,)``, at
    each example's context (if any) held fixed."""
    out = []
    for i, xi in enumerate(x):
        ci = None if context is None else context[i : i + 1]
        jac = torch.autograd.functional.jacobian(lambda v, c=ci: flow(v.unsqueeze(0), c)[0][0], xi)
        out.append(torch.linalg.slogdet(jac.reshape(jac.shape[0], -1))[1])
    return torch.stack(out)


def data_round_trip(flow: Flow, n: int, generator: torch.Generator) -> OracleResult | None:
    """For a flow that starts with ``dequantize``: ``n`` integer examples through the flow as
    used (eval mode, noise and rounding on) and back; they must be recovered exactly. None for
    other flows (their domain inputs are covered by the deterministic round trip)."""
    levels = flow.discrete_levels
    if levels is None:
        return None
    x = torch.randint(0, levels, (n, *flow.input_shape), generator=generator).double()
    c = example_context(flow, n, generator)
    training = flow.training
    flow.eval()
    try:
        with torch.no_grad():
            back = flow.inverse(flow(x, c)[0], c)
    finally:
        flow.train(training)
    return OracleResult("round trip on integer data", float((back - x).abs().max()), 0.0)


def run_oracles(
    flow: Flow, n: int = 4, seed: int = 0, data: Tensor | None = None
) -> list[OracleResult]:
    """Compare ``flow`` with the round-trip and autograd-Jacobian oracles in float64 on ``n``
    examples (and the round trip on integer data for dequantized flows).

    The flow is moved to float64 for the comparison and restored to its dtype afterwards. ``data``
    (optional) is used for a first forward pass so data-dependent initialisation sees real data.
    """
    dtype = next((p.dtype for p in flow.parameters()), torch.float32)
    gen = torch.Generator().manual_seed(seed)
    flow.double()
    try:
        if data is not None:
            with torch.no_grad():
                flow(data[:256].double(), example_context(flow, len(data[:256]), gen))
        with deterministic(flow):
            x = example_inputs(flow, n, gen)
            c = example_context(flow, n, gen)
            with torch.no_grad():
                z, logdet = flow(x, c)
                x_back = flow.inverse(z, c)
                z2 = torch.randn_like(z) * 0.5
                x2, inverse_logdet = flow.inverse_and_logdet(z2, c)
                z2_back, forward_logdet = flow(x2, c)
            jac = jacobian_logdet(flow, x, c)
        scale = 1.0 + float(jac.abs().max())
        inverse_scale = 1.0 + float(forward_logdet.abs().max())
        results = [
            OracleResult("round trip x -> z -> x", float((x_back - x).abs().max()), 1e-8),
            OracleResult("round trip z -> x -> z", float((z2_back - z2).abs().max()), 1e-8),
            OracleResult(
                "logdet vs autograd Jacobian", float((logdet - jac).abs().max()), 1e-8 * scale
            ),
            OracleResult(
                "inverse logdet vs forward",
                float((inverse_logdet + forward_logdet).abs().max()),
                1e-8 * inverse_scale,
            ),
        ]
        on_data = data_round_trip(flow, max(n, 64), gen)
        return results if on_data is None else [*results, on_data]
    finally:
        flow.to(dtype)
