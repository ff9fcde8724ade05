"""Stage 3, torch: the modules of the layer kinds (one file per kind, named as in
:mod:`flowspec.layers`), the conditioner, transform and base tables, the compiled :class:`Flow`
and the numerical oracles."""

from flowspec.nn.compile import compile_graph
from flowspec.nn.flow import Flow, Step, StepError

__all__ = ["Flow", "Step", "StepError", "compile_graph"]
