"""What a weights file's tensors must satisfy before a flow is built from them.

* :func:`tensors_digest`: the SHA-256 of every tensor's name, dtype, shape and bytes (in name
  order), which :func:`flowspec.save` writes as ``tensors_sha256`` and
  :func:`flowspec.io.read_weights` verifies, so a flipped bit is found like an edited spec;
* :func:`check_tensors`: the tensors are exactly those of the flow the embedded spec describes;
* :func:`check_state`: once loaded, every floating-point tensor is finite and every layer's
  buffers satisfy its invariant (each module's ``check_state()``: a permutation that is one, LU
  factors of an invertible matrix, positive running variances).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from flowspec.errors import Diagnostic, WeightsError
from flowspec.nn.flow import Flow

__all__ = ["check_state", "check_tensors", "tensors_digest"]


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def check_state(flow: Flow, path: str | Path) -> None:
    """Refuse a loaded state that no flow could have: non-finite floating-point tensors, or
    buffers that break their layer's invariant (each module's ``check_state``).

    Raises:
        WeightsError: ``weights-invalid``, listing the first problems found.
    """
    problems = [
        f"{name} holds NaN or infinite values"
        for name, tensor in flow.state_dict().items()
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
    ]
    for step in flow.steps:
        check = getattr(step.module, "check_state", None)
        problems += [f"{step.name}.{p}" for p in (check() if check is not None else [])]
    if problems:
        shown = "; ".join(problems[:5]) + (
            f"; and {len(problems) - 5} more" if problems[5:] else ""
        )
        raise WeightsError(
            _diag(
                "weights-invalid",
                f"'{path}' holds a state no flow can have: {shown}",
                "the file was edited or damaged, or training diverged before it was saved; "
                "re-create it ('flowspec compile', train)",
            )
        )


def check_tensors(state: dict[str, torch.Tensor], flow: Flow, path: Path) -> None:
    """Refuse tensors that are missing, unexpected or of the wrong shape for ``flow``."""
    expected = flow.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("wrong shape", wrong),
        ):
            if keys:
                parts.append(f"{label}: {', '.join(keys[:5])}" + (" ..." if len(keys) > 5 else ""))
        raise WeightsError(
            _diag(
                "weights-mismatch",
                f"the tensors in '{path}' do not match its spec ({'; '.join(parts)})",
                "the file was edited or written by an incompatible version",
            )
        )


def _diag(code: str, message: str, hint: str | None = None) -> Diagnostic:
    return Diagnostic(code, message, hint=hint)
