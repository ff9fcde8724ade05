"""What a training run sets up before its loop: the flow, the data, the device, the thread count,
data-dependent initialisation, and catching Ctrl-C between steps."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import torch

from flowspec.data import Splits, check_levels, load_splits
from flowspec.data.context import check_splits_context
from flowspec.errors import DataError, Diagnostic, SpecError, TrainingError
from flowspec.nn.flow import Flow
from flowspec.spec.limits import limit, raise_hint
from flowspec.spec.training import DataSpec, TrainSpec, override_train

__all__ = [
    "FIGURE_FILES",
    "RUN_FILES",
    "SigintFlag",
    "data_init",
    "prepare_out_dir",
    "remove_stale_temps",
    "resolve_device",
    "resolve_flow",
    "resolve_splits",
    "torch_threads",
]


def resolve_flow(
    spec_or_flow: Any, config: TrainSpec | None, overrides: dict[str, Any] | None = None
) -> tuple[Flow, Any, TrainSpec]:
    """The flow, its spec and the run's settings: the spec's ``train:`` section with the fields
    ``config`` sets and the ``overrides`` written over it (:func:`override_train`).

    A Flow is used as is; a spec is compiled with the training seed, so one seed fixes the
    initial weights as well as the run.
    """
    if isinstance(spec_or_flow, Flow):
        spec = spec_or_flow.spec
        return spec_or_flow, spec, _within_limits(override_train(spec.train, config, overrides))
    from flowspec.api import compile as compile_spec
    from flowspec.api import load_spec

    spec = load_spec(spec_or_flow)
    config = _within_limits(override_train(spec.train, config, overrides))
    return compile_spec(spec, seed=config.seed, passes=config.passes), spec, config


def _within_limits(config: TrainSpec) -> TrainSpec:
    """A config given in Python is held to the limits a spec's ``train:`` section is."""
    for name in ("threads", "workers"):
        value = getattr(config, name)
        if value is not None and value > limit(name):
            raise SpecError(
                Diagnostic(
                    "limit-exceeded",
                    f"train.{name} {value:,} is too large (limit {name}: {limit(name)})",
                    f"train.{name}",
                    hint=raise_hint(name),
                )
            )
    return config


def resolve_splits(data: str | DataSpec | Splits | None, flow: Flow, spec: Any) -> Splits:
    """Ready splits, or those of a data set name / file / ``DataSpec`` (default: the spec's
    ``data:``), checked against the flow's input shape and context and split with the seed of
    the ``data:`` section; values are checked against a leading ``dequantize`` layer's levels
    before any training step."""
    if isinstance(data, Splits):
        check_levels((data.train, data.val, data.test), flow.discrete_levels, f"data {data.name!r}")
        return check_splits_context(data, spec.context)
    data_spec = data if isinstance(data, DataSpec) else spec.data
    source = data.name if isinstance(data, DataSpec) else data
    source = source or (spec.data.name if spec.data is not None else None)
    if source is None:
        raise DataError(
            Diagnostic(
                "no-data",
                "no data given and the spec has no 'data:' section",
                hint="pass --data NAME|FILE or add 'data: {name: ...}' to the spec",
            )
        )
    seed = data_spec.seed if data_spec is not None else 0
    size = data_spec.image_size() if data_spec is not None else None
    crop = data_spec.crop if data_spec is not None else "none"
    columns = data_spec.context_columns if data_spec is not None else None
    splits = load_splits(
        source,
        tuple(flow.input_shape),
        seed=seed,
        size=size,
        crop=crop,
        context=spec.context,
        context_columns=columns,
    )
    check_levels(
        (splits.train, splits.val, splits.test),
        flow.discrete_levels,
        f"data {source!r}",
        splits.discrete_levels,
    )
    return splits


@torch.no_grad()
def data_init(flow: Flow, x: torch.Tensor, context: torch.Tensor | None = None) -> bool:
    """Run one forward pass on ``x`` (and its context) if some op (actnorm, a normalised
    context) still waits for data-dependent initialisation."""
    if not any(hasattr(m, "initialized") and not bool(m.initialized) for m in flow.modules()):
        return False
    flow(x, context)
    return True


def resolve_device(name: str) -> torch.device:
    """``cpu`` or ``cuda`` (``cuda:1`` too), refused with a clear message when unknown or when no
    GPU is visible."""
    if name.split(":")[0] not in ("cpu", "cuda"):
        raise TrainingError(
            Diagnostic("device-unknown", f"unknown device '{name}'", hint="use cpu or cuda")
        )
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(
            Diagnostic(
                "device-unavailable",
                "--device cuda was asked for, but no CUDA device is available",
                hint="train with --device cpu",
            ),
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


RUN_FILES = ("model.safetensors", "last.safetensors", "metrics.jsonl")
FIGURE_FILES = ("loss.png", "samples.png", "flow_steps.png", "density.png")


def prepare_out_dir(out_dir: Path | None, resume: bool, overwrite: bool) -> None:
    """Refuse to train over a previous run in ``out_dir`` unless resuming it or told to
    overwrite it; with ``overwrite`` remove the files that run wrote (only those).

    Raises:
        TrainingError: ``run-exists`` naming the directory and what it holds.
    """
    if out_dir is None or resume or not out_dir.is_dir():
        return
    found = [name for name in RUN_FILES if (out_dir / name).exists()]
    if found and not overwrite:
        raise TrainingError(
            Diagnostic(
                "run-exists",
                f"'{out_dir}' already holds a run ({', '.join(found)}); refusing to overwrite it",
                hint="continue it with --resume, replace it with --overwrite, or train into "
                "another --out directory (from Python: resume=True, overwrite=True or "
                "another out_dir)",
            )
        )
    if overwrite:
        for name in (*RUN_FILES, *FIGURE_FILES):
            (out_dir / name).unlink(missing_ok=True)
        for event in out_dir.glob("tensorboard/events.out.tfevents.*"):
            event.unlink()


def remove_stale_temps(out_dir: Path | None) -> None:
    """Delete temp files that a killed run left beside its checkpoints (see ``write_atomic``)."""
    if out_dir is not None and out_dir.is_dir():
        for name in ("model.safetensors", "last.safetensors", "metrics.jsonl"):
            for stale in out_dir.glob(f".{name}.*.tmp"):
                stale.unlink(missing_ok=True)
