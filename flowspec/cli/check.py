"""``flowspec check``: compare a spec or model with the numerical oracles in float64 (round trips,
log-determinant against the autograd Jacobian)."""

from __future__ import annotations

import argparse
from typing import Any

from flowspec.cli.common import (
    Command,
    add_no_verify,
    positive_float,
    positive_int,
    read_spec,
    require_model,
    table,
)

__all__ = ["COMMAND"]


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", metavar="SPEC|MODEL", help="a spec (.yaml) or a model .safetensors")
    p.add_argument("-n", "--examples", type=positive_int, default=4, help="random inputs (4)")
    p.add_argument("--seed", type=int, default=0, help="seed of the inputs and perturbation")
    p.add_argument(
        "--scale", type=positive_float, default=0.05, help="weight perturbation of a spec (0.05)"
    )
    add_no_verify(p)


def _run(args: argparse.Namespace) -> int:
    is_model = args.target.endswith(".safetensors")
    source = require_model(args.target) if is_model else read_spec(args.target)  # torch-free
    import torch

    import flowspec
    from flowspec.nn.oracles import (
        example_context,
        example_inputs,
        perturb_parameters,
        run_oracles,
    )

    if is_model:
        from flowspec.cli.eval import training_info
        from flowspec.io import flow_from_file, read_weights

        weights = read_weights(source, verify=not args.no_verify)
        flow, info = flow_from_file(weights), training_info(weights.metadata)
        what = (
            f"saved weights trained for {info['step']} steps"
            if info.get("step")
            else "saved weights, untrained (as compiled)"
        )
    else:
        flow = flowspec.compile(source).double()
        with torch.no_grad():  # data-dependent init first, then move off the identity
            gen = torch.Generator().manual_seed(args.seed)
            flow(example_inputs(flow, 64, gen), example_context(flow, 64, gen))
        perturb_parameters(flow, scale=args.scale, seed=args.seed)
        what = f"fresh weights perturbed by {args.scale} x N(0, 1)"
    results = run_oracles(flow, n=args.examples, seed=args.seed)
    contexts = ", random contexts" if flow.conditional else ""
    print(f"{args.target}: {args.examples} random inputs{contexts}, float64, {what}")
    rows: list[tuple[Any, ...]] = [("check", "max error", "tolerance", "result")]
    rows += [
        (r.name, f"{r.error:.3g}", f"{r.tolerance:.3g}", "ok" if r.ok else "FAIL") for r in results
    ]
    print(table(rows))
    return 0 if all(r.ok for r in results) else 1


COMMAND = Command(
    "check",
    "numerical round-trip and log-det checks",
    "Check x -> z -> x and z -> x -> z round trips and the log-determinant against "
    "the autograd Jacobian, in float64 on random inputs; for a flow that starts with "
    "dequantize, also that integer data comes back exactly. A NaN or infinite error fails.",
    """examples:
  flowspec check specs/realnvp_moons.yaml
  flowspec check runs/realnvp_moons/model.safetensors -n 8

exit status: 0 every check passes, 1 a check fails (or the file is invalid).""",
    _arguments,
    _run,
)
