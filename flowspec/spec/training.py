"""Optional ``data:`` and ``train:`` sections: defaults for ``flowspec train`` (flags win).

Both are torch-free Pydantic models, so ``flowspec validate`` checks them with the rest of the
spec. :func:`flowspec.train` takes a :class:`TrainSpec` directly when used from Python.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator

from flowspec.errors import Diagnostic, SpecError
from flowspec.layers.base import PositiveInt, Seed, StrictModel

__all__ = ["DataSpec", "TrainSpec", "override_train"]

PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]


class DataSpec(StrictModel):
    """Where the training data comes from.

    ``name`` is a built-in data set (``moons``, ``digits``, ... see ``flowspec.data``) or a path
    to a ``.npy`` / ``.csv`` file. ``seed`` fixes the train/validation/test split, so that
    ``flowspec eval`` scores the same test examples that training never saw.
    """

    name: str = "moons"
    seed: Seed = 0


class TrainSpec(StrictModel):
    """How to train: Adam, optional warm-up then cosine decay, clipping, early stopping.

    Give ``epochs`` or ``steps``; ``steps`` wins when both are set. Validation runs every
    ``val_every`` optimizer steps (default: once per epoch) and at the last step. ``patience``
    stops training after that many validations without a new best validation NLL.
    ``threads`` sets torch's CPU threads for the run (default: torch's choice); small flows
    train fastest on one thread, and a resumed run must use the same number to match exactly.
    """

    epochs: PositiveInt | None = 20
    steps: PositiveInt | None = None
    batch_size: PositiveInt = 256
    lr: PositiveFloat = 1e-3
    min_lr: NonNegativeFloat = 0.0
    weight_decay: NonNegativeFloat = 0.0
    warmup_steps: Annotated[int, Field(ge=0)] = 0
    schedule: Literal["constant", "cosine"] = "cosine"
    clip_grad_norm: PositiveFloat | None = 10.0
    patience: PositiveInt | None = None
    val_every: PositiveInt | None = None
    seed: Seed = 0
    threads: PositiveInt | None = None

from pydantic import Field, ValidationError, ValidationInfo, field_validator

from flowspec.errors import Diagnostic, SpecError
from flowspec.layers.base import PositiveInt, Seed, StrictModel
