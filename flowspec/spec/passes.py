"""The optimisation passes by name, torch-free: what each one does and which run by default.

The rewrites themselves are :mod:`flowspec.nn.passes` (a table with the same keys); the cost
report (:mod:`flowspec.graph.cost`) reads the names to count what an optimised step computes.
A spec chooses them with ``train: {passes: [...]}`` (default: :data:`DEFAULT_PASSES`).
"""

from __future__ import annotations

from typing import Literal

__all__ = ["DEFAULT_PASSES", "PASS_SUMMARIES", "PassName"]

PassName = Literal["fuse_towers", "kept_inputs"]

PASS_SUMMARIES: dict[str, str] = {
    "fuse_towers": "separate MLP towers reading one input run as one batched product per layer",
    "kept_inputs": "a masked-input MLP's first layer multiplies only the kept coordinates",
}
# Measured in benchmarks/passes.py: fusing the towers is slower in eager mode on a CPU (the
# weights are stacked at every call), so only kept_inputs runs unless asked for.
DEFAULT_PASSES: tuple[str, ...] = ("kept_inputs",)
