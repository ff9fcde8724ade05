"""Resuming a run: the checkpoint must come from the same spec, settings and data, and is loaded
into the live flow and optimizer (no second flow is built).

The length of a run may change on resume (:data:`EXTENDABLE`: ``epochs``, ``steps``,
``patience``), so a finished or early-stopped run can be extended; the learning-rate schedule is
then recomputed for the new total from the checkpoint's step on. ``workers`` may change too (it
never changes the result). Every other setting must match.
"""

from __future__ import annotations

from pathlib import Path

import torch

from flowspec.errors import Diagnostic, TrainingError
from flowspec.io import check_state, check_tensors, read_weights, spec_json
from flowspec.nn.flow import Flow
from flowspec.spec.training import TrainSpec
from flowspec.training.checkpoint import TrainState, read_state, restore_optimizer, restore_rng
from flowspec.training.distributed import rank_seed

__all__ = [
    "EXTENDABLE",
    "FREE_SETTINGS",
    "check_world",
    "require_reachable",
    "require_same_settings",
    "require_same_spec",
    "resume_from",
]

# Settings a resumed run may change: they never change the result.
FREE_SETTINGS = frozenset({"workers"})
# ... and how long it goes on, not what it computes on the way.
EXTENDABLE = frozenset({"epochs", "steps", "patience"})


def check_world(batch: int, world: int) -> None:
    """The global batch must split evenly over the processes of the job."""
    if batch % world:
        raise TrainingError(
            Diagnostic(
                "batch-indivisible",
                f"the global batch of {batch} examples does not split evenly over {world} "
                "processes",
                hint=f"use a batch_size that is a multiple of {world} (--batch-size), or "
                "another number of processes; the batch size is global and never rescaled",
            )
        )


def resume_from(
    path: Path | None,
    flow: Flow,
    optimizer: torch.optim.Optimizer,
    expected: TrainState,
    rank: int = 0,
    seed: int = 0,
) -> tuple[TrainState, torch.Tensor]:
    """Load weights, optimizer and random states from checkpoint ``path`` after checking that it
    was written by the same spec, settings and data; return its state and shuffle state.

    ``rank``: this process's rank, whose own random stream is restored if the checkpoint has
    one (a job with more processes than the one that wrote it seeds the new ones from
    ``seed``, the rank and the step)."""
    if path is None or not path.is_file():
        raise TrainingError(
            Diagnostic(
                "nothing-to-resume",
                f"no checkpoint to resume at '{path}'",
                hint="start the run without --resume first",
            )
        )
    weights = read_weights(path)
    state, extra, groups = read_state(weights)
    require_same_settings(state, expected, path)
    require_same_spec(weights.metadata["spec"], flow, path)
    check_tensors(weights.state, flow, path)
    flow.load_state_dict(weights.state)
    check_state(flow, path)
    restore_optimizer(optimizer, flow, extra, groups)
    state.config = dict(expected.config)  # a longer budget is recorded from here on
    return state, restore_rng(extra, rank, rank_seed(seed, rank, state.step))


def require_reachable(state: TrainState, total: int, path: Path) -> None:
    """Refuse a resumed budget that ends before the checkpoint's step."""
    if total < state.step:
        raise TrainingError(
            Diagnostic(
                "resume-mismatch",
                f"'{path}' is at step {state.step}, beyond the {total} steps asked for",
                hint="resume with a budget of at least that many steps (--steps/--epochs), or "
                "start a new run in another --out directory",
            )
        )


def require_same_settings(saved: TrainState, current: TrainState, path: Path) -> None:
    """Refuse to resume with other settings or data than the checkpoint was trained with."""
    fields = TrainSpec.model_fields

    def saved_value(key: str) -> object:  # a setting the checkpoint predates: its default
        return saved.config.get(key, fields[key].default if key in fields else None)

    diffs = [
        f"{key}: checkpoint {saved_value(key)!r}, now {value!r}"
        for key, value in current.config.items()
        if key not in FREE_SETTINGS | EXTENDABLE and saved_value(key) != value
    ]
    if saved.data != current.data:
        diffs.append(f"data: checkpoint {saved.data!r}, now {current.data!r}")
    elif saved.data_sha256 and saved.data_sha256 != current.data_sha256:
        diffs.append(
            f"data: the contents of {current.data!r} changed since the checkpoint (sha256 "
            f"{saved.data_sha256[:12]}..., now {current.data_sha256[:12]}...)"
        )
    if saved.context_columns != current.context_columns:
        diffs.append(
            f"context columns: checkpoint {saved.context_columns}, now {current.context_columns}"
        )
    if diffs:
        raise TrainingError(
            Diagnostic(
                "resume-mismatch",
                f"cannot resume '{path}' with different settings ({'; '.join(diffs)})",
                hint="resume with the same settings (only --epochs, --steps and --patience may "
                "change, to extend a run), or start a new run in another --out directory",
            )
        )


def require_same_spec(saved_spec: str, flow: Flow, path: Path) -> None:
    """Refuse to resume a checkpoint of another flow (the spec file was edited)."""
    if saved_spec != spec_json(flow):
        raise TrainingError(
            Diagnostic(
                "resume-mismatch",
                f"the spec stored in '{path}' differs from the spec being trained",
                hint="the spec was edited since the checkpoint; start a new run in another "
                "--out directory",
            )
        )
