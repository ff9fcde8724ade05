"""Training checkpoints: everything a resumed run needs, in one safetensors file, no pickle.

A checkpoint is an ordinary flowspec weights file (:func:`flowspec.load` reads it) with extra
tensors and metadata that :func:`flowspec.load` ignores:

* ``optim.state.<i>.<key>``: Adam's per-parameter state (``step``, ``exp_avg``, ``exp_avg_sq``),
  ``<i>`` being the parameter's position in ``flow.parameters()``;
* ``optim.rng.torch`` (and ``optim.rng.cuda``): the global random state, which drives
  dequantisation noise; on a job of several processes, ``optim.rng.torch.<r>`` (and
  ``optim.rng.cuda.<r>``) are those of process ``r >= 1``; ``optim.rng.shuffle``: the shuffling
  generator's state at the start of the current epoch (the epoch's order is drawn again from it
  on resume);
* metadata ``train_state``: :class:`TrainState` as JSON (counters, best validation NLL, the
  metrics history, the training config and data source) and ``optim_groups``: Adam's
  hyper-parameters.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from flowspec.errors import Diagnostic, WeightsError
from flowspec.io import EXTRA_PREFIX, WeightsFile, save
from flowspec.nn.flow import Flow

__all__ = [
    "TrainState",
    "model_metadata",
    "read_state",
    "restore_optimizer",
    "restore_rng",
    "save_checkpoint",
]

PREFIX = EXTRA_PREFIX


@dataclass
class TrainState:
    """Counters and bookkeeping of a run; JSON-able so it travels in the file's metadata."""

    step: int = 0
    epoch: int = 0  # 0-based index of the current pass over the data
    batch_in_epoch: int = 0  # batches of the current epoch already used
    best_val: float | None = None
    best_step: int = 0
    bad_evals: int = 0  # validations since the last improvement
    seconds: float = 0.0
    loss_sum: float = 0.0  # training loss summed since the last validation
    loss_count: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    data: str = ""
    data_seed: int = 0
    data_sha256: str = ""  # Splits.digest() of the data trained on ("" in older checkpoints)
    world_size: int = 1  # processes of the job that wrote it (torchrun)
    context_columns: list[int] | None = None  # table columns holding a conditional flow's context


def model_metadata(state: TrainState, row: dict[str, Any]) -> dict[str, str]:
    """Metadata ``training`` of a best-model file: where it came from and how it scored."""
    info = {
        "step": state.step,
        "epoch": row["epoch"],
        "val_nll": row["val_nll"],
        "data": state.data,
        "data_seed": state.data_seed,
        "context_columns": state.context_columns,
        "config": state.config,
    }
    return {"training": json.dumps(info)}


def save_checkpoint(
    path: Path,
    flow: Flow,
    optimizer: torch.optim.Optimizer,
    state: TrainState,
    shuffle_state: torch.Tensor,
    rng_states: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write the model, optimizer, random states and ``state`` to ``path`` atomically
    (``rng_states``: the other processes' random states, ``rng.torch.<r>``...)."""
    index = {id(p): i for i, p in enumerate(flow.parameters())}
    tensors: dict[str, torch.Tensor] = {}
    for param, slots in optimizer.state.items():
        for key, value in slots.items():
            tensors[f"{PREFIX}state.{index[id(param)]}.{key}"] = torch.as_tensor(value)
    tensors[f"{PREFIX}rng.torch"] = torch.get_rng_state()
    tensors[f"{PREFIX}rng.shuffle"] = shuffle_state
    if any(b.is_cuda for b in flow.buffers()):
        tensors[f"{PREFIX}rng.cuda"] = torch.cuda.get_rng_state()
    for name, value in (rng_states or {}).items():
        tensors[f"{PREFIX}{name}"] = value
    groups = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    metadata = {
        "train_state": json.dumps(asdict(state)),
        "optim_groups": json.dumps(groups),
    }
    return save(flow, path, extra_tensors=tensors, extra_metadata=metadata)


def read_state(
    weights: WeightsFile,
) -> tuple[TrainState, dict[str, torch.Tensor], list[dict[str, Any]]]:
    """The :class:`TrainState`, the ``optim.*`` tensors and Adam's groups stored in a
    checkpoint."""
    metadata, tensors, path = weights.metadata, weights.tensors, weights.path
    if "train_state" not in metadata or "optim_groups" not in metadata:
        raise WeightsError(
            Diagnostic(
                "not-a-checkpoint",
                f"'{path}' is a model file without training state; it cannot be resumed",
                hint="resume from the run's last.safetensors",
            )
        )
    state = TrainState(**json.loads(metadata["train_state"]))
    extra = {k[len(PREFIX) :]: v for k, v in tensors.items() if k.startswith(PREFIX)}
    return state, extra, json.loads(metadata["optim_groups"])


def restore_optimizer(
    optimizer: torch.optim.Optimizer,
    flow: Flow,
    extra: dict[str, torch.Tensor],
    groups: list[dict[str, Any]],
) -> None:
    """Load Adam's state saved by :func:`save_checkpoint` into ``optimizer``."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in extra.items():
        if key.startswith("state."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    n_params = sum(1 for _ in flow.parameters())
    for group in groups:
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
    groups[0]["params"] = list(range(n_params))
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def restore_rng(
    extra: dict[str, torch.Tensor], rank: int = 0, fresh_seed: int | None = None
) -> torch.Tensor:
    """Set process ``rank``'s global random state(s); return the shuffling generator's
    epoch-start state. A process the checkpoint has no state for (the job grew) starts a fresh
    stream from ``fresh_seed``."""
    suffix = "" if rank == 0 else f".{rank}"
    if f"rng.torch{suffix}" in extra:
        torch.set_rng_state(extra[f"rng.torch{suffix}"])
    elif fresh_seed is not None:
        torch.manual_seed(fresh_seed)
    if f"rng.cuda{suffix}" in extra and torch.cuda.is_available():
        torch.cuda.set_rng_state(extra[f"rng.cuda{suffix}"])
    return extra["rng.shuffle"]
