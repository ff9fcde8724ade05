"""``build_graph``: lower a validated spec to the IR by replaying the ops' shape rules.

No torch, no weights: building and checking the graph of a paper-size model takes milliseconds.
Every problem a shape rule finds becomes a diagnostic located at the op's spec path; all are
collected before one :class:`GraphError` is raised.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Mapping
from typing import Any

import networkx as nx

from flowspec.errors import Diagnostic, GraphError, Location, SpecError
from flowspec.graph.ir import CONTEXT, FINAL_LATENT, INPUT, FlowGraph, OpNode, latent_name
from flowspec.graph.mixing import analyse_mixing
from flowspec.layers import OPS
from flowspec.layers.base import Grid, InferContext
from flowspec.layers.split import SplitSpec
from flowspec.layers.squeeze import SqueezeSpec
from flowspec.spec.bases import BASES
from flowspec.spec.budget import check_budget
from flowspec.spec.models import FlowSpec, LevelSpec, RepeatSpec, SplitOptions
from flowspec.spec.source import PathKey
from flowspec.spec.vary import repetition_body, varied_paths, vary_problems

__all__ = ["build_graph", "check_graph"]


class _Builder:
    """Walks the spec in execution order, adding one node per op instance."""

    def __init__(self, spec: FlowSpec) -> None:
        self.spec = spec
        self.graph = nx.MultiDiGraph()
        self.errors: list[Diagnostic] = []
        self.seen: set[Diagnostic] = set()
        self.shape = tuple(spec.input.shape)
        self.cursor: tuple[str, int] = (INPUT, 0)
        self.grid: Grid | None = None  # the patch grid of the current token sequence
        self.latents: list[str] = []
        self.preprocessed: list[str] = []  # kinds of the preprocessing ops so far
        self.graph.add_node(INPUT, kind="input", shape=self.shape)
        self.context = spec.context.features if spec.context is not None else 0
        if spec.context is not None:
            self.graph.add_node(
                CONTEXT, kind="context", shape=spec.context.per_example, features=self.context
            )

    def locate(self, path: PathKey) -> Location | None:
        source = self.spec.source
        return source.locate(path) if source is not None else None

    def error(self, code: str, message: str, path: PathKey, hint: str | None = None) -> None:
        diagnostic = Diagnostic(code, message, ".".join(map(str, path)), self.locate(path), hint)
        if diagnostic not in self.seen:  # the same problem in every repetition: report it once
            self.seen.add(diagnostic)
            self.errors.append(diagnostic)

    def preprocessing(self, kind: str, yaml_path: PathKey) -> None:
        """Hold preprocessing to its grammar: ``dequantize`` at most once and first, ``logit``
        at most once and after it (or alone), both only directly in ``preprocess``."""
        opdef, at = OPS[kind], (*yaml_path, "type")
        listed = ", ".join(k for k, o in OPS.items() if o.role == "preprocess")
        if yaml_path[0] != "preprocess" or len(yaml_path) != 2:
            if opdef.role == "preprocess":
                where = (
                    "inside a repeat block"
                    if yaml_path[0] == "preprocess"
                    else (f"in '{yaml_path[0]}'")
                )
                self.error(
                    "preprocess-order",
                    f"'{kind}' is preprocessing and cannot be {where}",
                    at,
                    "list it once in the spec's 'preprocess:' section",
                )
            return
        if opdef.role != "preprocess":
            self.error(
                "preprocess-order",
                f"'{kind}' is not preprocessing; 'preprocess:' holds only {listed}",
                at,
                f"move '{kind}' to 'layers:' (or 'levels:')",
            )
            return
        later = [k for k in self.preprocessed if OPS[k].order >= opdef.order]
        if later:
            again = kind in later
            self.error(
                "preprocess-order",
                f"'{kind}' {'appears twice' if again else 'comes after ' + repr(later[0])} in "
                "preprocess: the inverse would not undo it",
                at,
                "preprocess is 'dequantize' (integer data), then 'logit', each at most once",
            )
        self.preprocessed.append(kind)

    def items(
        self,
        items: Any,
        yaml_path: PathKey,
        name: str,
        repeat_index: int,
        varied: Mapping[int, Mapping[tuple[str | int, ...], PathKey]] | None = None,
    ) -> None:
        """Add the ops of ``items``; ``varied`` says, per item index, which of its keys came from
        the enclosing block's ``vary`` table and where (problems with them point there)."""
        for i, item in enumerate(items):
            moved = (varied or {}).get(i, {})
            if isinstance(item, RepeatSpec):
                block_path = (*yaml_path, i)
                for r in range(item.repeat):
                    inner = {
                        j: {key: (*block_path, *at) for key, at in keys.items()}
                        for j, keys in varied_paths(item, r).items()
                    }
                    body = repetition_body(item, r)
                    self.items(body, (*block_path, "body"), f"{name}.{i}.{r}", r, inner)
            else:
                self.op(item, (*yaml_path, i), f"{name}.{i}", repeat_index, moved)

    def level(self, level: LevelSpec, index: int) -> None:
        path, name = ("levels", index), f"levels.{index}"
        if level.squeeze:
            self.op(SqueezeSpec(type="squeeze"), (*path, "squeeze"), f"{name}.squeeze", 0)
        self.items(level.steps, (*path, "steps"), f"{name}.steps", 0)
        if level.split:
            prior = level.split.prior if isinstance(level.split, SplitOptions) else "learned"
            self.op(SplitSpec(type="split", prior=prior), (*path, "split"), f"{name}.split", 0)

    def op(
        self,
        spec: Any,
        yaml_path: PathKey,
        name: str,
        repeat_index: int,
        varied: Mapping[tuple[str | int, ...], PathKey] | None = None,
    ) -> None:
        opdef = OPS[spec.type]
        self.preprocessing(spec.type, yaml_path)
        if len(self.shape) not in opdef.ranks:
            ranks = " or ".join(f"rank {r}" for r in opdef.ranks)
            self.error(
                "shape-rank",
                f"'{spec.type}' needs input of {ranks}, got shape {self.shape}",
                # a list item points at its 'type:'; a level's 'squeeze:'/'split:' key at itself
                yaml_path if isinstance(yaml_path[-1], str) else (*yaml_path, "type"),
                _rank_hint(opdef.ranks, len(self.shape)),
            )
            return
        seed = zlib.crc32(f"{self.spec.seed}:{name}".encode())
        grid = self.grid if len(self.shape) == 2 else None
        ctx = InferContext(self.shape, repeat_index, seed, self.context, grid)
        inferred = opdef.infer(spec, ctx)
        for p in inferred.problems:
            path = next(
                (at for key, at in (varied or {}).items() if p.at[: len(key)] == key),
                (*yaml_path, *p.at),
            )
            self.error(p.code, p.message, path, p.hint)
        node = OpNode(
            name,
            spec.type,
            spec,
            yaml_path,
            self.shape,
            inferred.out_shapes,
            dict(inferred.params),
            repeat_index,
        )
        self.graph.add_node(name, kind=spec.type, op=node)
        self.graph.add_edge(*self.cursor[:1], name, src_port=self.cursor[1], shape=self.shape)
        if inferred.params.get("context"):
            shape = self.graph.nodes[CONTEXT]["shape"]
            self.graph.add_edge(CONTEXT, name, src_port=0, shape=shape, context=True)
        if len(inferred.out_shapes) == 2:
            latent = latent_name(name)
            self.graph.add_node(latent, kind="latent", shape=inferred.out_shapes[1])
            self.graph.add_edge(name, latent, src_port=1, shape=inferred.out_shapes[1])
            self.latents.append(latent)
        self.cursor, self.shape = (name, 0), inferred.out_shapes[0]
        self.grid = inferred.params.get("grid", self.grid) if len(self.shape) == 2 else None

    def check_context(self) -> None:
        """A conditional base needs a context; a context needs a user."""
        spec, conditional_base = self.spec, BASES[self.spec.base.type].conditional
        if conditional_base and spec.context is None:
            self.error(
                "context-required",
                f"base '{spec.base.type}' is conditional but the spec has no 'context:' section",
                ("base", "type"),
                "add 'context: {classes: N}' or 'context: {shape: [K]}', or use base normal",
            )
        used = CONTEXT in self.graph and self.graph.out_degree(CONTEXT) > 0
        if spec.context is not None and not used and not conditional_base:
            self.error(
                "context-unused",
                "the spec declares a context but no layer or base uses it",
                ("context",),
                "conditioners (couplings, autoregressive layers, learned split priors) and a "
                "conditional_normal base take it; add one, or drop 'context:'",
            )

    def finish(self) -> FlowGraph:
        self.graph.add_node(FINAL_LATENT, kind="latent", shape=self.shape)
        self.graph.add_edge(self.cursor[0], FINAL_LATENT, src_port=self.cursor[1], shape=self.shape)
        self.latents.append(FINAL_LATENT)
        return FlowGraph(self.graph, self.spec, tuple(self.latents))


