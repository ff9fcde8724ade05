"""The ``flowspec`` command: a table of subcommands, one module each, each a
:class:`~flowspec.cli.common.Command`.

Exit status: 0 success, 1 a spec, graph, weights or data error (every diagnostic printed as
``file:line:col: path: message`` with its hint, no traceback unless ``--debug``), 2 a usage
error, 130 training interrupted (its state is saved and can be resumed), 141 stdout closed early.

Handlers import what they need when they run, so ``flowspec validate`` never imports torch.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from flowspec.cli import (
    check,
    compile,
    eval,
    export,
    graph,
    inspect,
    sample,
    schema,
    specs,
    train,
    validate,
)
from flowspec.cli.common import Command, UsageError, format_error, limit_assignment
from flowspec.errors import FlowspecError
from flowspec.spec.limits import raised
from flowspec.version import __version__

__all__ = ["COMMANDS", "EXIT_BROKEN_PIPE", "build_parser", "main"]

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a process killed by it

COMMANDS: dict[str, Command] = {
    module.COMMAND.name: module.COMMAND
    for module in (
        validate,
        graph,
        compile,
        check,
        train,
        eval,
        sample,
        inspect,
        export,
        specs,
        schema,
    )
}

EPILOG = """examples:
  flowspec specs                                  # the shipped specs
  flowspec validate specs/*.yaml
  flowspec train realnvp_moons                    # a shipped spec, by name
  flowspec eval runs/realnvp_moons/model.safetensors --json
  flowspec sample runs/realnvp_moons/model.safetensors -n 2000 -o samples.png

exit status: 0 ok, 1 spec/data/weights error, 2 usage error, 130 training interrupted.
'flowspec COMMAND --help' describes each command."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one subparser per entry of :data:`COMMANDS`."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    common.add_argument(
        "--limit",
        action="append",
        type=limit_assignment,
        default=[],
        metavar="NAME=N",
        help="raise a resource limit, e.g. --limit ops=1000000 (repeatable; docs/limits.md)",
    )
    parser = argparse.ArgumentParser(
        prog="flowspec",
        description="A declarative compiler for normalizing flows: YAML spec -> checked graph "
        "-> PyTorch module.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"flowspec {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for cmd in COMMANDS.values():
        sub = subparsers.add_parser(
            cmd.name,
            help=cmd.help,
            description=cmd.description,
            epilog=cmd.epilog,
            parents=[common],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        cmd.add_arguments(sub)
        sub.set_defaults(handler=cmd.run)
    return parser


def leave_without_teardown(status: int) -> None:
    """Exit now, skipping the interpreter's teardown: after a peer of a torchrun job died, the
    process group's transport threads abort the process (SIGABRT, "terminate called without an
    active exception") when they are destroyed, which would replace the documented status."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # Idle OpenMP threads sleep instead of spinning: on a shared or oversubscribed CPU spinning
    # makes every parallel region wait for descheduled threads (measured: 20-80x slower steps).
    # Read when torch loads, which handlers do lazily, after this line.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    args.argv = argv
    try:
        with raised(**dict(args.limit)):
            return args.handler(args)
    except FlowspecError as exc:
        if args.debug:
            traceback.print_exc()
        print(format_error(exc), file=sys.stderr)
        if "rank-lost" in exc.codes:
            leave_without_teardown(1)
        return 1
    except UsageError as exc:
        print(f"flowspec {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # stdout closed early (`flowspec inspect M | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except OSError as exc:  # unwritable output directory, disk full, ...
        if args.debug:
            traceback.print_exc()
        print(f"error[io]: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if args.debug:
            traceback.print_exc()
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
