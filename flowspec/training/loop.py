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

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flowspec.data import Splits
from flowspec.nn.flow import Flow
from flowspec.spec.training import DataSpec, TrainSpec
from flowspec.training.batches import describe
from flowspec.training.budget import check_memory
from flowspec.training.distributed import Ranks, collective_failure
from flowspec.training.evaluate import reports_bits
from flowspec.training.precision import check_precision
from flowspec.training.reporting import Callback, Reporters, reporters
from flowspec.training.run import Run
from flowspec.training.setup import (
    RUN_FILES,
    SigintFlag,
    prepare_out_dir,
    remove_stale_temps,
    resolve_flow,
    resolve_splits,
    torch_threads,
)
from flowspec.training.sync import synchronised_statistics

__all__ = ["TrainResult", "train"]

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
            run = Run(flow, splits, config, out, ranks, Reporters())
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
    run: Run,
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
