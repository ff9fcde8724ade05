"""Maximum-likelihood training of a compiled flow, resumable bit for bit.

:func:`train` minimises the mean negative log-likelihood (notes eq. (29)) with Adam, an optional
linear warm-up and cosine decay (:mod:`flowspec.training.schedule`), gradient-norm clipping,
validation every epoch (or every ``val_every`` steps) and early stopping. Given ``config.seed`` a
run is deterministic: the global torch seed drives initialisation noise and dequantisation, a
separate seeded generator shuffles the data, and validation draws from its own stream.

Files in ``out_dir``: ``model.safetensors`` (best validation NLL), ``last.safetensors`` (the
latest state with optimizer and random states, see :mod:`flowspec.training.checkpoint`; written
at the start, after each validation and on interruption, always atomically), ``metrics.jsonl``
(one row per validation) and figures (:mod:`flowspec.training.figures`). ``resume=True``
continues from ``last.safetensors`` to the same weights and metrics as an uninterrupted run.

A SIGINT (Ctrl-C) is honoured between two optimizer steps: the state is saved and the result
says ``status="interrupted"``. A non-finite loss or gradient stops training with a
:class:`~flowspec.errors.TrainingError` naming the step and the first layer whose output was not
finite; ``last.safetensors`` keeps the last good state.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flowspec.data import Splits
from flowspec.io import read_weights, save, write_atomic
from flowspec.nn.flow import Flow
from flowspec.spec.training import DataSpec, TrainSpec
from flowspec.training.batches import BatchPlan, TrainBatches, describe
from flowspec.training.budget import check_memory
from flowspec.training.checkpoint import TrainState, model_metadata, save_checkpoint
from flowspec.training.distributed import Ranks, collective_failure, rank_seed, wrap
from flowspec.training.divergence import diverged, first_bad_chunk, first_bad_gradient
from flowspec.training.evaluate import (
    Score,
    context_tensor,
    evaluate,
    flow_dtype,
    reports_bits,
)
from flowspec.training.precision import check_precision, networks_autocast
from flowspec.training.reporting import Callback, Reporters, reporters
from flowspec.training.resume import check_world, require_reachable, resume_from
from flowspec.training.schedule import learning_rate
from flowspec.training.setup import (
    RUN_FILES,
    SigintFlag,
    prepare_out_dir,
    remove_stale_temps,
    resolve_flow,
    resolve_splits,
    torch_threads,
)
from flowspec.training.sync import global_data_init, synchronised_statistics

__all__ = ["TrainResult", "train"]

INIT_BATCH = 512
FIGURE_EXAMPLES = 2000  # test examples drawn beside the samples (2-D data)


@dataclass
class TrainResult:
    """What a run produced. ``flow`` holds the best-validation weights (the latest ones when
    the run was interrupted or stopped)."""

    flow: Flow
    status: str  # "completed", "early_stopped", "interrupted" or "stopped" (stop_after)
    step: int
    total_steps: int
    best_val_nll: float | None
    best_step: int
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)
    out_dir: Path | None = None
    files: list[Path] = field(default_factory=list)
    config: TrainSpec | None = None  # the settings the run used


def _adam(flow: Flow, config: TrainSpec) -> torch.optim.Optimizer:
    """Adam, with its fused kernel where this torch has one for the device (one pass over all
    parameters instead of a dozen operations per tensor: a quarter of a small flow's step)."""
    try:
        return torch.optim.Adam(
            flow.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True
        )
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(flow.parameters(), lr=config.lr, weight_decay=config.weight_decay)


class _Run:
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
        self.optimizer = _adam(flow, config)
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


def train(
    spec_or_flow: Any,
    data: str | DataSpec | Splits | None = None,
    config: TrainSpec | None = None,
    out_dir: str | Path | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    device: str = "cpu",
    progress: Any = None,
    callback: Callback | None = None,
    tensorboard: bool = False,
    stop_after: int | None = None,
    figures: bool = True,
    **overrides: Any,
) -> TrainResult:
    """Train a flow by maximum likelihood; settings are the spec's ``train:`` section with
    whatever is given here written over it.

    Arguments:
        spec_or_flow: a spec (path, YAML text, dict, ``FlowSpec``, shipped spec name) or a
            compiled ``Flow`` (trained in place).
        data: a data set name or file, a :class:`~flowspec.spec.training.DataSpec` (name, seed,
            context columns, image size), or ready :class:`~flowspec.data.Splits`; default the
            spec's ``data:``. A conditional flow trains on the data's contexts.
        config: a :class:`TrainSpec` whose explicitly set fields override the spec's ``train:``
            section (the others keep the spec's values, e.g. its ``threads``).
        out_dir: where checkpoints, metrics and figures go; None keeps everything in memory.
            A directory that already holds a run is refused unless ``resume`` or ``overwrite``.
        resume: continue from ``out_dir/last.safetensors`` (``steps``, ``epochs`` and
            ``patience`` may grow, to extend a finished run).
        overwrite: replace the run in ``out_dir``.
        device: ``cpu`` or ``cuda``.
        progress: a reporter such as :class:`flowspec.training.progress.Progress`; True prints
            progress, False nothing; None (default) prints it when stderr is a terminal. On a
            torchrun job only rank 0 reports unless a reporter is passed explicitly.
        callback: called after each validation with the metrics row (``epoch``, ``step``,
            ``train_nll``, ``val_nll``, ``bits_per_dim``, ``lr``, ``seconds``, ``best``); rank 0
            only.
        tensorboard: also write TensorBoard event files to ``out_dir/tensorboard`` (rank 0).
        stop_after: stop (resumably) after this global step, as if interrupted.
        figures: draw the figures at the end of the run.
        **overrides: single training settings (``steps=500, lr=1e-3``), written over the spec's
            and ``config``'s; ``epochs`` without ``steps`` clears the spec's ``steps``.

    Returns:
        A :class:`TrainResult`; its ``flow`` carries the best validation weights.

    Raises:
        DataError: unknown or mismatched data, or values a ``dequantize`` layer cannot model.
        TrainingError: a non-finite loss, a mismatched resume, an existing run, a device.
        FlowspecError: any other problem with the spec, the settings or files.

    Example:
        >>> result = train("specs/realnvp_moons.yaml", steps=5, batch_size=64, progress=False)
        >>> result.status, result.step, result.config.threads   # threads: 1 kept from the spec
        ('completed', 5, 1)
    """
    flow, spec, config = resolve_flow(spec_or_flow, config, overrides)
    flow.memory = config.memory
    data_spec = data if isinstance(data, DataSpec) else spec.data
    data_seed = data_spec.seed if data_spec is not None else 0
    splits = resolve_splits(data, flow, spec)
    ranks = Ranks.start(device)
    try:
        check_precision(config.precision, ranks.device)
        out = Path(out_dir) if out_dir else None
        if ranks.is_main:
            prepare_out_dir(out, resume, overwrite)
        flow.to(ranks.device).train()
        if ranks.is_main:
            remove_stale_temps(out)
        if ranks.is_main:
            report = (progress, callback, tensorboard)
        else:  # other processes stay quiet unless handed a reporter of their own
            report = (progress if progress not in (None, True) else False, None, False)
        with synchronised_statistics(flow, ranks):
            run = _Run(flow, splits, config, out, ranks, Reporters())
            try:
                status = _run(run, spec.name, splits, resume, stop_after, data_seed, report)
            finally:
                run.batches.close()
    except BaseException:
        ranks.close(peers_alive=False)
        raise
    ranks.close()
    if run.best is not None and status in ("completed", "early_stopped"):
        flow.load_state_dict(run.best)
    files = [p for p in map(run.path, RUN_FILES) if p is not None and p.exists()]
    drawn = figures and out is not None and ranks.is_main
    if drawn and status in ("completed", "early_stopped"):
        from flowspec.training.figures import write_run_figures

        test, context = splits.test, splits.context_of("test") if flow.conditional else None
        if not isinstance(test, np.ndarray):  # read from disk: a sample is enough to draw
            test = np.asarray(test[:FIGURE_EXAMPLES])
            context = None if context is None else context[:FIGURE_EXAMPLES]
        bits = reports_bits(flow, splits.discrete_levels)
        files += write_run_figures(
            flow, test, run.state.history, out, config.seed, bits=bits, context=context
        )
    s = run.state
    return TrainResult(
        flow,
        status,
        s.step,
        run.total,
        s.best_val,
        s.best_step,
        run.elapsed(),
        list(s.history),
        run.out_dir,
        files,
        config,
    )


def _run(
    run: _Run,
    name: str,
    splits: Splits,
    resume: bool,
    stop_after: int | None,
    data_seed: int,
    report: tuple[Any, Callback | None, bool],
) -> str:
    """Start or resume, then the loop; a collective that fails because another process of the
    job died becomes a ``rank-lost`` error naming the last checkpoint."""
    try:
        local_batch = run.batch // run.ranks.world
        estimate = check_memory(run.flow, run.flow.spec, local_batch, run.ranks.device)
        if resume:
            run.resume()
        else:
            run.start(data_seed)
        progress, callback, tensorboard = report
        run.progress = reporters(progress, callback, tensorboard, run.out_dir, run.state.step)
        flow, config = run.flow, run.config
        if config.compile:
            from flowspec.nn.regions import compile_regions

            compiled = compile_regions(flow)
            run.progress.message(
                f"compiling {compiled['bodies']} distinct block(s) for {compiled['regions']} "
                "repeated region(s) on first use (torch.compile)"
            )
        run.progress.message(
            f"{'resumed at step ' + str(run.state.step) if resume else 'training'} "
            f"'{name}' ({flow.num_parameters():,} parameters) on {splits.name}: "
            f"{len(splits.train)} train / {len(splits.val)} val examples, {run.total} steps "
            f"({run.per_epoch} per epoch, {describe(run.plan)}), lr {config.lr:g} "
            f"{config.schedule}" + ("" if config.precision == "float32" else ", bf16 networks")
        )
        if estimate is not None:
            run.progress.message(estimate)
        try:
            with SigintFlag() as sigint, torch_threads(config.threads):
                return run.run(stop_after, sigint)
        finally:
            run.progress.close()
    except RuntimeError as exc:
        if run.ranks.distributed and collective_failure(exc):
            last = None if run.out_dir is None else run.out_dir / "last.safetensors"
            where = f"{last} (step {run.saved_step})" if last is not None else None
            raise run.ranks.lost(exc, run.state.step, where) from exc
        raise
