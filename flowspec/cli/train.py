"""The ``train`` subcommand: flags over the spec's ``train:`` / ``data:`` defaults."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import Any

from flowspec.cli.common import (
    Command,
    UsageError,
    column_list,
    positive_float,
    positive_int,
    read_spec,
)

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
    "workers": "workers",
    "precision": "precision",
    "memory": "memory",
    "compile": "compile",
    "passes": "passes",
}
EXIT_INTERRUPTED = 130


def _count(text: str) -> int:
    """argparse type: an integer >= 0."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected 0 or a positive integer, got {text!r}")
    return int(text)


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC", help="spec file (.yaml)")
    p.add_argument("--data", metavar="NAME|FILE", help="built-in data set or .npy/.npz/.csv file")
    p.add_argument(
        "--context-columns",
        type=column_list,
        metavar="COLS",
        help="0-based columns of a table file that hold the context (e.g. 2 or 0,3)",
    )
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
        "--memory",
        choices=("plain", "invertible"),
        help="invertible: keep no activations, rebuild them in backward (train.memory)",
    )
    p.add_argument(
        "--compile",
        action="store_const",
        const=True,
        help="torch.compile each distinct repeated block once (train.compile)",
    )
    p.add_argument(
        "--passes",
        type=pass_list,
        metavar="NAMES",
        help="optimisation passes, comma-separated, or 'none' (train.passes)",
    )
    p.add_argument(
        "--stop-after",
        type=positive_int,
        metavar="STEP",
        help="stop after global step STEP, resumable, as if interrupted",
    )
    p.add_argument(
        "--workers",
        type=_count,
        metavar="N",
        help="DataLoader processes that read batches ahead (0: inline)",
    )
    p.add_argument(
        "--precision", choices=("float32", "bf16"), help="bf16: conditioner networks in bfloat16"
    )
    p.add_argument(
        "--nproc",
        type=positive_int,
        metavar="N",
        help="train on N processes: runs this command under torchrun (one machine)",
    )
    p.add_argument("--no-figures", action="store_true", help="skip the .png figures")
    p.add_argument(
        "--tensorboard",
        action="store_true",
        help="also log to DIR/tensorboard (needs the tensorboard package)",
    )
    p.add_argument("--quiet", action="store_true", help="print only the final summary")


def pass_list(text: str) -> tuple[str, ...]:
    """argparse type: ``none`` or comma-separated pass names."""
    from flowspec.spec.passes import PASS_SUMMARIES

    names = () if text == "none" else tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in PASS_SUMMARIES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown pass {unknown[0]!r}; known: {', '.join(PASS_SUMMARIES)} (or none)"
        )
    return names


def _config(args: argparse.Namespace, spec: Any) -> Any:
    from flowspec.errors import SpecError
    from flowspec.spec.limits import limit
    from flowspec.spec.training import override_train

    for name in ("threads", "workers"):
        value = getattr(args, name)
        if value is not None and value > limit(name):
            raise UsageError(
                f"--{name} {value:,} is above the {name} limit ({limit(name)}); "
                f"raise it with --limit {name}={value} if you mean it"
            )
    changes = {f: getattr(args, d) for d, f in OVERRIDES.items() if getattr(args, d) is not None}
    try:
        return override_train(spec.train, changes=changes)
    except SpecError as exc:  # a flag that contradicts the spec (--lr below min_lr)
        problems = "; ".join(d.message for d in exc.diagnostics)
        raise UsageError(f"the flags and the spec's train: section disagree: {problems}") from None


def _data(args: argparse.Namespace, spec: Any) -> Any:
    """``--data`` as given, or with ``--context-columns`` a ``DataSpec`` carrying both."""
    if args.context_columns is None:
        return args.data
    from flowspec.spec.training import DataSpec

    base = spec.data or DataSpec()
    return base.model_copy(
        update={"name": args.data or base.name, "context_columns": args.context_columns}
    )


def _resume_command(argv: list[str], launcher: list[str] | None = None) -> str:
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
    return shlex.join([*(launcher or ["flowspec"]), *kept])


