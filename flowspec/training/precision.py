"""Mixed precision: ``train: {precision: bf16}`` runs the networks in bfloat16, the flow in float32.

Under :func:`networks_autocast` every conditioner network (a coupling's ``net``, a split's
learned prior: each non-bijective submodule of a step) runs under ``torch.autocast`` with
bfloat16 and hands its outputs back in the flow's dtype. Everything else stays in float32: the
coupling's elementwise transform, its log-scales and their sum (the log-determinant), actnorm,
the 1x1 convolutions and their determinants, the base log-density and the loss. So a bf16 flow
is still an exact bijection with an exact log-determinant; bf16 only perturbs the conditioners'
outputs, and the inverse, which runs the same networks on the same inputs, undoes the forward
pass to float32 precision. Weights and Adam's moments stay float32 (no loss scaling is needed
with bfloat16's float32 exponent range).

Only training steps run under autocast; validation, ``flowspec eval`` and sampling score the
float32 model that is saved.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from flowspec.errors import Diagnostic, TrainingError
from flowspec.nn.base import Bijection
from flowspec.nn.flow import Flow
from flowspec.training.evaluate import flow_dtype

__all__ = ["PRECISIONS", "check_precision", "networks", "networks_autocast"]

PRECISIONS: dict[str, torch.dtype | None] = {"float32": None, "bf16": torch.bfloat16}


def networks(flow: Flow) -> list[nn.Module]:
    """The conditioner networks of ``flow``: the submodules of its steps that are not
    bijections themselves."""
    return [
        child
        for step in flow.steps
        for child in step.module.children()
        if not isinstance(child, Bijection)
    ]


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse a precision the device cannot run."""
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise TrainingError(
            Diagnostic(
                "precision-unsupported",
                f"precision bf16 was asked for, but {torch.cuda.get_device_name(device)} has no "
                "bfloat16 support",
                hint="train with precision: float32 (--precision float32)",
            )
        )


def _cast(out: Any, dtype: torch.dtype) -> Any:
    if isinstance(out, Tensor):
        return out.to(dtype) if out.is_floating_point() else out
    if isinstance(out, tuple):
        return tuple(_cast(o, dtype) for o in out)
    return out


def _autocast(
    forward: Callable[..., Any], device: str, low: torch.dtype, dtype: torch.dtype
) -> Any:
    def run(*args: Any, **kwargs: Any) -> Any:
        with torch.autocast(device, dtype=low):
            out = forward(*args, **kwargs)
        return _cast(out, dtype)

    return run


@contextlib.contextmanager
def networks_autocast(flow: Flow, precision: str) -> Iterator[None]:
    """Within the block the conditioner networks of ``flow`` compute in ``precision``
    (``float32``: nothing changes); their outputs come back in the flow's dtype.

    Example:
        >>> import flowspec, torch
        >>> flow = flowspec.compile("specs/realnvp_moons.yaml")
        >>> with networks_autocast(flow, "bf16"):
        ...     z, logdet = flow(torch.randn(4, 2))
        >>> z.dtype, logdet.dtype
        (torch.float32, torch.float32)
    """
    low = PRECISIONS[precision]
    if low is None:
        yield
        return
    device, dtype = next(flow.buffers()).device.type, flow_dtype(flow)
    nets = networks(flow)
    for net in nets:  # an instance attribute shadows the class's forward; names are unchanged
        net.forward = _autocast(type(net).forward.__get__(net), device, low, dtype)
    try:
        yield
    finally:
        for net in nets:
            del net.forward
