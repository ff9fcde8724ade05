"""A one-line training progress display (no tqdm): live on a terminal, quiet in logs.

On a terminal the line is redrawn in place (carriage return) at most ``refresh`` times a second
with the step, the running loss and the learning rate. Each validation prints a permanent line;
when the stream is not a terminal only those lines are written, so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

__all__ = ["Progress"]


class Progress:
    """Progress reporter for :func:`flowspec.train`.

    Arguments:
        stream: where to write (default ``sys.stderr``).
        live: redraw a live line; default: only when ``stream`` is a terminal.
        quiet: write nothing at all.
        refresh: live redraws per second at most.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        live: bool | None = None,
        quiet: bool = False,
        refresh: float = 8.0,
    ) -> None:
        self.stream = stream or sys.stderr
        self.live = (not quiet) and (self.stream.isatty() if live is None else live)
        self.quiet = quiet
        self.interval = 1.0 / refresh
        self._last = 0.0
        self._width = 0

    def step(self, step: int, total: int, epoch: int, loss: float, lr: float) -> None:
        """Called after every optimizer step."""
        now = time.monotonic()
        if not self.live or (now - self._last < self.interval and step != total):
            return
        self._last = now
        pct = 100.0 * step / max(total, 1)
        self._draw(
            f"epoch {epoch + 1}  step {step}/{total} ({pct:3.0f}%)  loss {loss:.4f}  lr {lr:.2e}"
        )

    def record(self, row: dict[str, Any], best: bool) -> None:
        """Called after every validation with the metrics row just logged."""
        if self.quiet:
            return
        text = (
            f"epoch {row['epoch']:>6}  step {row['step']:>7}  train {row['train_nll']:.4f}  "
            f"val {row['val_nll']:.4f}"
        )
        if row.get("bits_per_dim") is not None:
            text += f" ({row['bits_per_dim']:.4f} bits/dim)"
        text += f"  lr {row['lr']:.2e}  {row['seconds']:.0f} s" + ("  *best" if best else "")
        self._clear()
        print(text, file=self.stream, flush=True)

    def message(self, text: str) -> None:
        """A permanent line (start, resume, stop)."""
        if not self.quiet:
            self._clear()
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        self._clear()

    def _draw(self, text: str) -> None:
        pad = max(0, self._width - len(text))
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._width = len(text)

    def _clear(self) -> None:
        if self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0