NPROC_ENV = "FLOWSPEC_NPROC"  # set for the processes that ``--nproc`` starts


def _without_nproc(argv: list[str]) -> list[str]:
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            kept.append(arg)
    return kept


def _torchrun(args: argparse.Namespace) -> int:
    """``--nproc N``: replace this process by torchrun running the same command N times on
    this machine (torchrun's own ``--standalone`` rendezvous on a free port)."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={args.nproc}",
        "-m",
        "flowspec",
        *_without_nproc(args.argv),
    ]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, command, {**os.environ, NPROC_ENV: str(args.nproc)})
    return 0  # pragma: no cover - execve does not return


def _continue_command(argv: list[str], world: int) -> str:
    """The command that resumes this run, launched the way this one was."""
    if os.environ.get(NPROC_ENV):
        return _resume_command([*argv, "--nproc", os.environ[NPROC_ENV]])
    if world == 1:
        return _resume_command(argv)
    return _resume_command(argv, ["torchrun", f"--nproc-per-node={world}", "-m", "flowspec"])


def _train(args: argparse.Namespace) -> int:
    spec = read_spec(args.spec)
    config = _config(args, spec)
    launched = "WORLD_SIZE" in os.environ  # torchrun started this process
    if args.nproc is not None and args.nproc > 1 and not launched:
        return _torchrun(args)
    from flowspec.errors import FlowspecError
    from flowspec.training import train  # torch: only once the spec is known to be valid
    from flowspec.training.distributed import launched as place
    from flowspec.training.progress import Progress

    if args.resume and args.overwrite:
        raise UsageError("--resume continues the run in --out and --overwrite replaces it")
    rank, world, _ = place()
    out = args.out or f"runs/{spec.name}"
    progress = Progress(quiet=args.quiet or rank != 0)
    try:
        result = train(
            spec,
            data=_data(args, spec),
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
    except FlowspecError as exc:
        if rank == 0:
            raise
        tag = f"[rank {rank}] "  # every process reports; rank 0's message comes untagged
        print(tag + exc.format().replace("\n", "\n" + tag), file=sys.stderr)
        return 1
    if rank != 0:
        return EXIT_INTERRUPTED if result.status == "interrupted" else 0
    if result.status in ("interrupted", "stopped"):
        how = "interrupted" if result.status == "interrupted" else "stopped as asked"
        again = _continue_command(args.argv, world)
        print(
            f"{how} at step {result.step} of {result.total_steps}; state saved in "
            f"{out}/last.safetensors\ncontinue with: {again}",
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
  flowspec train specs/glow_digits.yaml --nproc 2          # 2 processes (torchrun + DDP)
  torchrun --nproc-per-node 4 -m flowspec train specs/glow_cifar10.yaml --device cuda \\
      --data cifar-10-batches-bin --precision bf16 --workers 4
  flowspec train specs/conditional_moons.yaml             # the moon labels are the context
  flowspec train my_spec.yaml --data table.csv --context-columns 4

Defaults come from the spec's 'train:' and 'data:' sections; flags override them. A directory
that holds a run is refused unless --resume or --overwrite. A resumed run must use the same
settings (the checkpoint records them; --epochs, --steps and --patience may grow) and reaches
the same weights and metrics as an uninterrupted one. Ctrl-C saves last.safetensors and exits
with status 130.

outputs in DIR: model.safetensors (best validation), last.safetensors (resumable state),
metrics.jsonl, loss.png, samples.png, and for 2-D flows flow_steps.png and density.png.

Under torchrun each process trains on its share of every global batch (--batch-size is the
global batch; the learning rate is not rescaled) and rank 0 alone writes the files. --resume
also works with another number of processes. See docs/training.md."""

COMMAND = Command(
    "train",
    "train a flow by maximum likelihood",
    "Train with Adam (warm-up, cosine decay, clipping, early stopping), validating "
    "every epoch; checkpoints are resumable exactly.",
    EPILOG_TRAIN,
    _train_args,
    _train,
)
