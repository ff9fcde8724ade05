"""Elementwise transforms of couplings, one table keyed like :mod:`flowspec.layers.transforms`.

A transform is a monotone map applied to each transformed element ``x`` with its own parameters:
``params`` is a tuple of ``P = n_params`` tensors shaped like ``x`` (the conditioner's outputs).
``forward(layer, x, params) -> (y, logabsdet)`` returns ``logabsdet = log|dy/dx|``
elementwise (shape of ``x``), or None for a volume-preserving map; ``inverse(layer, y, params)``
undoes it. ``layer`` is the coupling that owns any learned parameter the transform adds with
``add_parameters`` (so its name in a weights file is the layer's, e.g. ``layers.3.scale``).
``inverse_and_logabsdet(layer, y, params)`` returns the inverse with ``log|dx/dy|`` (minus the
forward's at ``x``), for sampling with densities in one pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flowspec.nn.emit import Emitted, literal
from flowspec.nn.spline import check_settings, rq_spline, spline_params
from flowspec.nn.spline_source import SPLINE_SOURCE

__all__ = [
    "LOG_SCALES",
    "SIGMOID_LOG_SCALE_MIN",
    "TRANSFORMS",
    "Additive",
    "Affine",
    "Spline",
    "Transform",
    "build_transform",
]

# Glow's sigmoid scale has no lower bound, so its inverse divides by a scale that can underflow
# to 0; compounded over a flow's couplings (and the learned priors) one sample in many overflows.
# Floored at exp(-7) ~ 9e-4, in both directions (the flow stays an exact bijection, its logdet
# exact): values above the floor are bit for bit those of the unbounded form.
SIGMOID_LOG_SCALE_MIN = -7.0


class Transform:
    """Base of the elementwise transforms; see the module docstring."""

    n_params: int = 1

    def add_parameters(self, layer: nn.Module, shape: tuple[int, ...]) -> None:
        """Register the learned parameters this transform needs on ``layer`` (default: none)."""

    def forward(
        self, layer: nn.Module, x: Tensor, params: tuple[Tensor, ...]
    ) -> tuple[Tensor, Tensor | None]:
        raise NotImplementedError

    def inverse(self, layer: nn.Module, y: Tensor, params: tuple[Tensor, ...]) -> Tensor:
        raise NotImplementedError

    def inverse_and_logabsdet(
        self, layer: nn.Module, y: Tensor, params: tuple[Tensor, ...]
    ) -> tuple[Tensor, Tensor | None]:
        """``x = inverse(y)`` and ``log|dx/dy|`` elementwise (None: volume-preserving); by
        default minus the forward's log-slope at ``x``."""
        x = self.inverse(layer, y, params)
        _, logabsdet = self.forward(layer, x, params)
        return x, None if logabsdet is None else -logabsdet


class Additive(Transform):
    """NICE: ``y = x + t``, log-determinant 0 (returned as None)."""

    n_params = 1

    def forward(
        self, layer: nn.Module, x: Tensor, params: tuple[Tensor, ...]
    ) -> tuple[Tensor, Tensor | None]:
        return x + params[0], None

    def inverse(self, layer: nn.Module, y: Tensor, params: tuple[Tensor, ...]) -> Tensor:
        return y - params[0]

    def emit(self) -> Emitted:
        return Emitted("Additive()", {"Additive": ADDITIVE_SOURCE})


# The bounded log-scale s from the network's raw output; ``layer`` holds ``scale`` for
# scaled_tanh (RealNVP's learned per-element scale).
LOG_SCALES: dict[str, Callable[[nn.Module, Tensor], Tensor]] = {
    "tanh": lambda layer, raw: torch.tanh(raw),
    "scaled_tanh": lambda layer, raw: layer.scale * torch.tanh(raw),
    # Glow: scale = sigmoid(raw + 2), floored (see SIGMOID_LOG_SCALE_MIN)
    "sigmoid": lambda layer, raw: F.logsigmoid(raw + 2.0).clamp(min=SIGMOID_LOG_SCALE_MIN),
    # Jet: scale = 2 sigmoid(raw), in (0, 2), 1 at raw = 0; floored like Glow's
    "sigmoid2": lambda layer, raw: (F.logsigmoid(raw) + math.log(2.0)).clamp(
        min=SIGMOID_LOG_SCALE_MIN
    ),
    "none": lambda layer, raw: raw,
}


