"""The ``train`` subcommand: flags over the spec's ``train:`` / ``data:`` defaults."""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from flowspec.cli.common import Command, UsageError, positive_float, positive_int, read_spec

__all__ = ["COMMAND", "OVERRIDES"]

# flag dest -> TrainSpec field (``--epochs`` also clears ``steps``, see _config)
OVERRIDES = {
    "epochs": "epochs",
    "steps": "steps",
    "batch_size": "batch_size",
    "lr": "lr",
    "seed": "seed",
    "patience": "patience",
    "val_every": "val_every",
    "threads": "threads",
}
EXIT_INTERRUPTED = 130


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC", help="spec file (.yaml)")
    p.add_argument("--data", metavar="NAME|FILE", help="built-in data set or .npy/.csv file")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=positive_int, metavar="N", help="passes over the data")
    length.add_argument("--steps", type=positive_int, metavar="N", help="optimizer steps")
    p.add_argument("--batch-size", type=positive_int, metavar="B", help="examples per step")
    p.add_argument("--lr", type=positive_float, metavar="LR", help="peak learning rate")
    p.add_argument("--seed", type=int, metavar="S", help="seeds init, shuffling and noise")
    p.add_argument("--patience", type=positive_int, metavar="P", help="early-stopping patience")
    p.add_argument("--val-every", type=positive_int, metavar="N", help="steps between validations")
    p.add_argument("--out", metavar="DIR", help="run directory (default runs/<spec name>)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from DIR/last.safetensors (--epochs/--steps/--patience may grow)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a previous run in DIR")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="(cpu)")
    p.add_argument(
        "--threads",
        type=positive_int,
        metavar="N",
        help="torch CPU threads (1 is fastest for small flows)",
    )
    p.add_argument(
        "--stop-after",
        type=positive_int,
        metavar="STEP",
        help="stop after global step STEP, resumable, as if interrupted",
    )
    p.add_argument("--no-figures", action="store_true", help="skip the .png figures")
    p.add_argument(
        "--tensorboard",
        action="store_true",
        help="also log to DIR/tensorboard (needs the tensorboard package)",
    )
    p.add_argument("--quiet", action="store_true", help="print only the final summary")


def _config(args: argparse.Namespace, spec: Any) -> Any:
    from flowspec.errors import SpecError
    from flowspec.limits import limit
    from flowspec.spec.training import override_train

    if args.threads is not None and args.threads > limit("threads"):
        raise UsageError(
            f"--threads {args.threads:,} is above the threads limit ({limit('threads')}); "
            f"raise it with --limit threads={args.threads} if you mean it"
        )
    changes = {f: getattr(args, d) for d, f in OVERRIDES.items() if getattr(args, d) is not None}
    try:
        return override_train(spec.train, changes=changes)
    except SpecError as exc:  # a flag that contradicts the spec (--lr below min_lr)
        problems = "; ".join(d.message for d in exc.diagnostics)
        raise UsageError(f"the flags and the spec's train: section disagree: {problems}") from None


def _resume_command(argv: list[str]) -> str:
    """The command line that continues this run: the same flags, ``--resume``, no stop."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--stop-after":
            skip = True
        elif not arg.startswith("--stop-after="):
            kept.append(arg)
    if "--resume" not in kept:
        kept.append("--resume")
    return shlex.join(["flowspec", *kept])


def _train(args: argparse.Namespace) -> int:
    spec = read_spec(args.spec)
    config = _config(args, spec)
    from flowspec.training import train  # torch: only once the spec is known to be valid
    from flowspec.training.progress import Progress

    if args.resume and args.overwrite:
        raise UsageError("--resume continues the run in --out and --overwrite replaces it")
    out = args.out or f"runs/{spec.name}"
    progress = Progress(quiet=args.quiet)
    result = train(
        spec,
        data=args.data,
        config=config,
        out_dir=out,
        resume=args.resume,
        overwrite=args.overwrite,
        device=args.device,
        progress=progress,
        tensorboard=args.tensorboard,
        stop_after=args.stop_after,
        figures=not args.no_figures,
    )
    if result.status in ("interrupted", "stopped"):
        how = "interrupted" if result.status == "interrupted" else "stopped as asked"
        print(
            f"{how} at step {result.step} of {result.total_steps}; state saved in "
            f"{out}/last.safetensors\ncontinue with: {_resume_command(args.argv)}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED if result.status == "interrupted" else 0
    best = f"{result.best_val_nll:.4f}" if result.best_val_nll is not None else "n/a"
    print(
        f"{result.status} in {result.seconds:.1f} s: {result.step} steps, best val NLL {best} "
        f"nats at step {result.best_step}\nwrote "
        + ", ".join(p.name for p in result.files)
        + f" in {out}\ntest score: flowspec eval {out}/model.safetensors"
    )
    return 0


EPILOG_TRAIN = """examples:
  flowspec train specs/realnvp_moons.yaml
  flowspec train specs/realnvp_moons.yaml --steps 500 --lr 1e-3 --out runs/quick
  flowspec train specs/realnvp_moons.yaml --data circles --epochs 5 --batch-size 128
  flowspec train specs/realnvp_moons.yaml --resume        # after Ctrl-C
  flowspec train specs/realnvp_moons.yaml --resume --epochs 24   # extend a finished run
  flowspec train realnvp_moons --out runs/again --tensorboard    # a shipped spec by name

Defaults come from the spec's 'train:' and 'data:' sections; flags override them. A directory
that holds a run is refused unless --resume or --overwrite. A resumed run must use the same
settings (the checkpoint records them; --epochs, --steps and --patience may grow) and reaches
the same weights and metrics as an uninterrupted one. Ctrl-C saves last.safetensors and exits
with status 130.

outputs in DIR: model.safetensors (best validation), last.safetensors (resumable state),
metrics.jsonl, loss.png, samples.png, and for 2-D flows flow_steps.png and density.png."""

COMMAND = Command(
    "train",
    "train a flow by maximum likelihood",
    "Train with Adam (warm-up, cosine decay, clipping, early stopping), validating "
    "every epoch; checkpoints are resumable exactly.",
    EPILOG_TRAIN,
    _train_args,
    _train,
)
