"""Mixing analysis: which input elements can influence which latent elements.

Each element carries a row of bits (:mod:`flowspec.layers.bits`) marking the input elements it
depends on; every op's ``mix`` rule maps the rows of its input to those of its outputs
(couplings: transformed elements gain the kept elements their conditioner sees; permutations,
squeezes and 1x1 convolutions move or merge them). MLP conditioners see every kept element; conv
conditioners (and a split's learned prior) see the kept elements within their receptive field,
so for generic weights the report equals the Jacobian's sparsity pattern.

Exact where it is cheap, bounded where it is not: a flow with at most :data:`EXACT_INPUTS`
input elements tracks every input (a D x D bit matrix, at most 2 MB). A larger flow would need
D^2 bits (4.8 GB for a 3x256x256 image), so it tracks :data:`SAMPLED_INPUTS` inputs drawn with a
fixed seed (their rows and columns of the matrix are exact) plus, per element, one word per
base-64 digit of the indices it depends on: a set holds a single input exactly when every digit
word has one bit, so the "never mixed" warning stays exact at any size. Memory is
O(D * (SAMPLED_INPUTS / 64 + log_64 D)) words, time O(ops * D) vectorised.

Two things are reported as warnings: latent elements that never interacted with any other input
element, and couplings that repeat the previous coupling's mask with nothing but elementwise
ops in between (the second one cannot mix anything new).

A conditional flow's context is one more word at the end of every row: an op whose conditioner
takes it ORs the context's bit into every element its network computes, so the report also says
which latent elements depend on the context (``context_deps``).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import TYPE_CHECKING

import networkx as nx
import numpy as np

from flowspec.errors import Diagnostic
from flowspec.graph.ir import CONTEXT, INPUT, data_in_edges
from flowspec.layers import OPS
from flowspec.layers.bits import or_reduce, popcount

if TYPE_CHECKING:
    from flowspec.graph.ir import FlowGraph

__all__ = ["EXACT_INPUTS", "SAMPLED_INPUTS", "MixingReport", "analyse_mixing", "initial_rows"]

EXACT_INPUTS = 4096
SAMPLED_INPUTS = 256


@dataclass(frozen=True, eq=False)
class MixingReport:
    """Dependencies of the flat latent z (in concatenation order) on the flat input.

    ``inputs`` are the input indices tracked bit by bit (all of them when ``exact``);
    ``rows`` holds, per latent element, its bits: one per tracked input, then (when not exact)
    the digit words that make :meth:`unmixed` exact.
    """

    input_size: int
    inputs: np.ndarray
    rows: np.ndarray
    full_after: str | None  # first op after which every element depends on every input
    exact: bool = True
    context_deps: tuple[bool, ...] | None = None  # per latent element; None: unconditional

    def _column(self, input_index: int) -> int:
        found = np.searchsorted(self.inputs, input_index)
        if found >= len(self.inputs) or self.inputs[found] != input_index:
            raise ValueError(
                f"input {input_index} is not tracked: a flow of {self.input_size:,} inputs is "
                f"analysed on {len(self.inputs)} sampled inputs (see MixingReport.inputs)"
            )
        return int(found)

    def depends(self, latent: int, input_index: int) -> bool:
        """Whether latent element ``latent`` depends on input element ``input_index`` (any
        input when exact, else one of :attr:`inputs`)."""
        column = self._column(input_index)
        return bool(int(self.rows[latent, column // 64]) >> (column % 64) & 1)

    def _tracked_bits(self) -> np.ndarray:
        """Boolean ``(latents, tracked inputs)``."""
        words = (len(self.inputs) + 63) // 64
        as_bytes = np.ascontiguousarray(self.rows[:, :words], dtype="<u8").view(np.uint8)
        bits = np.unpackbits(as_bytes.reshape(len(self.rows), -1), axis=1, bitorder="little")
        return bits[:, : len(self.inputs)].astype(bool)

    def counts(self) -> list[int]:
        """For each latent element, how many input elements it depends on (exact reports)."""
        if not self.exact:
            raise ValueError(
                "dependency counts are exact only for flows of at most "
                f"{EXACT_INPUTS} inputs; use reach() or unmixed()"
            )
        return popcount(self.rows).tolist()

    def reach(self) -> np.ndarray:
        """For each tracked input (:attr:`inputs`), how many latent elements depend on it."""
        return self._tracked_bits().sum(axis=0)

    def unmixed(self) -> list[int]:
        """Latent elements that depend on a single input element (exact at every size)."""
        if self.input_size == 1:
            return []
        if self.exact:
            return np.flatnonzero(popcount(self.rows) == 1).tolist()
        words = (len(self.inputs) + 63) // 64
        digits = self.rows[:, words:]
        single = np.ones(len(self.rows), dtype=bool)
        for k in range(digits.shape[1]):
            single &= popcount(digits[:, k : k + 1]) == 1
        return np.flatnonzero(single).tolist()

    def matrix(self) -> list[list[int]]:
        """0/1 matrix M[latent][input] (exact reports; use for small flows)."""
        if not self.exact:
            raise ValueError(
                f"the full matrix exists only for flows of at most {EXACT_INPUTS} inputs"
            )
        return self._tracked_bits().astype(int).tolist()

    def context_count(self) -> int | None:
        """How many latent elements depend on the context (None: an unconditional flow)."""
        return None if self.context_deps is None else sum(self.context_deps)

    def summary(self) -> str:
        text = self._input_summary()
        if self.context_deps is not None:
            text += f"; {self.context_count()} of {len(self.rows)} depend on the context"
        return text

    def _input_summary(self) -> str:
        where = f" (from {self.full_after} on)" if self.full_after else ""
        if self.exact:
            counts = self.counts()
            if min(counts) == self.input_size:
                return f"every latent element depends on all {self.input_size} inputs{where}"
            return (
                f"latent elements depend on {min(counts)} to {max(counts)} of "
                f"{self.input_size} inputs (mean {sum(counts) / len(counts):.1f})"
            )
        reach, n = self.reach(), len(self.inputs)
        sampled = f"measured on {n} sampled inputs of {self.input_size:,}"
        if int(reach.min()) == len(self.rows):
            return f"every latent element depends on every input ({sampled}){where}"
        return (
            f"an input reaches {int(reach.min()):,} to {int(reach.max()):,} of "
            f"{len(self.rows):,} latent elements (mean {float(reach.mean()):,.1f}; {sampled})"
        )


def initial_rows(size: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """``(tracked inputs, rows of the input elements, exact)`` for a flow of ``size`` inputs."""
    index = np.arange(size, dtype=np.int64)
    if size <= EXACT_INPUTS:
        rows = np.zeros((size, (size + 63) // 64), dtype=np.uint64)
        rows[index, index // 64] = np.left_shift(np.uint64(1), (index % 64).astype(np.uint64))
        return index, rows, True
    tracked = np.sort(np.random.default_rng(0).choice(size, SAMPLED_INPUTS, replace=False))
    words, digits = SAMPLED_INPUTS // 64, 1
    while 64**digits < size:
        digits += 1
    rows = np.zeros((size, words + digits), dtype=np.uint64)
    column = np.arange(SAMPLED_INPUTS)
    rows[tracked, column // 64] = np.left_shift(np.uint64(1), (column % 64).astype(np.uint64))
    for k in range(digits):
        digit = (index // 64**k) % 64
        rows[:, words + k] = np.left_shift(np.uint64(1), digit.astype(np.uint64))
    return tracked, rows, False


def _all_equal(rows: np.ndarray, row: np.ndarray) -> bool:
    """Whether every row equals ``row`` (the first and last rows are checked first: cheap)."""
    return bool((rows[0] == row).all() and (rows[-1] == row).all() and (rows == row).all())


def analyse_mixing(flow: FlowGraph) -> tuple[MixingReport, tuple[Diagnostic, ...]]:
    """Propagate dependency rows through ``flow``; return the report and the warnings."""
    graph, locate = flow.graph, flow.locate
    size = prod(graph.nodes[INPUT]["shape"])
    tracked, start, exact = initial_rows(size)
    full = or_reduce(start)  # the row of an element that depends on every input
    words = start.shape[1]
    context = None
    if CONTEXT in graph:  # one more word per row: bit 0 of it stands for the context
        start = np.concatenate([start, np.zeros((size, 1), dtype=start.dtype)], axis=1)
        context = np.zeros((1, words + 1), dtype=start.dtype)
        context[0, words] = 1
    values: dict[tuple[str, int], np.ndarray] = {(INPUT, 0): start}
    warnings: list[Diagnostic] = []
    full_after: str | None = None
    last_mask: tuple[int, ...] | None = None
    for node in nx.topological_sort(graph):
        data = graph.nodes[node]
        if data.get("kind") in ("input", "context"):
            continue
        ((src, _, edge),) = data_in_edges(graph, node)
        deps = values.pop((src, edge["src_port"]))  # each port is read once: free it
        op = data.get("op")
        if op is None:
            values[(node, 0)] = deps
            continue
        opdef = OPS[op.kind]
        outs = opdef.mix(
            op.params, op.in_shape, deps, context if op.params.get("context") else None
        )
        for port, out in enumerate(outs):
            values[(node, port)] = out
        if opdef.role == "coupling":
            mask = op.params["mask"]
            if last_mask is not None and (last_mask is mask or last_mask == mask):
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
            last_mask = mask
        elif opdef.role != "elementwise":
            last_mask = None
        if full_after is None and len(outs) == 1 and _all_equal(outs[0][:, :words], full):
            full_after = op.name
    rows = np.concatenate([values.pop((latent, 0)) for latent in flow.latents])
    context_deps = None if context is None else tuple(rows[:, words].astype(bool).tolist())
    report = MixingReport(size, tracked, rows[:, :words], full_after, exact, context_deps)
    alone = report.unmixed()
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
    return report, tuple(warnings)
