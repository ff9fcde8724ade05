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
from flowspec.spec.passes import PassName

__all__ = ["DataSpec", "TrainSpec", "override_train"]

PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]


class DataSpec(StrictModel):
    """Where the training data comes from.

    ``name`` is a built-in data set (``moons``, ``digits``, ... see ``flowspec.data``), a path
    to a ``.npy`` / ``.csv`` / ImageNet-style ``.npz`` / CIFAR-10 ``.bin`` file, or a folder
    (CIFAR-10 binary batches, ImageNet-style ``.npz`` batches, PNG/JPEG images with optional
    class subfolders). ``seed`` fixes the train/validation/test split, so that
    ``flowspec eval`` scores the same test examples that training never saw. For a folder of
    images, ``crop: center`` cuts each image to its largest centred region with the target's
    aspect ratio and ``size`` (``H`` or ``[H, W]``) then resizes it.
    ``context_columns`` (0-based) are the columns of a table file that hold a conditional flow's
    context rather than data.
    """

    name: str = "moons"
    seed: Seed = 0
    size: PositiveInt | tuple[PositiveInt, PositiveInt] | None = None
    context_columns: tuple[Annotated[int, Field(ge=0)], ...] | None = None
    crop: Literal["none", "center"] = "none"

    def image_size(self) -> tuple[int, int] | None:
        """``size`` as ``(H, W)`` (None: keep the images' own size)."""
        if self.size is None or isinstance(self.size, tuple):
            return self.size
        return (self.size, self.size)


class TrainSpec(StrictModel):
    """How to train: Adam, optional warm-up then cosine decay, clipping, early stopping.

    Give ``epochs`` or ``steps``; ``steps`` wins when both are set. Validation runs every
    ``val_every`` optimizer steps (default: once per epoch) and at the last step. ``patience``
    stops training after that many validations without a new best validation NLL.
    ``threads`` sets torch's CPU threads for the run (default: torch's choice); small flows
    train fastest on one thread, and a resumed run must use the same number to match exactly.
    ``batch_size`` is the global batch: on N processes (torchrun) each takes ``batch_size / N``
    examples of it and the learning rate is not rescaled. ``workers`` DataLoader processes
    read and decode batches ahead of the training step (0: in the training process; results
    do not depend on it). ``precision: bf16`` runs the conditioner networks in bfloat16 while
    log-determinants, the base log-density and the loss stay float32.
    ``memory: invertible`` trains without storing activations (backward rebuilds them with
    each step's inverse; :func:`flowspec.compile` reads it too, so the compiled flow trains
    this way from Python). ``compile: true`` runs the training step, evaluation and sampling
    through ``torch.compile``, one compilation per distinct repeated block. ``passes`` lists
    the optimisation passes the flow is compiled with (default ``[kept_inputs]``; ``[]`` for
    none; read by :func:`flowspec.compile` too): they change how steps compute, never what.
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
    workers: Annotated[int, Field(ge=0)] = 0
    precision: Literal["float32", "bf16"] = "float32"
    memory: Literal["plain", "invertible"] = "plain"
    compile: bool = False
    passes: tuple[PassName, ...] | None = None

    @field_validator("min_lr")
    @classmethod
    def _min_lr_at_most_lr(cls, min_lr: float, info: ValidationInfo) -> float:
        lr = info.data.get("lr")
        if lr is not None and min_lr > lr:
            raise ValueError(
                f"min_lr {min_lr:g} is above lr {lr:g}: the cosine schedule decays from lr "
                "down to min_lr"
            )
        return min_lr


def override_train(
    base: TrainSpec | None,
    config: TrainSpec | None = None,
    changes: Mapping[str, Any] | None = None,
) -> TrainSpec:
    """The training settings of a run: ``base`` (a spec's ``train:`` section, or the defaults)
    with the fields that ``config`` sets explicitly, then ``changes``, written over it.

    Every field not named keeps its value from ``base``, so overriding ``steps`` keeps the spec's
    ``threads``, ``lr``, ... Setting ``epochs`` (and not ``steps``) clears the base's ``steps``,
    since ``steps`` would otherwise win.

    Raises:
        SpecError: an unknown field name (``unknown-key``) or a bad value (``bad-value``).

    Example:
        >>> spec_train = TrainSpec(epochs=16, lr=3e-3, threads=1)
        >>> run = override_train(spec_train, TrainSpec(steps=500), {"batch_size": 128})
        >>> run.steps, run.batch_size, run.lr, run.threads
        (500, 128, 0.003, 1)
        >>> override_train(TrainSpec(steps=500), changes={"epochs": 2}).steps is None
        True
    """
    values = (base or TrainSpec()).model_dump()
    given = {} if config is None else {k: getattr(config, k) for k in config.model_fields_set}
    given.update(changes or {})
    unknown = sorted(set(given) - set(TrainSpec.model_fields))
    if unknown:
        raise SpecError(
            Diagnostic(
                "unknown-key",
                f"unknown training setting(s) {', '.join(map(repr, unknown))}",
                "train",
                hint=f"settings: {', '.join(TrainSpec.model_fields)}",
            )
        )
    values.update(given)
    if "epochs" in given and "steps" not in given:
        values["steps"] = None
    try:
        return TrainSpec.model_validate(values)
    except ValidationError as exc:
        raise SpecError(
            [
                Diagnostic(
                    "bad-value",
                    f"{err['msg'].removeprefix('Value error, ')} (got {err['input']!r})",
                    "train." + ".".join(map(str, err["loc"])),
                )
                for err in exc.errors()
            ]
        ) from None
