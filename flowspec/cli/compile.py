"""``flowspec compile``: write an initialised model file and print its parameter counts."""

from __future__ import annotations

import argparse
from typing import Any

from flowspec.cli.common import Command, block_of, read_spec, table

__all__ = ["COMMAND", "parameter_rows"]


def parameter_rows(flow: Any) -> list[tuple[str, int]]:
    """Parameter count per top-level block (``levels.0``, ``layers.1``, ``base``)."""
    counts: dict[str, int] = {}
    for name, param in flow.named_parameters():
        counts[block_of(name)] = counts.get(block_of(name), 0) + param.numel()
    return list(counts.items())


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC", help="spec file (.yaml)")
    p.add_argument("-o", "--output", metavar="MODEL", required=True, help="the .safetensors file")
    p.add_argument("--seed", type=int, help="weight-initialisation seed (default: the spec's)")
    p.add_argument("--init-data", metavar="DATA", help="data set name or file for actnorm init")


def _run(args: argparse.Namespace) -> int:
    import flowspec
    from flowspec.data import check_levels, load_splits
    from flowspec.training.evaluate import context_tensor, to_batch
    from flowspec.training.setup import data_init

    spec = read_spec(args.spec)
    flow = flowspec.compile(spec, seed=args.seed)
    if args.init_data:
        seed = spec.data.seed if spec.data is not None else 0
        size, crop = (spec.data.image_size(), spec.data.crop) if spec.data else (None, "none")
        shape = tuple(flow.input_shape)
        columns = spec.data.context_columns if spec.data is not None else None
        splits = load_splits(
            args.init_data,
            shape,
            seed=seed,
            size=size,
            crop=crop,
            context=spec.context,
            context_columns=columns,
        )
        known = splits.discrete_levels
        check_levels([splits.train], flow.discrete_levels, f"data {args.init_data!r}", known)
        context = context_tensor(splits.context_of("train")) if flow.conditional else None
        done = data_init(
            flow, to_batch(splits.train[:512]), None if context is None else context[:512]
        )
        used = min(512, len(splits.train))
        print(
            f"data-dependent init on {used} examples of {args.init_data}"
            if done
            else "no op needs data-dependent init; --init-data skipped"
        )
    flowspec.save(flow, args.output)
    rows = parameter_rows(flow)
    print(f"wrote {args.output}")
    print(table([("block", "parameters"), *rows, ("total", flow.num_parameters())]))
    return 0


COMMAND = Command(
    "compile",
    "write an initialised model file",
    "Compile a spec to an initialised model (weights + embedded spec) and print "
    "its parameter counts.",
    """examples:
  flowspec compile specs/realnvp_moons.yaml -o model.safetensors
  flowspec compile specs/realnvp_moons.yaml -o model.safetensors --seed 1 --init-data moons""",
    _arguments,
    _run,
)
