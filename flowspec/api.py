"""The public entry points that compose the stages; the one place that coerces inputs.

A spec can be given as a path (``str`` ending in ``.yaml``/``.yml`` or a :class:`~pathlib.Path`),
as YAML text, as a ``dict``, or as a validated :class:`~flowspec.spec.models.FlowSpec`;
:func:`load_spec` turns each into a ``FlowSpec``, and every other function here accepts any of
them. The stage functions themselves (``parse_spec``, ``flowspec.graph.build_graph``,
``flowspec.nn.compile_graph``) take only their own stage's input.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from flowspec.data import check_source
from flowspec.graph import FlowGraph
from flowspec.graph import build_graph as build_checked_graph
from flowspec.spec.models import FlowSpec
from flowspec.spec.parse import parse_spec
from flowspec.spec.shipped import shipped_spec
from flowspec.spec.source import read_source, source_from_data, source_from_text

if TYPE_CHECKING:
    from flowspec.nn.flow import Flow

__all__ = ["SpecLike", "build_graph", "compile", "load_spec"]

SpecLike = Union[str, Path, dict[str, Any], FlowSpec]


def load_spec(spec: SpecLike) -> FlowSpec:
    """Read and validate a spec from a path, YAML text or a dict; a FlowSpec is returned as is.

    A ``str`` is a path when it is one line ending in ``.yaml`` or ``.yml``, the name of a
    shipped spec when it is one word (``"realnvp_moons"``, see ``flowspec specs``), else YAML text.

    The data set named in ``data: {name: ...}`` is checked too: a name that is neither built in
    nor a path to a file is an error at its line, with a "did you mean" hint.

    Raises:
        SpecError: every problem found, each located at its file, line and column.
        DataError: ``unknown-dataset`` for a ``data.name`` that is neither built in nor a path.

    Example:
        >>> load_spec("flowspec: 1\\ninput: {shape: [2]}\\nlayers: [{type: scale}]").input.shape
        (2,)
    """
    if isinstance(spec, FlowSpec):
        return spec
    if isinstance(spec, dict):
        parsed = parse_spec(source_from_data(spec))
    elif isinstance(spec, Path) or ("\n" not in spec and spec.endswith((".yaml", ".yml"))):
        parsed = parse_spec(read_source(spec))
    elif spec.strip().isidentifier():
        parsed = parse_spec(read_source(shipped_spec(spec.strip())))
    else:
        parsed = parse_spec(source_from_text(spec))
    _check_data_name(parsed)
    return parsed


def _check_data_name(spec: FlowSpec) -> None:
    """``unknown-dataset`` at the spec's ``data.name`` line (names only; files are read later)."""
    if spec.data is not None:
        where = spec.source.locate(("data", "name")) if spec.source is not None else None
        check_source(spec.data.name, where, "data.name")


def build_graph(spec: SpecLike) -> FlowGraph:
    """The checked IR of ``spec`` (any form :func:`load_spec` reads).

    Example:
        >>> print(build_graph("specs/nice_moons.yaml").latents)
        ('z',)
    """
    return build_checked_graph(load_spec(spec))


def compile(spec: SpecLike, seed: int | None = None, passes: Sequence[str] | None = None) -> Flow:
    """Spec -> checked graph -> :class:`Flow` whose initial weights come from ``seed`` (default:
    the spec's ``seed``), never from torch's global random state.

    ``torch.manual_seed`` before this call does not change the weights: draw a seed sweep with
    ``compile(spec, seed=s)`` (``flowspec.train(spec, seed=s)`` likewise). The weights are
    drawn inside a forked random state, so the same spec and seed always give the same initial
    weights and the caller's random state is left untouched. When torch's global seed was set
    (to something other than the seed used) and neither ``seed`` nor the spec's ``seed:`` is
    given, a warning says so.
    ``passes`` names the optimisation passes to apply (default: the spec's
    ``train: {passes:}``, else :data:`flowspec.spec.passes.DEFAULT_PASSES`; ``()`` switches
    them off); they change how steps compute, never the function, the parameters or the
    weights file.

    Example:
        >>> import torch
        >>> flow = compile("specs/realnvp_moons.yaml")
        >>> z, logdet = flow(torch.randn(8, 2))
        >>> tuple(z.shape), tuple(logdet.shape)
        ((8, 2), (8,))
        >>> a, b = (compile("specs/nice_moons.yaml", seed=s).state_dict() for s in (1, 2))
        >>> any(not torch.equal(a[k], b[k]) for k in a)
        True
    """
    import torch

    from flowspec.nn.compile import compile_graph

    graph = build_graph(spec)
    used = graph.spec.seed if seed is None else seed
    if seed is None and "seed" not in graph.spec.model_fields_set:
        _warn_if_global_seed(used)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(used)
        return compile_graph(graph, passes)


def _warn_if_global_seed(used: int) -> None:
    """Warn when torch's global seed looks set by the caller (torch's own default is a random
    64-bit number: one below 2**32 is a ``manual_seed`` call with odds 1 in 4 billion)."""
    import torch

    initial = torch.initial_seed()
    if initial < 2**32 and initial != used:
        warnings.warn(
            f"flowspec.compile does not use torch's global seed ({initial}): the weights come "
            f"from the spec's seed ({used}); pass compile(spec, seed=...) or set 'seed:' in the "
            "spec",
            stacklevel=3,
        )
