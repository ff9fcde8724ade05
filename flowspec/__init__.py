"""flowspec: a declarative compiler for normalizing flows (NICE, RealNVP, Glow).

A YAML spec is validated (:func:`load_spec`), lowered to a checked networkx graph
(:func:`build_graph`) and compiled to a ``torch.nn.Module`` (:func:`compile`) whose
``forward(x) -> (z, logdet)`` maps data to latent. :func:`save` / :func:`load` keep weights and
spec together in one safetensors file; :func:`train` fits a flow by maximum likelihood.

Names that need torch are imported on first use, so ``import flowspec`` followed by
``flowspec.build_graph`` stays torch-free (``flowspec validate`` is instant).

Threads: when torch is not loaded yet, ``import flowspec`` sets ``OMP_WAIT_POLICY=PASSIVE``
(unless the environment sets it), as the ``flowspec`` command does: idle OpenMP threads then
sleep instead of spinning, which on a shared or busy CPU makes small flows train many times
faster. Import flowspec before torch (or export the variable) to get it.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from flowspec.errors import (
    DataError,
    Diagnostic,
    FlowspecError,
    GraphError,
    Location,
    SpecError,
    TrainingError,
    WeightsError,
)
from flowspec.spec import limits  # noqa: F401  (flowspec.limits: the resource limits, at hand)
from flowspec.version import __version__

if "torch" not in sys.modules:  # OpenMP reads it when torch loads; later it has no effect
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_LAZY = {
    "load_spec": "flowspec.api",
    "build_graph": "flowspec.api",
    "compile": "flowspec.api",
    "parse_spec": "flowspec.spec.parse",
    "read_source": "flowspec.spec.source",
    "FlowSpec": "flowspec.spec.models",
    "TrainSpec": "flowspec.spec.training",
    "FlowGraph": "flowspec.graph",
    "check_graph": "flowspec.graph",
    "format_graph": "flowspec.graph",
    "to_dot": "flowspec.graph",
    "to_mermaid": "flowspec.graph",
    "ALL_OPS": "flowspec.layers",
    "compile_graph": "flowspec.nn",
    "Flow": "flowspec.nn",
    "save": "flowspec.io",
    "load": "flowspec.io",
    "train": "flowspec.training",
    "export": "flowspec.exporters",
    "TrainResult": "flowspec.training",
}

__all__ = [
    "ALL_OPS",
    "DataError",
    "Diagnostic",
    "Flow",
    "FlowGraph",
    "FlowSpec",
    "FlowspecError",
    "GraphError",
    "Location",
    "SpecError",
    "TrainResult",
    "TrainSpec",
    "TrainingError",
    "WeightsError",
    "__version__",
    "build_graph",
    "check_graph",
    "compile",
    "compile_graph",
    "export",
    "format_graph",
    "load",
    "load_spec",
    "parse_spec",
    "read_source",
    "save",
    "to_dot",
    "to_mermaid",
    "train",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'flowspec' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
