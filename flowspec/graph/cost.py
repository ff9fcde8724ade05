"""The cost of a flow before anything is allocated: parameters, FLOPs, training memory, file size.

:func:`cost_report` sums each op's cost rule (:mod:`flowspec.layers.cost`) over the graph, per
top-level block (``preprocess.0``, ``levels.1``, ``layers.0``, ``base``) and in total, in pure
Python and in time linear in the number of ops (no per-element work). Memory is counted as
autograd counts it: distinct storages, so a tensor that two ops keep is counted once.

Two training memory modes (``train: {memory: ...}``):

- ``plain``: every op's saved tensors, per example;
- ``invertible``: ``z`` (kept by the backward pass), what the base keeps, and the inputs of the
  steps that cannot be inverted (batch norm, dequantisation) from the first step with
  parameters on; the backward pass also holds one step's local graph at a time
  (``backward_peak``, the largest).

Example:
    >>> from flowspec.api import build_graph
    >>> report = cost_report(build_graph("specs/realnvp_moons.yaml"))
    >>> report.params, report.saved["plain"] > 10 * report.saved["invertible"]
    (44230, True)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import count
from math import prod
from typing import Any

from flowspec.graph.ir import INPUT, FlowGraph
from flowspec.layers import OPS
from flowspec.layers.cost import CostContext, OpCost, Saved, TensorInfo
from flowspec.spec.bases import BASES
from flowspec.spec.passes import DEFAULT_PASSES
from flowspec.version import __version__

__all__ = ["BlockCost", "CostReport", "cost_report", "file_size", "format_bytes", "format_cost"]

MODES = ("plain", "invertible")
FEATURES = "features"  # the storage of a conditional flow's context features
# Steps whose input invertible backprop stores (in training): see flowspec.nn.invertible.
CHECKPOINTED = {"batchnorm", "dequantize"}
DTYPES = {"float": ("F32", 4), "int64": ("I64", 8), "bool": ("BOOL", 1)}
# safetensors orders tensors by dtype (descending) then name
DTYPE_ORDER = {"I64": 2, "F32": 1, "BOOL": 0}


@dataclass
class BlockCost:
    """One top-level block: op count, parameters, FLOPs per example (plus per batch), and the
    elements per example a training step keeps, per memory mode."""

    name: str
    ops: int = 0
    params: int = 0
    flops: int = 0
    flops_batch: int = 0
    saved: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MODES, 0))
    saved_batch: int = 0  # plain memory: elements kept once per batch (masked weights)


@dataclass(frozen=True)
class CostReport:
    """Totals and blocks; element counts are per example, bytes use float32."""

    blocks: tuple[BlockCost, ...]
    params: int
    buffers: int  # elements of persistent buffers
    flops: int
    flops_batch: int
    saved: dict[str, int]
    backward_peak: int  # invertible mode: the largest step's local graph, per example
    file_bytes: int
    tensors: tuple[TensorInfo, ...]
    float_bytes: int = 4
    saved_batch: int = 0  # plain memory: elements kept once per batch, not per example

    def activation_bytes(self, batch: int, memory: str = "plain") -> int:
        """Bytes of activations a training step keeps at ``batch`` examples."""
        peak = self.backward_peak if memory == "invertible" else 0
        once = self.saved_batch if memory == "plain" else 0
        return ((self.saved[memory] + peak) * batch + once) * self.float_bytes

    def training_bytes(self, batch: int, memory: str = "plain") -> int:
        """Estimated peak memory of a training step with Adam: weights, gradients, two moment
        estimates, buffers, and the activations."""
        weights = 4 * self.params * self.float_bytes
        return weights + self.buffers * 8 + self.activation_bytes(batch, memory)


def cost_report(graph: FlowGraph, passes: Sequence[str] = DEFAULT_PASSES) -> CostReport:
    """The costs of ``graph``'s flow compiled with the optimisation ``passes``; see the module
    docstring."""
    walk = _Walk(graph, frozenset(passes))
    walk.context()
    for op in graph.ops():
        walk.op(op)
    walk.base()
    blocks = tuple(walk.blocks.values())
    tensors = tuple(walk.tensors)
    params = sum(t.numel for t in tensors if t.param)
    return CostReport(
        blocks=blocks,
        params=params,
        buffers=sum(t.numel for t in tensors if not t.param),
        flops=sum(b.flops for b in blocks),
        flops_batch=sum(b.flops_batch for b in blocks),
        saved={m: sum(b.saved[m] for b in blocks) for m in MODES},
        saved_batch=sum(b.saved_batch for b in blocks),
        backward_peak=walk.peak,
        file_bytes=file_size(
            tensors, json.dumps(graph.spec.model_dump(mode="json"), sort_keys=True)
        ),
        tensors=tensors,
    )


class _Walk:
    """Storages and gradient flags along the graph, and the totals per block."""

    def __init__(self, graph: FlowGraph, passes: frozenset[str]) -> None:
        self.graph, self.passes = graph, passes
        self.ids = count()
        d = prod(graph.input_shape)
        self.storage: dict[tuple[str, int], tuple[Any, int]] = {(INPUT, 0): ("x", d)}
        self.grad: dict[tuple[str, int], bool] = {(INPUT, 0): False}
        self.counted: dict[str, set[Any]] = {m: set() for m in MODES}
        self.blocks: dict[str, BlockCost] = {}
        self.tensors: list[TensorInfo] = []
        self.peak = 0
        self.trained = False  # has an op with parameters been seen (invertible: rebuilt from)

    def block(self, name: str) -> BlockCost:
        key = name if name == "base" else ".".join(name.split(".")[:2])
        return self.blocks.setdefault(key, BlockCost(key))

    def keep(self, mode: str, block: BlockCost, storage: Any, elements: int) -> None:
        if storage not in self.counted[mode]:
            self.counted[mode].add(storage)
            block.saved[mode] += elements

    def op(self, op: Any) -> None:
        source = self.graph.source_of(op.name)
        storage, size = self.storage[source]
        grad_in = self.grad[source]
        rule = OPS[op.kind].cost
        context = CostContext(op.in_shape, op.out_shapes, op.params, grad_in, self.passes)
        cost = OpCost() if rule is None else rule(op.spec, context)
        block = self.block(op.name)
        block.ops += 1
        block.params += cost.params
        block.flops += cost.flops
        block.flops_batch += cost.flops_batch
        block.saved_batch += cost.saved_batch
        self.tensors += [_renamed(op.name, t) for t in cost.tensors]
        local = 0
        for saved in cost.saved:
            key, elements = self.resolve(op.name, saved, storage, size)
            self.keep("plain", block, key, elements)
            local += elements
        self.peak = max(self.peak, local)
        self.trained = self.trained or cost.params > 0
        if self.trained and op.kind in CHECKPOINTED:
            self.keep("invertible", block, storage, size)
        for port, shape in enumerate(op.out_shapes):
            out = (storage, size) if port in cost.output_is_input else (next(self.ids), prod(shape))
            self.storage[(op.name, port)] = out
            self.grad[(op.name, port)] = grad_in or cost.params > 0

    def resolve(self, name: str, saved: Saved, storage: Any, size: int) -> tuple[Any, int]:
        if saved.storage == "input":
            return storage, size
        if saved.storage == "new":
            return next(self.ids), saved.elements
        if saved.storage == FEATURES:
            return FEATURES, saved.elements  # one storage per call, shared by its readers
        return (name, saved.storage), saved.elements

    def context(self) -> None:
        """A conditional flow's context encoder: its tensors (a class embedding, or a vector
        context's standardisation statistics); the features it produces are the storage
        :data:`FEATURES` that the ops and the base reading them keep."""
        spec = self.graph.spec.context
        if spec is None:
            return
        block = self.block("context")
        tensors = context_tensors(spec)
        block.params += sum(t.numel for t in tensors if t.param)
        self.tensors += [_renamed("context", t) for t in tensors]
        if block.params:  # a learned embedding: it keeps the labels (int64, two float32 units)
            for mode in MODES:
                self.keep(mode, block, "labels", 2)
            # features that need a gradient reach every step: invertible backprop rebuilds
            # from the first one (flowspec.nn.backprop_plan)
            self.trained = True

    def base(self) -> None:
        spec = self.graph.spec.base
        dim = self.graph.latent_size()
        context = self.graph.spec.context
        tensors, saved, flops = BASES[spec.type].cost(spec, dim, context.features if context else 0)
        block = self.block("base")
        block.params += sum(t.numel for t in tensors if t.param)
        block.flops += flops
        self.tensors += [_renamed("base", t) for t in tensors]
        if self.trained:
            self.keep("invertible", block, "z", dim)  # the backward pass keeps z
            if context is not None:  # and the context features (flowspec.nn.invertible)
                self.keep("invertible", block, FEATURES, context.features)
        if not (self.trained or block.params):
            return  # nothing needs a gradient: nothing is kept
        for item in saved:
            key = item.storage if item.storage in ("z", FEATURES) else next(self.ids)
            for mode in MODES:
                self.keep(mode, block, key, item.elements)


def context_tensors(spec: Any) -> tuple[TensorInfo, ...]:
    """The tensors of the context encoder for a ``context:`` spec (names under ``context.``)."""
    if getattr(spec, "classes", None) is not None:
        if not spec.embedding:
            return ()  # one-hot: nothing learned
        return (TensorInfo("embedding.weight", (spec.classes, spec.embedding)),)
    if not spec.normalize:
        return ()
    f = spec.features
    return (
        TensorInfo("mean", (1, f), param=False),
        TensorInfo("std", (1, f), param=False),
        TensorInfo("initialized", (), "bool", param=False),
    )


def _renamed(prefix: str, t: TensorInfo) -> TensorInfo:
    return TensorInfo(f"{prefix}.{t.name}", t.shape, t.dtype, t.param)


def file_size(tensors: Sequence[TensorInfo], spec_text: str) -> int:
    """Bytes of the safetensors file :func:`flowspec.save` writes for these tensors (float32)
    and this spec: an 8-byte length, the JSON header padded to 8 bytes, the data."""
    metadata = {
        "format": "flowspec-weights",
        "format_version": "1",
        "flowspec_version": __version__,
        "spec": spec_text,
        "spec_sha256": hashlib.sha256(spec_text.encode()).hexdigest(),
        "tensors_sha256": "0" * 64,  # a SHA-256 in hex: its length is all that counts here
        "buffers": json.dumps(sorted(t.name for t in tensors if not t.param)),
    }
    ordered = sorted(tensors, key=lambda t: (-DTYPE_ORDER[DTYPES[t.dtype][0]], t.name))
    header: dict[str, Any] = {"__metadata__": metadata}
    offset = 0
    for t in ordered:
        code, size = DTYPES[t.dtype]
        end = offset + t.numel * size
        header[t.name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [offset, end]}
        offset = end
    text = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode()
    return 8 + len(text) + (-len(text)) % 8 + offset


def format_bytes(n: float) -> str:
    """``n`` bytes with a binary unit.

    Example:
        >>> format_bytes(512), format_bytes(3 * 2**20)
        ('512 B', '3.00 MiB')
    """
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:.0f} B"


def format_cost(report: CostReport, batch: int, name: str = "") -> str:
    """The report as a table per block, then the totals for a training step at ``batch``."""
    b = report.float_bytes
    rows = [("block", "ops", "params", "FLOPs/example", "saved/example", "invertible")]
    for block in report.blocks:
        rows.append(
            (
                block.name,
                f"{block.ops:,}" if block.ops else "",
                f"{block.params:,}",
                f"{block.flops + block.flops_batch // batch:,}",
                format_bytes(block.saved["plain"] * b),
                format_bytes(block.saved["invertible"] * b),
            )
        )
    rows.append(
        (
            "total",
            f"{sum(x.ops for x in report.blocks):,}",
            f"{report.params:,}",
            f"{report.flops + report.flops_batch // batch:,}",
            format_bytes(report.saved["plain"] * b),
            format_bytes(report.saved["invertible"] * b),
        )
    )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  "
        + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
        for r in rows
    ]
    peak = report.backward_peak * b * batch
    plain, inverted = (report.training_bytes(batch, m) for m in MODES)
    return "\n".join(
        [
            f"cost of '{name}' (float32; saved = what autograd keeps for backward):",
            *lines,
            f"training step at batch {batch} (weights, gradients, Adam's moments, activations):",
            f"  memory plain       {format_bytes(plain)}"
            f" (activations {format_bytes(report.activation_bytes(batch, 'plain'))})",
            f"  memory invertible  {format_bytes(inverted)}"
            f" (activations {format_bytes(report.saved['invertible'] * b * batch)}"
            f" + {format_bytes(peak)} for the largest step rebuilt in backward)",
            f"model file: {format_bytes(report.file_bytes)} ({report.file_bytes:,} bytes), "
            f"{report.params:,} parameters",
        ]
    )
