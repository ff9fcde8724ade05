"""``flowspec eval``: a model's NLL (nats per example) and bits per dimension on data.

What is scored: a file given with ``--data FILE`` is scored whole (a held-out file means all of
it); a built-in set, or the data the model was trained on, is scored by split (``--split``,
default ``test``: the examples training never saw). ``--split`` with a file scores that split of
the file, carved as training carves it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from flowspec.cli.common import (
    Command,
    add_no_verify,
    column_list,
    nonfinite_error,
    positive_int,
    require_model,
)
from flowspec.errors import DataError, Diagnostic

__all__ = ["COMMAND", "training_info"]


def training_info(metadata: dict[str, str]) -> dict[str, Any]:
    """What a model file says about the run that wrote it (empty for an untrained model)."""
    info = metadata.get("training") or metadata.get("train_state")
    return json.loads(info) if info else {}


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="a model .safetensors")
    p.add_argument("--data", metavar="NAME|FILE", help="default: the data the model trained on")
    p.add_argument(
        "--split",
        choices=("train", "val", "test"),
        help="a split of a built-in set or of the training data (default test); "
        "a --data FILE is scored whole unless a split is given",
    )
    p.add_argument(
        "--context-columns",
        type=column_list,
        metavar="COLS",
        help="0-based columns of a table file that hold the context (default: as trained)",
    )
    p.add_argument("--batch-size", type=positive_int, default=2048, help="(2048)")
    p.add_argument(
        "--json", action="store_true", help="print one JSON object (nll, bits_per_dim, n)"
    )
    add_no_verify(p)


def _same_file(a: str, b: str | None) -> bool:
    try:
        return b is not None and Path(a).samefile(b)
    except OSError:
        return False


def _examples(args: argparse.Namespace, flow: Any, info: dict[str, Any]) -> tuple[Any, str, Any]:
    """The examples to score, a description of them, and their contexts (a conditional flow's;
    None otherwise)."""
    from flowspec.data import check_levels, is_builtin, load_examples_with_contexts, load_splits

    spec = flow.spec
    source = args.data or info.get("data") or (spec.data.name if spec.data else None)
    if not source:
        raise DataError(
            Diagnostic(
                "no-data",
                f"'{args.model}' does not say what data it models",
                hint="pass --data NAME|FILE",
            )
        )
    shape = tuple(flow.input_shape)
    size, crop = (spec.data.image_size(), spec.data.crop) if spec.data else (None, "none")
    columns = args.context_columns or info.get("context_columns")
    if columns is None and spec.data is not None and source == spec.data.name:
        columns = spec.data.context_columns
    wanted = spec.context if flow.conditional else None
    if args.data and args.split is None and not is_builtin(source):
        x, known, context = load_examples_with_contexts(
            source, shape, size, crop, context=wanted, context_columns=columns
        )
        if _same_file(source, info.get("data")):
            print(
                f"note: {source} is the file this model was trained on, scored whole; "
                "--split test scores only its held-out part",
                file=sys.stderr,
            )
        what = f"all {len(x)} examples of {source}"
    else:
        split = args.split or "test"
        seed = info.get("data_seed", spec.data.seed if spec.data else 0)
        splits = load_splits(
            source,
            shape,
            seed=seed,
            size=size,
            crop=crop,
            context=wanted,
            context_columns=columns,
        )
        x, known = getattr(splits, split), splits.discrete_levels
        context = splits.context_of(split) if flow.conditional else None
        what = f"the {split} split of {source} ({len(x)} examples)"
    check_levels([x], flow.discrete_levels, f"data {source!r}", known)
    if flow.conditional:
        what += " given their contexts"
    return x, what, context


def _run(args: argparse.Namespace) -> int:
    require_model(args.model)
    from flowspec.io import flow_from_file, read_weights
    from flowspec.training.evaluate import evaluate

    weights = read_weights(args.model, verify=not args.no_verify)
    flow = flow_from_file(weights)
    x, what, context = _examples(args, flow, training_info(weights.metadata))
    score = evaluate(flow, x, batch_size=args.batch_size, context=context)
    if not math.isfinite(score.nll):
        raise _nonfinite(flow, x, score.nll, args.batch_size, context)
    if args.json:
        print(json.dumps(score.as_dict()))
    else:
        print(
            f"NLL {score.nll:.4f} nats per example, {score.bits_per_dim:.4f} bits/dim, over {what}"
        )
    return 0


def _nonfinite(flow: Any, data: Any, nll: float, batch_size: int, context: Any = None) -> Exception:
    """The error for a non-finite NLL: the first layer whose output is not finite on the first
    batch that gives one."""
    import torch

    from flowspec.training.evaluate import context_tensor, flow_dtype, to_batch

    layer, dtype, c = None, flow_dtype(flow), context_tensor(context)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the same noise as the evaluation
        for start in range(0, len(data), batch_size):  # read batch by batch (data on disk)
            batch = to_batch(data[start : start + batch_size], dtype)
            cb = None if c is None else c[start : start + batch_size]
            if not bool(torch.isfinite(flow.log_prob(batch, cb)).all()):
                layer = flow.first_nonfinite(batch, cb)
                break
    return nonfinite_error(
        f"the NLL is {nll} (not a number eval can report)",
        layer,
        flow,
        "forward",
        "the weights produce NaN or Inf on this data: check the data's range against the "
        "model's preprocessing, and the model with 'flowspec check MODEL'",
    )


COMMAND = Command(
    "eval",
    "NLL (nats/example) and bits/dim on a split or a file",
    "Score a model: mean negative log-likelihood in nats per example and in bits per "
    "dimension. A --data FILE is scored whole; a built-in set or the training data by split "
    "(default test).",
    """examples:
  flowspec eval runs/realnvp_moons/model.safetensors
  flowspec eval runs/realnvp_moons/model.safetensors --json
  flowspec eval model.safetensors --data held_out.npy          # every example of the file
  flowspec eval model.safetensors --data points.npy --split val""",
    _arguments,
    _run,
)
