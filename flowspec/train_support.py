"""Helpers of :mod:`flowspec.train` that are not the loop itself: building the flow, picking the
device, catching Ctrl-C between steps, checking a resume and explaining a divergence."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import torch

from flowspec.checkpoint import TrainState, read_state, restore_optimizer, restore_rng
from flowspec.data import Splits, load_splits
from flowspec.errors import DataError, Diagnostic, FlowspecError
from flowspec.flow import Flow
from flowspec.io import load
from flowspec.spec.run import TrainSpec


def resolve_flow(spec_or_flow: Any, config: TrainSpec | None) -> tuple[Flow, Any, TrainSpec]:
    """The flow, its spec and the training config (default: the spec's ``train:`` section).

    A Flow is used as is; a spec is compiled with the training seed, so one seed fixes the
    initial weights as well as the run.
    """
    if isinstance(spec_or_flow, Flow):
        spec = spec_or_flow.spec
        return spec_or_flow, spec, config or spec.train or TrainSpec()
    from flowspec.compiler import compile as compile_spec
    from flowspec.spec.parse import load_spec

    spec = load_spec(spec_or_flow)
    config = config or spec.train or TrainSpec()
    return compile_spec(spec, seed=config.seed), spec, config


def resolve_splits(data: str | Splits | None, flow: Flow, spec: Any) -> Splits:
    """Ready splits, or those of a data set name / file (default: the spec's ``data.name``),
    checked against the flow's input shape and split with the spec's ``data.seed``."""
    if isinstance(data, Splits):
        return data
    source = data or (spec.data.name if spec.data is not None else None)
    if source is None:
        raise DataError(
            Diagnostic(
                "no-data",
                "no data given and the spec has no 'data:' section",
                hint="pass --data NAME|FILE or add 'data: {name: ...}' to the spec",
            )
        )
    seed = spec.data.seed if spec.data is not None else 0
    return load_splits(source, tuple(flow.input_shape), seed=seed)


@torch.no_grad()
def data_init(flow: Flow, x: torch.Tensor) -> bool:
    """Run one forward pass on ``x`` if some op (actnorm) still waits for data-dependent init."""
    if not any(hasattr(m, "initialized") and not bool(m.initialized) for m in flow.modules()):
        return False
    flow(x)
    return True


def resolve_device(name: str) -> torch.device:
    """``cpu`` or ``cuda`` (refused with a located message when no GPU is visible)."""
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FlowspecError(
            Diagnostic(
                "device-unavailable",
                "--device cuda was asked for, but no CUDA device is available",
                hint="train with --device cpu",
            ),
        )
    if device.type not in ("cpu", "cuda"):
        raise FlowspecError(
            Diagnostic("device-unknown", f"unknown device '{name}'", hint="use cpu or cuda")
        )
    return device


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Use ``n`` torch CPU threads inside the block (None: leave the setting alone)."""
    previous = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class SigintFlag:
    """Within ``with``: the first SIGINT sets ``raised`` (the loop stops after the current step
    and saves); a second one interrupts at once. Outside the main thread it does nothing."""

    def __init__(self) -> None:
        self.raised = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.raised:
            raise KeyboardInterrupt
        self.raised = True

    def __enter__(self) -> SigintFlag:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def remove_stale_temps(out_dir: Path | None) -> None:
    """Delete temp files that a killed run left beside its checkpoints (see ``write_atomic``)."""
    if out_dir is not None and out_dir.is_dir():
        for name in ("model.safetensors", "last.safetensors", "metrics.jsonl"):
            for stale in out_dir.glob(f".{name}.*.tmp"):
                stale.unlink(missing_ok=True)


def resume_from(
    path: Path | None, flow: Flow, optimizer: torch.optim.Optimizer, expected: TrainState
) -> tuple[TrainState, torch.Tensor]:
    """Load weights, optimizer and random states from checkpoint ``path`` after checking that it
    was written by the same spec, settings and data; return its state and shuffle state."""
    if path is None or not path.is_file():
        raise FlowspecError(
            Diagnostic(
                "nothing-to-resume",
                f"no checkpoint to resume at '{path}'",
                hint="start the run without --resume first",
            )
        )
    state, extra, groups = read_state(path)
    check_config_matches(state, expected, path)
    saved = load(path)
    check_spec_matches(saved, flow, path)
    flow.load_state_dict(saved.state_dict())
    restore_optimizer(optimizer, flow, extra, groups)
    return state, restore_rng(extra)


def check_config_matches(saved: TrainState, current: TrainState, path: Path) -> None:
    """Refuse to resume with other settings or data than the checkpoint was trained with."""
    diffs = [
        f"{key}: checkpoint {saved.config.get(key)!r}, now {value!r}"
        for key, value in current.config.items()
        if saved.config.get(key) != value
    ]
    if saved.data != current.data:
        diffs.append(f"data: checkpoint {saved.data!r}, now {current.data!r}")
    if diffs:
        raise FlowspecError(
            Diagnostic(
                "resume-mismatch",
                f"cannot resume '{path}' with different settings ({'; '.join(diffs)})",
                hint="resume without overriding flags (or with the same ones), or start a new "
                "run in another --out directory",
            )
        )


def check_spec_matches(saved: Flow, flow: Flow, path: Path) -> None:
    """Refuse to resume a checkpoint of another flow (the spec file was edited)."""
    if saved.spec.model_dump() != flow.spec.model_dump():
        raise FlowspecError(
            Diagnostic(
                "resume-mismatch",
                f"the spec stored in '{path}' differs from the spec being trained",
                hint="the spec was edited since the checkpoint; start a new run in another "
                "--out directory",
            )
        )


def first_bad_gradient(flow: Flow) -> str | None:
    """Name of the first parameter whose gradient holds NaN or Inf (None if all finite)."""
    for name, param in flow.named_parameters():
        if param.grad is not None and not torch.isfinite(param.grad).all():
            return name
    return None


def _kind(flow: Flow, name: str) -> str:
    graph = getattr(flow, "graph", None)
    return graph.nodes[name]["op"].kind if graph is not None and name in graph else "op"


def diverged(
    flow: Flow,
    batch: torch.Tensor,
    state: TrainState,
    loss: float,
    checkpoint: Path | None,
    saved_step: int,
    gradient_of: str | None = None,
    phase: str = "",
) -> DataError:
    """The error for a non-finite loss (or gradient, or validation NLL), naming the step and the
    first layer whose output is not finite on ``batch``."""
    layer = flow.first_nonfinite(batch)
    step = state.step if phase == "validation" else state.step + 1
    if gradient_of:
        what = f"the gradient of parameter '{gradient_of}' is not finite (loss {loss:.6g})"
    elif phase == "validation":
        what = f"the validation NLL is {loss}"
    else:
        what = f"the loss is {loss}"
    where = (
        f"first non-finite output at layer '{layer}' ({_kind(flow, layer)})"
        if layer is not None
        else "every layer's output is finite, so the base distribution's log-density overflowed"
    )
    largest = float(batch.abs().max()) if batch.numel() else 0.0
    keep = (
        f"the last good checkpoint is {checkpoint} (step {saved_step}); "
        if checkpoint is not None
        else ""
    )
    return DataError(
        Diagnostic(
            "nonfinite-loss",
            f"training diverged at step {step} (epoch {state.epoch + 1}): {what}; {where} "
            f"(largest |x| in the batch: {largest:.3g})",
            hint=keep + "lower the learning rate (--lr), keep clip_grad_norm on, or check the "
            "data for extreme values",
        )
    )
