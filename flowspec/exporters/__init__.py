"""Exporting a compiled flow: ``.py`` (standalone PyTorch source), ``.pt2`` (``torch.export``)
and ``.onnx``; the file's suffix chooses the format (:data:`WRITERS`).

``.py`` holds the whole model (forward, inverse, log_prob, sample) and loads the flowspec weights
file itself; ``.pt2`` and ``.onnx`` hold one direction each, with the weights inside: forward
(``x -> z, logdet, log_prob``) by default, the inverse (``z -> x``) with ``inverse=True``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from flowspec.exporters.program import write_onnx, write_pt2
from flowspec.exporters.pysource import python_source
from flowspec.io import load, write_atomic
from flowspec.nn.flow import Flow

__all__ = ["WRITERS", "export"]


def _write_py(flow: Flow, path: Path, inverse: bool = False) -> Path:
    text = python_source(flow)
    write_atomic(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return path


def _atomic(writer: Callable[[Flow, Path, bool], Path]) -> Callable[[Flow, Path, bool], Path]:
    def write(flow: Flow, path: Path, inverse: bool = False) -> Path:
        write_atomic(path, lambda tmp: writer(flow, Path(tmp), inverse))
        return path

    return write


WRITERS: dict[str, Callable[[Flow, Path, bool], Path]] = {
    ".py": _write_py,
    ".pt2": _atomic(write_pt2),
    ".onnx": _atomic(write_onnx),
}


def export(model: Flow | str | Path, path: str | Path, inverse: bool = False) -> Path:
    """Write ``model`` (a flow, or a model file's path) to ``path`` in the format its suffix
    names: ``.py``, ``.pt2`` or ``.onnx``.

    Example:
        >>> import tempfile, flowspec
        >>> path = export(flowspec.compile("realnvp_moons"), tempfile.mkdtemp() + "/moons.py")
        >>> "class RealnvpMoons(nn.Module):" in path.read_text()
        True
    """
    path = Path(path)
    writer = WRITERS.get(path.suffix.lower())
    if writer is None:
        raise ValueError(f"export to {' or '.join(WRITERS)}, not '{path.suffix}'")
    flow = model if isinstance(model, Flow) else load(model)
    return writer(flow, path, inverse)
