"""Writing a compiled flow's parts as plain PyTorch source (``flowspec export -o model.py``).

Every part that can be written out (a layer kind's module, a conditioner, a transform, a base)
has a method ``emit() -> Emitted``, next to the code it mirrors: the expression that builds an
equal module in the generated file, and the source of the classes that expression needs. The
classes perform the same tensor operations in the same order as flowspec's, so the generated
model reproduces flowspec's outputs bit for bit (the tests check this on every shipped spec and
every catalogue example). A part without ``emit`` cannot be written out yet; :func:`emit_part`
says which one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from flowspec.errors import Diagnostic, FlowspecError

__all__ = ["HELPERS", "Emitted", "emit_part", "literal", "refuse_conditional"]

# Shared helpers every generated file starts with (the same as flowspec.nn.base's).
HELPERS = '''
def sum_except_batch(t: Tensor) -> Tensor:
    """Sum over every dimension but the first: (N, ...) -> (N,)."""
    return t.reshape(t.shape[0], -1).sum(dim=1)


def zeros_logdet(x: Tensor) -> Tensor:
    """A zero log-determinant of the right batch size, device and dtype."""
    return torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
'''


@dataclass(frozen=True)
class Emitted:
    """``expr`` builds the part in the generated file; ``sources`` maps each class name the
    expression (or a class it uses) needs to that class's source."""

    expr: str
    sources: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def of(expr: str, own: dict[str, str], parts: Iterable[Emitted] = ()) -> Emitted:
        """An expression with its own classes and those of the parts it is built from (parts
        first, so a class is defined before the classes that use it)."""
        sources: dict[str, str] = {}
        for part in parts:
            sources.update(part.sources)
        sources.update(own)
        return Emitted(expr, sources)


def literal(value: Any) -> str:
    """A Python literal that evaluates back to ``value`` exactly (floats by ``repr``)."""
    if isinstance(value, (tuple, list)):
        inner = ", ".join(literal(v) for v in value)
        if isinstance(value, tuple):
            return f"({inner},)" if len(value) == 1 else f"({inner})"
        return f"[{inner}]"
    if isinstance(value, str):
        return json.dumps(value)  # double quotes, as the rest of the generated file
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return repr(value)
    if isinstance(value, float):
        return (
            repr(value)
            if value == value and abs(value) != float("inf")
            else f"float({str(value)!r})"
        )
    raise TypeError(f"no literal for {type(value).__name__}")


def refuse_conditional(flow: Any) -> None:
    """A conditional flow cannot be exported yet: the generated source and the traced programs
    take no context.

    Raises:
        FlowspecError: ``export-unsupported``.
    """
    if getattr(flow, "conditional", False):
        raise FlowspecError(
            Diagnostic(
                "export-unsupported",
                f"'{flow.spec.name}' is a conditional flow, which cannot be exported yet (the "
                "generated source and the .pt2/.onnx programs take no context)",
                hint="use the model from Python: flowspec.load(MODEL).log_prob(x, context), "
                ".sample(n, context=...)",
            )
        )


def emit_part(part: Any, what: str) -> Emitted:
    """``part.emit()``, or an error naming ``what`` cannot be written as Python source.

    Raises:
        FlowspecError: ``export-unsupported``.
    """
    emit = getattr(part, "emit", None)
    if emit is None:
        raise FlowspecError(
            Diagnostic(
                "export-unsupported",
                f"{what} ({type(part).__name__}) cannot be written as Python source yet",
                hint="export to .onnx or .pt2 instead; to support it, give its module in "
                "flowspec/nn/ an emit() method (see flowspec/nn/emit.py)",
            )
        )
    emitted = emit()
    if not isinstance(emitted, Emitted):
        raise TypeError(f"{type(part).__name__}.emit() must return an Emitted")
    return emitted
