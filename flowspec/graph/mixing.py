"""Mixing analysis: which input elements can influence which latent elements.

Each element carries a bitset of the input elements it depends on; every op's ``mix`` rule maps
the bitsets of its input to those of its outputs (couplings: transformed elements gain the kept
elements their conditioner sees; permutations, squeezes and 1x1 convolutions move or merge them).
MLP conditioners see every kept element; conv conditioners (and a split's learned prior) see the
kept elements within their receptive field, so for generic weights the report equals the
Jacobian's sparsity pattern. Two things are reported as warnings: latent elements
that never interacted with any other element, and couplings that repeat the previous coupling's
mask with nothing but elementwise ops in between (the second one cannot mix anything new).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import TYPE_CHECKING

import networkx as nx

from flowspec.errors import Diagnostic
from flowspec.graph.ir import INPUT
from flowspec.layers import OPS

if TYPE_CHECKING:
    from flowspec.graph.ir import FlowGraph

__all__ = ["MixingReport", "analyse_mixing"]


@dataclass(frozen=True)
class MixingReport:
    """Dependencies of the flat latent z (in concatenation order) on the flat input."""

    input_size: int
    latent_deps: tuple[int, ...]
    full_after: str | None  # first op after which every element depends on every input

    def depends(self, latent: int, input_index: int) -> bool:
        return bool(self.latent_deps[latent] >> input_index & 1)

    def counts(self) -> list[int]:
        """For each latent element, how many input elements it depends on."""
        return [dep.bit_count() for dep in self.latent_deps]

    def matrix(self) -> list[list[int]]:
        """0/1 matrix M[latent][input] (use for small flows)."""
        return [
            [int(self.depends(i, j)) for j in range(self.input_size)]
            for i in range(len(self.latent_deps))
        ]

    def summary(self) -> str:
        counts = self.counts()
        if min(counts) == self.input_size:
            where = f" (from {self.full_after} on)" if self.full_after else ""
            return f"every latent element depends on all {self.input_size} inputs{where}"
        return (
            f"latent elements depend on {min(counts)} to {max(counts)} of "
            f"{self.input_size} inputs (mean {sum(counts) / len(counts):.1f})"
        )


def analyse_mixing(flow: FlowGraph) -> tuple[MixingReport, tuple[Diagnostic, ...]]:
    """Propagate dependency bitsets through ``flow``; return the report and the warnings."""
    graph, locate = flow.graph, flow.locate
    size = prod(graph.nodes[INPUT]["shape"])
    full = (1 << size) - 1
    values: dict[tuple[str, int], list[int]] = {(INPUT, 0): [1 << i for i in range(size)]}
    warnings: list[Diagnostic] = []
    full_after: str | None = None
    last_mask: tuple[int, ...] | None = None
    for node in nx.topological_sort(graph):
        data = graph.nodes[node]
        if data.get("kind") in ("input",):
            continue
        ((src, _, edge),) = graph.in_edges(node, data=True)
        deps = values[(src, edge["src_port"])]
        op = data.get("op")
        if op is None:
            values[(node, 0)] = deps
            continue
        opdef = OPS[op.kind]
        outs = opdef.mix(op.params, op.in_shape, deps)
        for port, out in enumerate(outs):
            values[(node, port)] = out
        if opdef.role == "coupling":
            if last_mask == tuple(op.params["mask"]):
                warnings.append(
                    Diagnostic(
                        "same-mask",
                        "this coupling uses the same mask as the previous one with only "
                        "elementwise layers in between, so it cannot mix anything new",
                        op.path,
                        locate((*op.spec_path, "mask")),
                        "alternate the mask (e.g. 'alternating') or add a permute/invconv between",
                        severity="warning",
                    )
                )
            last_mask = tuple(op.params["mask"])
        elif opdef.role != "elementwise":
            last_mask = None
        if full_after is None and all(d == full for d in outs[0]) and len(outs) == 1:
            full_after = op.name
    latent_deps: list[int] = []
    for latent in flow.latents:
        ((src, _, edge),) = graph.in_edges(latent, data=True)
        latent_deps += values[(src, edge["src_port"])]
    alone = [i for i, dep in enumerate(latent_deps) if dep.bit_count() == 1 and size > 1]
    if alone:
        shown = ", ".join(map(str, alone[:8])) + (", ..." if len(alone) > 8 else "")
        path = ("layers",) if flow.spec.layers else ("levels",)
        warnings.append(
            Diagnostic(
                "never-mixed",
                f"{len(alone)} latent element(s) never interact with any other input "
                f"element (latent index {shown})",
                path[0],
                locate(path),
                "add couplings with the opposite mask, or a permutation",
                severity="warning",
            )
        )
    return MixingReport(size, tuple(latent_deps), full_after), tuple(warnings)
