"""One training run's state and its loop: the optimizer, the batches, checkpoints and
validation; :func:`flowspec.training.loop.train` sets it up and reports.

:class:`Run` owns everything that changes while training: the flow's weights (through the
optimizer), the :class:`~flowspec.training.checkpoint.TrainState` (step, epoch, history, best
score), the shuffling generator and the best weights. ``run()`` takes optimizer steps until the
budget, early stopping, a Ctrl-C agreed by every process or ``stop_after``; each validation
writes ``metrics.jsonl``, ``model.safetensors`` when the score improved and
``last.safetensors``, all atomically and only on rank 0.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from flowspec.data import Splits
from flowspec.io import read_weights, save, write_atomic
from flowspec.nn.flow import Flow
from flowspec.spec.training import TrainSpec
from flowspec.training.batches import BatchPlan, TrainBatches
from flowspec.training.checkpoint import TrainState, model_metadata, save_checkpoint
from flowspec.training.distributed import Ranks, rank_seed, wrap
from flowspec.training.divergence import diverged, first_bad_chunk, first_bad_gradient
from flowspec.training.evaluate import (
    Score,
    context_tensor,
    evaluate,
    flow_dtype,
    reports_bits,
)
from flowspec.training.precision import networks_autocast
from flowspec.training.resume import check_world, require_reachable, resume_from
from flowspec.training.schedule import learning_rate
from flowspec.training.setup import SigintFlag
from flowspec.training.sync import global_data_init

__all__ = ["INIT_BATCH", "Run", "adam"]

INIT_BATCH = 512  # examples of the data-dependent initialisation (actnorm)


def adam(flow: Flow, config: TrainSpec) -> torch.optim.Optimizer:
    """Adam, with its fused kernel where this torch has one for the device (one pass over all
    parameters instead of a dozen operations per tensor: a quarter of a small flow's step)."""
    try:
        return torch.optim.Adam(
            flow.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True
        )
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(flow.parameters(), lr=config.lr, weight_decay=config.weight_decay)


class Run:
    """One training run: the flow, its optimizer, the data and the loop's state."""

    def __init__(
        self,
        flow: Flow,
        splits: Splits,
        config: TrainSpec,
        out_dir: Path | None,
        ranks: Ranks,
        progress: Any,
    ) -> None:
        self.flow, self.config, self.out_dir, self.progress = flow, config, out_dir, progress
        self.ranks, self.device, self.dtype = ranks, ranks.device, flow_dtype(flow)
        self.train_x, self.val_x = splits.train, splits.val  # read batch by batch
        conditional = flow.conditional  # contexts are small: kept in memory as tensors
        self.train_c = context_tensor(splits.context_of("train")) if conditional else None
        self.val_c = context_tensor(splits.context_of("val")) if conditional else None
        self.bits = reports_bits(flow, splits.discrete_levels)
        self.batch = min(config.batch_size, len(self.train_x))
        check_world(self.batch, ranks.world)
        self.per_epoch = len(self.train_x) // self.batch
        self.total = config.steps or (config.epochs or 1) * self.per_epoch
        self.val_every = min(config.val_every or self.per_epoch, self.total)
        self.plan = BatchPlan(self.batch, self.per_epoch, ranks.rank, ranks.world)
        self.batches = TrainBatches(
            self.train_x,
            self.plan,
            config.workers,
            pin=self.device.type == "cuda",
            contexts=self.train_c,
        )
        self.model = wrap(flow, ranks)  # log p(x); DDP around it on many processes
        self.optimizer = adam(flow, config)
        self.generator = torch.Generator()
        self.state = TrainState(
            config=config.model_dump(mode="json"),
            data=splits.name,
            data_sha256=splits.digest(with_contexts=conditional),
            context_columns=list(splits.context_columns) if splits.context_columns else None,
        )
        self.state.world_size = ranks.world
        self.shuffle_state = torch.Generator().manual_seed(config.seed).get_state()
        self.best: dict[str, torch.Tensor] | None = None
        self.saved_step = 0
        self.started = time.monotonic()

    # ------------------------------------------------------------------ files
    def path(self, name: str) -> Path | None:
        """Where ``name`` is written: only rank 0 writes, and nothing without ``out_dir``."""
        return None if self.out_dir is None or not self.ranks.is_main else self.out_dir / name

    def checkpoint(self) -> None:
        if self.out_dir is None:
            return
        seconds, self.started = self.elapsed(), time.monotonic()
        self.state.seconds = seconds
        others = self.ranks.rng_states()  # collective: every rank takes part
        path = self.path("last.safetensors")
        if path is not None:
            save_checkpoint(path, self.flow, self.optimizer, self.state, self.shuffle_state, others)
        self.saved_step = self.state.step

    def write_metrics(self) -> None:
        path = self.path("metrics.jsonl")
        if path is not None:
            text = "".join(json.dumps(row) + "\n" for row in self.state.history)
            write_atomic(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))

    def elapsed(self) -> float:
        return self.state.seconds + time.monotonic() - self.started

    # ------------------------------------------------------------------ start / resume
    def start(self, data_seed: int) -> None:
        torch.manual_seed(rank_seed(self.config.seed, self.ranks.rank))
        self.state.data_seed = data_seed
        global_data_init(self.flow, self.train_x, self.ranks, INIT_BATCH, self.train_c)
        self.checkpoint()
        self.write_metrics()

    def resume(self) -> None:
        path = None if self.out_dir is None else self.out_dir / "last.safetensors"
        self.state, self.shuffle_state = resume_from(
            path, self.flow, self.optimizer, self.state, self.ranks.rank, self.config.seed
        )
        require_reachable(self.state, self.total, path)  # type: ignore[arg-type]
        self.state.world_size = self.ranks.world
        self.saved_step = self.state.step
        best = None if self.out_dir is None else self.out_dir / "model.safetensors"
        if best is not None and best.is_file():
            self.best = read_weights(best).state
        self.write_metrics()  # drop rows written after the checkpoint, if any

    # ------------------------------------------------------------------ the loop
    def run(self, stop_after: int | None, sigint: SigintFlag) -> str:
        s, n = self.state, len(self.train_x)
        self.generator.set_state(self.shuffle_state)  # replay this epoch's order
        perm = torch.randperm(n, generator=self.generator)
        while s.step < self.total:
            if s.batch_in_epoch >= self.per_epoch:
                s.epoch, s.batch_in_epoch = s.epoch + 1, 0
                self.shuffle_state = self.generator.get_state()
                perm = torch.randperm(n, generator=self.generator)
            for batch, context in self.batches.epoch(perm, s.batch_in_epoch):
                if context is not None:
                    context = context.to(self.device, non_blocking=True)
                self.step(batch.to(self.device, non_blocking=True), context)
                if s.step % self.val_every == 0 or s.step == self.total:
                    if self.validate():
                        return "early_stopped"
                interrupted = self.ranks.any(sigint.raised)  # every process stops together
                if interrupted or s.step == stop_after:
                    self.checkpoint()
                    return "interrupted" if interrupted else "stopped"
                if s.step >= self.total:
                    break
        return "completed"

    def step(self, batch: torch.Tensor, context: torch.Tensor | None = None) -> None:
        s = self.state
        lr = learning_rate(s.step, self.total, self.config)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if batch.is_floating_point():
            batch = batch.to(self.dtype)
        with networks_autocast(self.flow, self.config.precision):
            loss = -self.model(batch, context).mean()
        value = self.ranks.mean(loss)  # the global batch's loss, before any process goes on
        if not math.isfinite(value):
            elsewhere = bool(torch.isfinite(loss))
            raise self.diverged(batch, value, elsewhere=elsewhere, context=context)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.flow.parameters(), self.config.clip_grad_norm)
        bad = first_bad_gradient(self.flow)
        if bad is not None:
            raise self.diverged(batch, value, gradient_of=bad, context=context)
        self.optimizer.step()
        s.step, s.batch_in_epoch = s.step + 1, s.batch_in_epoch + 1
        s.loss_sum, s.loss_count = s.loss_sum + value, s.loss_count + 1
        self.progress.step(s.step, self.total, s.epoch, value, lr)

    def diverged(
        self,
        batch: torch.Tensor,
        loss: float,
        gradient_of: str | None = None,
        phase: str = "",
        elsewhere: bool = False,
        context: torch.Tensor | None = None,
    ) -> Any:
        """The non-finite error; every process probes its own batch (in step: batchnorm may
        synchronise statistics while probing)."""
        last = None if self.out_dir is None else self.out_dir / "last.safetensors"
        return diverged(
            self.flow,
            batch,
            self.state,
            loss,
            last,
            self.saved_step,
            gradient_of,
            phase,
            elsewhere,
            context,
        )

    def check_validation(self, nll: float, val: Any, context: Any = None) -> None:
        """A non-finite validation NLL stops the run like a non-finite training loss."""
        if not math.isfinite(nll):
            with torch.no_grad():
                self.flow.eval()
                x, c = first_bad_chunk(self.flow, val, self.dtype, self.device, context=context)
                error = self.diverged(x, nll, phase="validation", context=c)
                self.flow.train()
            raise error

    def validate(self) -> bool:
        """Score the validation split, log, keep the best; True when patience has run out."""
        s = self.state
        val, seed = self.ranks.share_rows(self.val_x, self.config.seed)  # all, on one process
        val_c = None if self.val_c is None else self.ranks.share_rows(self.val_c, seed)[0]
        local = evaluate(self.flow, val, seed=seed, context=val_c)
        nll = self.ranks.weighted_mean(local.nll, local.n)
        self.check_validation(nll, val, val_c)
        score = Score(nll, nll / (self.flow.dim * math.log(2.0)), len(self.val_x))
        epoch = s.step / self.per_epoch
        row = {
            "epoch": int(epoch) if epoch == int(epoch) else round(epoch, 3),
            "step": s.step,
            "train_nll": s.loss_sum / max(s.loss_count, 1),
            "val_nll": score.nll,
            "bits_per_dim": score.bits_per_dim,
            "lr": learning_rate(s.step - 1, self.total, self.config),
            "seconds": round(self.elapsed(), 3),
        }
        s.history.append(row)
        s.loss_sum, s.loss_count = 0.0, 0
        improved = s.best_val is None or score.nll < s.best_val
        if improved:
            s.best_val, s.best_step, s.bad_evals = score.nll, s.step, 0
            self.best = {k: v.detach().clone() for k, v in self.flow.state_dict().items()}
            best = self.path("model.safetensors")
            if best is not None:
                save(self.flow, best, extra_metadata=model_metadata(s, row))
        else:
            s.bad_evals += 1
        self.write_metrics()
        self.checkpoint()
        self.progress.record(row, improved)
        return self.config.patience is not None and s.bad_evals >= self.config.patience
