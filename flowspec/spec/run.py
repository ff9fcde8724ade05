"""Optional ``data:`` and ``train:`` sections: defaults for ``flowspec train`` (flags win)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from flowspec.spec.base import PositiveInt, StrictModel


class DataSpec(StrictModel):
    """Where the training data comes from: a built-in name (``moons``, ``digits``) or a file."""

    name: str = "moons"


class TrainSpec(StrictModel):
    """Training defaults. Give ``epochs`` or ``steps`` (``steps`` wins when both are set)."""

    epochs: PositiveInt | None = 20
    steps: PositiveInt | None = None
    batch_size: PositiveInt = 256
    lr: Annotated[float, Field(gt=0)] = 1e-3
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    warmup_steps: Annotated[int, Field(ge=0)] = 0
    schedule: Literal["constant", "cosine"] = "cosine"
    clip_grad_norm: Annotated[float, Field(gt=0)] | None = 10.0
    patience: PositiveInt | None = None
    seed: int = 0