def _rank_hint(ranks: tuple[int, ...], got: int) -> str:
    if ranks == (2,):
        return "this layer works on token sequences (T, D): put a patchify layer before it"
    if got == 2:
        return "token sequences (T, D) from patchify take tarflow, couplings and permute"
    return "squeeze and image masks need [C, H, W] inputs"


def build_graph(spec: FlowSpec) -> FlowGraph:
    """Lower a validated spec to the IR and check it (:func:`check_graph`).

    Arguments:
        spec: the flow, as :func:`flowspec.load_spec` returns it.

    Returns:
        The checked graph, with its mixing report and warnings.

    Raises:
        SpecError: the spec exceeds a resource limit (``limit-exceeded``; a spec read by
            :func:`flowspec.load_spec` was already checked).
        GraphError: the spec describes an ill-formed flow (all problems at once).

    Example:
        >>> from flowspec.api import load_spec
        >>> graph = build_graph(load_spec("specs/nice_moons.yaml"))
        >>> graph.input_shape, graph.latents
        ((2,), ('z',))
    """
    over = check_budget(spec)
    if over:
        raise SpecError(over)
    if spec.source is None:  # built in Python: parse_spec has not checked its vary tables
        varied = vary_problems(spec)
        if varied:
            raise SpecError(varied)
    builder = _Builder(spec)
    shape = tuple(spec.input.shape)
    if len(shape) not in (1, 3):
        builder.error(
            "shape-rank",
            f"input shape {list(shape)} has rank {len(shape)}",
            ("input", "shape"),
            f"use [D] for vectors or [C, H, W] for images, e.g. [1, {', '.join(map(str, shape))}]"
            if len(shape) == 2
            else "use [D] for vectors or [C, H, W] for images",
        )
        raise GraphError(builder.errors)
    builder.items(spec.preprocess, ("preprocess",), "preprocess", 0)
    for index, level in enumerate(spec.levels):
        builder.level(level, index)
    builder.items(spec.layers, ("layers",), "layers", 0)
    if not builder.errors and not any("op" in d for _, d in builder.graph.nodes(data=True)):
        builder.error(
            "empty-flow",
            "the flow has no layers",
            ("layers",),
            "add a 'layers:' list (or 'levels:') with at least one layer",
        )
    if not builder.errors:
        builder.check_context()
    if builder.errors:
        raise GraphError(builder.errors)
    return check_graph(builder.finish())


def check_graph(graph: FlowGraph) -> FlowGraph:
    """Run the verifier passes and the mixing analysis on ``graph``.

    Returns:
        The graph with its mixing report and warnings filled in.

    Raises:
        GraphError: a verifier pass found a problem (a graph built by :func:`build_graph` has
            none; the passes guard hand-made or transformed graphs).
    """
    problems = graph.lint()
    if problems:
        raise GraphError(problems)
    mixing, warnings = analyse_mixing(graph)
    return dataclasses.replace(graph, mixing=mixing, warnings=warnings)