class Affine(Transform):
    """RealNVP: ``y = x * exp(s) + t`` with ``params[0] = t`` and the log-scale ``s``
    bounded from ``params[1]`` by :data:`LOG_SCALES`; ``log|dy/dx| = s``."""

    n_params = 2

    def __init__(self, log_scale: str) -> None:
        self.log_scale = log_scale
        self.bound = LOG_SCALES[log_scale]

    def add_parameters(self, layer: nn.Module, shape: tuple[int, ...]) -> None:
        if self.log_scale == "scaled_tanh":
            layer.scale = nn.Parameter(torch.ones(1, *shape))

    def forward(
        self, layer: nn.Module, x: Tensor, params: tuple[Tensor, ...]
    ) -> tuple[Tensor, Tensor | None]:
        s = self.bound(layer, params[1])
        return x * torch.exp(s) + params[0], s

    def inverse(self, layer: nn.Module, y: Tensor, params: tuple[Tensor, ...]) -> Tensor:
        return (y - params[0]) * torch.exp(-self.bound(layer, params[1]))

    def emit(self) -> Emitted:
        return Emitted(f"Affine({literal(self.log_scale)})", {"Affine": AFFINE_SOURCE})

    def inverse_and_logabsdet(
        self, layer: nn.Module, y: Tensor, params: tuple[Tensor, ...]
    ) -> tuple[Tensor, Tensor | None]:
        s = self.bound(layer, params[1])
        return (y - params[0]) * torch.exp(-s), -s


class Spline(Transform):
    """Rational-quadratic spline on ``[-bound, bound]`` with identity tails
    (:mod:`flowspec.nn.spline`): ``params`` are ``P = 3 * bins - 1`` tensors shaped like ``x``
    (``bins`` widths, ``bins`` heights, ``bins - 1`` inner knot slopes, unconstrained), stacked
    into the spline's ``(..., P)`` layout. All-zero parameters give the identity.

    Example:
        >>> spline = Spline(bins=4, bound=3.0)
        >>> x = torch.tensor([[-5.0, 0.5, 2.0]], dtype=torch.float64)
        >>> params = tuple(torch.randn(1, 3, dtype=torch.float64) for _ in range(spline.n_params))
        >>> y, logabsdet = spline.forward(None, x, params)
        >>> bool(torch.allclose(spline.inverse(None, y, params), x)), float(logabsdet[0, 0])
        (True, 0.0)
    """

    def __init__(
        self,
        bins: int,
        bound: float,
        min_bin_width: float = 1e-3,
        min_bin_height: float = 1e-3,
        min_derivative: float = 1e-3,
    ) -> None:
        check_settings(bins, bound, min_bin_width, min_bin_height, min_derivative)
        self.n_params = spline_params(bins)
        self.bins, self.bound = bins, float(bound)
        self.minima = {
            "min_bin_width": min_bin_width,
            "min_bin_height": min_bin_height,
            "min_derivative": min_derivative,
        }

    def _apply(self, v: Tensor, params: tuple[Tensor, ...], inverse: bool) -> tuple[Tensor, Tensor]:
        return rq_spline(v, torch.stack(params, dim=-1), self.bound, inverse, **self.minima)

    def forward(
        self, layer: nn.Module, x: Tensor, params: tuple[Tensor, ...]
    ) -> tuple[Tensor, Tensor | None]:
        return self._apply(x, params, inverse=False)

    def inverse(self, layer: nn.Module, y: Tensor, params: tuple[Tensor, ...]) -> Tensor:
        return self._apply(y, params, inverse=True)[0]

    def inverse_and_logabsdet(
        self, layer: nn.Module, y: Tensor, params: tuple[Tensor, ...]
    ) -> tuple[Tensor, Tensor | None]:
        return self._apply(y, params, inverse=True)

    def emit(self) -> Emitted:
        floats = (literal(float(v)) for v in (self.bound, *self.minima.values()))
        expr = f"Spline({', '.join([literal(self.bins), *floats])})"
        return Emitted(expr, {"Spline": SPLINE_SOURCE})


