"""Before a run allocates anything: its memory estimate, and a refusal when it cannot fit.

The estimate is :func:`flowspec.graph.cost.cost_report`'s (weights, gradients, Adam's two
moments, buffers and the activations a training step keeps at the run's batch size, in the
flow's memory mode); the device's memory is what it has free now (``MemAvailable`` on Linux for
the CPU, ``torch.cuda.mem_get_info`` on a GPU).
"""

from __future__ import annotations

import os
from typing import Any

import torch

from flowspec.errors import Diagnostic, TrainingError
from flowspec.graph.cost import cost_report, format_bytes

__all__ = ["available_memory", "check_memory"]


def available_memory(device: torch.device) -> int | None:
    """Bytes the device can still allocate (None when unknown)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(flow: Any, spec: Any, batch: int, device: torch.device) -> str | None:
    """A line with the estimate for ``batch`` examples in ``flow.memory`` mode; raises
    ``memory-exceeded``, located at the spec's ``train.batch_size``, when it exceeds the
    device's free memory. None for a flow without its graph."""
    if getattr(flow, "graph", None) is None:
        return None
    report = cost_report(flow.graph, tuple(getattr(flow, "passes", {})))
    float_bytes = next((p.element_size() for p in flow.parameters()), 4)
    scale = float_bytes / report.float_bytes
    mode = flow.memory
    need = report.training_bytes(batch, mode) * scale
    activations = report.activation_bytes(batch, mode) * scale
    line = (
        f"memory estimate at batch {batch} ({mode}): {format_bytes(need)}, of which "
        f"activations {format_bytes(activations)}"
    )
    free = available_memory(device)
    if free is not None and need > free:
        other = "invertible" if mode == "plain" else "plain"
        alternative = report.training_bytes(batch, other) * scale
        source = spec.source
        raise TrainingError(
            Diagnostic(
                "memory-exceeded",
                f"a training step at batch {batch} needs about {format_bytes(need)} "
                f"(weights, gradients and Adam's moments {format_bytes(need - activations)}, "
                f"activations {format_bytes(activations)} with memory '{mode}'), but the "
                f"{device.type} device has {format_bytes(free)} free",
                path="train.batch_size",
                location=None if source is None else source.locate(("train", "batch_size")),
                hint=f"lower the batch size (--batch-size); memory '{other}' would need about "
                f"{format_bytes(alternative)}; 'flowspec graph SPEC --cost' shows where it goes",
            )
        )
    return line
