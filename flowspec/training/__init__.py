"""Training and scoring: the maximum-likelihood loop, resumable checkpoints, learning-rate
schedules, progress display, evaluation and the figures of a run.

``flowspec.train`` is :func:`flowspec.training.loop.train`.
"""

from flowspec.training.loop import TrainResult, train

__all__ = ["TrainResult", "train"]