def _spline(spec: Any) -> Spline:
    return Spline(
        spec.bins, spec.bound, spec.min_bin_width, spec.min_bin_height, spec.min_derivative
    )


TRANSFORMS: dict[str, Callable[[Any], Transform]] = {
    "additive": lambda spec: Additive(),
    "affine": lambda spec: Affine(spec.log_scale),
    "spline": _spline,
}


ADDITIVE_SOURCE = '''
class Additive:
    """NICE's transform: y = x + t, log-determinant 0 (returned as None)."""

    n_params = 1

    def add_parameters(self, layer: nn.Module, shape: tuple[int, ...]) -> None:
        pass

    def forward(self, layer: nn.Module, x: Tensor, params: tuple[Tensor, ...]):
        return x + params[0], None

    def inverse(self, layer: nn.Module, y: Tensor, params: tuple[Tensor, ...]) -> Tensor:
        return y - params[0]

    def inverse_and_logabsdet(self, layer: nn.Module, y: Tensor, params: tuple[Tensor, ...]):
        return y - params[0], None
'''

AFFINE_SOURCE = (
    """
# The bounded log-scale s from the net's raw output (scaled_tanh: RealNVP's learned scale;
# sigmoid: Glow's scale sigmoid(raw + 2), floored so that the inverse cannot overflow).
SIGMOID_LOG_SCALE_MIN = """
    + repr(SIGMOID_LOG_SCALE_MIN)
    + '''
LOG_SCALES = {
    "tanh": lambda layer, raw: torch.tanh(raw),
    "scaled_tanh": lambda layer, raw: layer.scale * torch.tanh(raw),
    "sigmoid": lambda layer, raw: F.logsigmoid(raw + 2.0).clamp(min=SIGMOID_LOG_SCALE_MIN),
    # Jet's scale 2 sigmoid(raw), floored like Glow's
    "sigmoid2": lambda layer, raw: (F.logsigmoid(raw) + math.log(2.0)).clamp(
        min=SIGMOID_LOG_SCALE_MIN
    ),
    "none": lambda layer, raw: raw,
}


class Affine:
    """RealNVP's transform: y = x * exp(s) + t with params = (t, raw log-scale), s bounded by
    LOG_SCALES; log|dy/dx| = s."""

    n_params = 2

    def __init__(self, log_scale: str) -> None:
        self.log_scale = log_scale
        self.bound = LOG_SCALES[log_scale]

    def add_parameters(self, layer: nn.Module, shape: tuple[int, ...]) -> None:
        if self.log_scale == "scaled_tanh":
            layer.scale = nn.Parameter(torch.ones(1, *shape))

    def forward(self, layer: nn.Module, x: Tensor, params: tuple[Tensor, ...]):
        s = self.bound(layer, params[1])
        return x * torch.exp(s) + params[0], s

    def inverse(self, layer: nn.Module, y: Tensor, params: tuple[Tensor, ...]) -> Tensor:
        return (y - params[0]) * torch.exp(-self.bound(layer, params[1]))

    def inverse_and_logabsdet(self, layer: nn.Module, y: Tensor, params: tuple[Tensor, ...]):
        s = self.bound(layer, params[1])
        return (y - params[0]) * torch.exp(-s), -s
'''
)


def build_transform(spec: Any) -> Transform:
    """The transform a ``transform:`` spec (a row of ``TRANSFORMS``) describes."""
    return TRANSFORMS[spec.type](spec)
