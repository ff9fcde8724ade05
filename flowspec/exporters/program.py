"""A compiled flow as a traced program: ``torch.export`` (``.pt2``) and ONNX (``.onnx``).

Two programs per flow, each with a dynamic batch size: the forward direction maps ``x`` to
``(z, logdet, log_prob)``, the base distribution's log-density being traced as plain tensor
code; the inverse maps ``z`` to ``x`` (draw ``z`` from the base yourself to sample: for the
standard normal base, ``temperature * randn(n, D)``). Modules with a ``frozen()`` context
(the 1x1 convolution) fix their derived constants during the trace: ONNX has no matrix inverse.
The flow is traced in eval mode; dequantisation noise is traced as a random op, as flowspec's
forward draws it.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor, nn

from flowspec.errors import Diagnostic, FlowspecError
from flowspec.nn.emit import refuse_conditional
from flowspec.nn.flow import Flow

__all__ = ["EXAMPLE_BATCH", "exported_program", "traced", "write_onnx", "write_pt2"]

EXAMPLE_BATCH = 4


class _Forward(nn.Module):
    def __init__(self, flow: Flow) -> None:
        super().__init__()
        self.flow = flow

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        z, logdet = self.flow(x)
        return z, logdet, self.flow.base.log_prob(z) + logdet


class _Inverse(nn.Module):
    def __init__(self, flow: Flow) -> None:
        super().__init__()
        self.flow = flow

    def forward(self, z: Tensor) -> Tensor:
        return self.flow.inverse(z)


@contextlib.contextmanager
def traced(flow: Flow, inverse: bool) -> Iterator[tuple[nn.Module, Tensor]]:
    """The module to trace (eval mode, constants frozen) and an example input (a conditional
    flow is ``export-unsupported``)."""
    refuse_conditional(flow)
    dtype = next((p.dtype for p in flow.parameters()), torch.get_default_dtype())
    gen = torch.Generator().manual_seed(0)
    if inverse:
        example = torch.randn(EXAMPLE_BATCH, flow.dim, generator=gen, dtype=dtype)
    else:
        example = torch.rand(EXAMPLE_BATCH, *flow.input_shape, generator=gen, dtype=dtype)
        if flow.discrete_levels:
            example = torch.floor(example * flow.discrete_levels)
    training = flow.training
    flow.eval()
    try:
        with contextlib.ExitStack() as stack:
            for module in flow.modules():
                if hasattr(module, "frozen"):
                    stack.enter_context(module.frozen())
            yield (_Inverse(flow) if inverse else _Forward(flow)), example
    finally:
        flow.train(training)


def _dynamic() -> tuple[dict[int, object]]:
    return ({0: torch.export.Dim("batch", min=1)},)


def exported_program(flow: Flow, inverse: bool = False) -> torch.export.ExportedProgram:
    """``torch.export`` of the forward (or inverse) direction, batch size dynamic."""
    with traced(flow, inverse) as (module, example), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.export.export(module, (example,), dynamic_shapes=_dynamic())


def write_pt2(flow: Flow, path: Path, inverse: bool = False) -> Path:
    """Save :func:`exported_program` to ``path`` (load with ``torch.export.load(path)``)."""
    torch.export.save(exported_program(flow, inverse), str(path))
    return path


def write_onnx(flow: Flow, path: Path, inverse: bool = False) -> Path:
    """Write the forward (or inverse) direction as an ONNX model with a dynamic batch size.

    Raises:
        FlowspecError: ``missing-extra`` when onnx or onnxscript is not installed.
    """
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise FlowspecError(
            Diagnostic(
                "missing-extra",
                "ONNX export needs the onnx and onnxscript packages, which are not installed",
                hint="pip install 'flowspec[export]' (or: pip install onnx onnxscript)",
            )
        ) from None
    names = (["z"], ["x"]) if inverse else (["x"], ["z", "logdet", "log_prob"])
    with traced(flow, inverse) as (module, example), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            dynamic_shapes=_dynamic(),
            input_names=names[0],
            output_names=names[1],
            verbose=False,
        )
    program.save(str(path))
    return path
