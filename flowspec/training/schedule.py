"""Learning-rate schedules: a pure function of the step, so a resumed run needs no scheduler state.

The rate for optimizer step ``step`` (0-based) of ``total`` is a linear warm-up from
``lr / warmup_steps`` to ``lr`` over the first ``warmup_steps`` steps, then the chosen
schedule over the remaining steps: ``constant`` keeps ``lr``; ``cosine`` decays from ``lr`` to
``min_lr`` along half a cosine period.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from flowspec.spec.training import TrainSpec

__all__ = ["SCHEDULES", "learning_rate"]

Decay = Callable[[float, TrainSpec], float]


def _constant(progress: float, config: TrainSpec) -> float:
    return config.lr


def _cosine(progress: float, config: TrainSpec) -> float:
    return config.min_lr + 0.5 * (config.lr - config.min_lr) * (1.0 + math.cos(math.pi * progress))


SCHEDULES: dict[str, Decay] = {"constant": _constant, "cosine": _cosine}


def learning_rate(step: int, total: int, config: TrainSpec) -> float:
    """The learning rate of optimizer step ``step`` (0-based) in a run of ``total`` steps.

    Example:
        >>> from flowspec.spec.training import TrainSpec
        >>> cfg = TrainSpec(lr=1.0, warmup_steps=2, schedule="cosine")
        >>> [round(learning_rate(s, 6, cfg), 3) for s in range(6)]
        [0.5, 1.0, 1.0, 0.854, 0.5, 0.146]
    """
    warmup = config.warmup_steps
    if step < warmup:
        return config.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return SCHEDULES[config.schedule](min(progress, 1.0), config)
