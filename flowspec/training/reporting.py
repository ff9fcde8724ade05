"""Where a run reports what it does: the progress display, a per-validation callback and
TensorBoard, behind the one interface the loop calls.

A reporter has ``step(step, total, epoch, loss, lr)`` (after every optimizer step),
``record(row, best)`` (after every validation, with the ``metrics.jsonl`` row), ``message(text)``
and ``close()``. :func:`reporters` builds the set a run asked for; :class:`Reporters` calls each.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flowspec.errors import Diagnostic, FlowspecError
from flowspec.training.progress import Progress

__all__ = ["Callback", "Reporters", "TensorBoard", "reporters"]

Callback = Callable[[dict[str, Any]], Any]
TENSORBOARD_DIR = "tensorboard"


class Reporters:
    """Several reporters behind one: each call goes to every one of them, in order."""

    def __init__(self, *items: Any) -> None:
        self.items = [item for item in items if item is not None]

    def step(self, step: int, total: int, epoch: int, loss: float, lr: float) -> None:
        for item in self.items:
            item.step(step, total, epoch, loss, lr)

    def record(self, row: dict[str, Any], best: bool) -> None:
        for item in self.items:
            item.record(row, best)

    def message(self, text: str) -> None:
        for item in self.items:
            item.message(text)

    def close(self) -> None:
        for item in self.items:
            item.close()


class _CallbackReporter:
    """Calls ``callback(row)`` after each validation; ``row`` is the metrics row plus ``best``
    (whether the validation NLL improved)."""

    def __init__(self, callback: Callback) -> None:
        self.callback = callback

    def step(self, *args: Any) -> None: ...

    def record(self, row: dict[str, Any], best: bool) -> None:
        self.callback({**row, "best": best})

    def message(self, text: str) -> None: ...

    def close(self) -> None: ...


class TensorBoard:
    """TensorBoard event files in ``log_dir``: the training loss of every step (``train/loss``,
    ``train/lr``) and each validation row (``val/nll``, ``train/nll``, ``val/bits_per_dim``).

    ``purge_step`` (a resumed run's step) drops events a killed run wrote after its checkpoint,
    so the curves match the metrics. Needs the ``tensorboard`` package.
    """

    def __init__(self, log_dir: Path, purge_step: int | None = None) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise FlowspecError(
                Diagnostic(
                    "missing-extra",
                    "TensorBoard logging needs the tensorboard package, which is not installed",
                    hint="pip install 'flowspec[tensorboard]' (or: pip install tensorboard)",
                )
            ) from None
        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)

    def step(self, step: int, total: int, epoch: int, loss: float, lr: float) -> None:
        self.writer.add_scalar("train/loss", loss, step)
        self.writer.add_scalar("train/lr", lr, step)

    def record(self, row: dict[str, Any], best: bool) -> None:
        step = row["step"]
        self.writer.add_scalar("val/nll", row["val_nll"], step)
        self.writer.add_scalar("train/nll", row["train_nll"], step)
        if row.get("bits_per_dim") is not None:
            self.writer.add_scalar("val/bits_per_dim", row["bits_per_dim"], step)
        self.writer.flush()

    def message(self, text: str) -> None: ...

    def close(self) -> None:
        self.writer.close()


def reporters(
    progress: Any,
    callback: Callback | None,
    tensorboard: bool,
    out_dir: Path | None,
    start_step: int | None,
) -> Reporters:
    """The reporters of a run.

    ``progress``: a reporter object (e.g. :class:`Progress`), True (print progress), False (print
    nothing) or None (print when stderr is a terminal, as the ``flowspec`` command does).
    ``tensorboard`` writes event files to ``out_dir/tensorboard`` (an ``out_dir`` is needed).
    """
    if progress is None:
        progress = Progress() if sys.stderr.isatty() else None
    elif progress is True:
        progress = Progress()
    elif progress is False:
        progress = None
    board = None
    if tensorboard:
        if out_dir is None:
            raise ValueError("tensorboard=True needs an out_dir to write the event files to")
        board = TensorBoard(out_dir / TENSORBOARD_DIR, purge_step=start_step)
    return Reporters(progress, None if callback is None else _CallbackReporter(callback), board)
