"""One process of a distributed test job: ``python -m tests.training.ddp_driver JOB OUT DATA``.

The test starts it once per rank with torchrun's environment variables (``RANK``,
``WORLD_SIZE``, ...). It trains the float64 flow :data:`SPEC` on ``DATA`` with :data:`CONFIG`
(plus the JSON overrides in ``JOB``), and writes, per rank, the flow's final state
(``OUT/rank<r>.safetensors``), the actnorm parameters right after data-dependent init
(``OUT/init<r>.safetensors``) and one JSON line on stdout: status, step, error codes.

``JOB`` keys: ``stop_after``, ``resume`` (bool), ``poison_rank``/``poison_step`` (that rank's
batch turns NaN in a coupling after that step), ``conditional`` (bool: :data:`CONDITIONAL`, on
data with contexts), and any ``TrainSpec`` field.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

import flowspec
from flowspec.data import load_splits
from flowspec.errors import FlowspecError
from flowspec.nn.flow import Flow
from flowspec.spec.training import TrainSpec
from flowspec.training import loop, run
from flowspec.training.distributed import launched

RESNET = {"type": "resnet", "channels": 4, "blocks": 1, "norm": "batch"}
# Every op with batch statistics or data-dependent init, conditioner batchnorm included.
SPEC: dict[str, Any] = {
    "flowspec": 1,
    "name": "ddp_case",
    "input": {"shape": [1, 4, 4]},
    "layers": [
        {"type": "actnorm"},
        {"type": "affine_coupling", "mask": "checkerboard", "net_input": "masked", "net": RESNET},
        {"type": "batchnorm"},
        {"type": "squeeze"},
        {"type": "actnorm"},
        {"type": "invconv", "lu": True},
        {
            "type": "affine_coupling",
            "mask": "channel",
            "net_input": "half",
            "net": {"type": "glow_conv", "channels": 8},
        },
        {"type": "split", "prior": "learned"},
        {"type": "actnorm"},
    ],
}
# The same flow conditioned on a normalised vector (its statistics come from the global first
# batch, like actnorm's), with a conditional base.
CONDITIONAL: dict[str, Any] = {
    **SPEC,
    "name": "ddp_conditional",
    "context": {"shape": [2], "normalize": True},
    "base": {"type": "conditional_normal", "hidden": [8]},
}
CONFIG = TrainSpec(steps=12, batch_size=32, lr=5e-3, warmup_steps=2, val_every=6, seed=4)
INIT_EXAMPLES = 512


def float64_flow(config: TrainSpec, conditional: bool = False) -> Flow:
    return flowspec.compile(CONDITIONAL if conditional else SPEC, seed=config.seed).double()


def actnorm_state(flow: Flow) -> dict[str, torch.Tensor]:
    return {
        name: value.detach().clone().contiguous()
        for name, value in flow.state_dict().items()
        if name.endswith(("log_scale", "bias")) and "actnorm" in _kind(flow, name)
    }


def _kind(flow: Flow, name: str) -> str:
    kinds = {step.name: step.kind for step in flow.steps}
    return kinds.get(name.rsplit(".", 1)[0], "")


def main(job_text: str, out: str, data: str) -> int:
    job = json.loads(job_text)
    rank, _, _ = launched()
    settings = {k: v for k, v in job.items() if k in TrainSpec.model_fields}
    config = CONFIG.model_copy(update=settings)
    flow = float64_flow(config, job.get("conditional", False))
    folder = Path(out)
    init = run.global_data_init

    def record_init(*args: Any) -> bool:  # the actnorm parameters right after init
        done = init(*args)
        save_file(actnorm_state(flow), str(folder / f"init{rank}.safetensors"))
        return done

    run.global_data_init = record_init  # type: ignore[assignment]
    progress = _Poison(flow, job["poison_step"]) if job.get("poison_rank") == rank else None
    splits = load_splits(data, (1, 4, 4), context=flow.spec.context)
    report: dict[str, Any] = {"rank": rank}
    try:
        result = loop.train(
            flow,
            data=splits,
            config=config,
            out_dir=folder / "run",
            resume=job.get("resume", False),
            stop_after=job.get("stop_after"),
            progress=progress,
            figures=False,
        )
        report.update(status=result.status, step=result.step)
    except FlowspecError as exc:
        report.update(status="error", codes=exc.codes, message=str(exc))
    state = {k: v.detach().contiguous() for k, v in flow.state_dict().items()}
    save_file(state, str(folder / f"rank{rank}.safetensors"))
    print(json.dumps(report), flush=True)
    return 0 if report["status"] != "error" else 1


class _Poison:
    """A progress reporter that, after optimizer step ``after``, makes this rank's second
    coupling output NaN (so its batch alone has a non-finite loss)."""

    def __init__(self, flow: Flow, after: int) -> None:
        self.after, self.on = after, False
        layer = flow.get_submodule("layers.6")
        forward = layer.forward

        def poisoned(x: torch.Tensor, context: torch.Tensor | None = None) -> Any:
            y, logdet = forward(x, context)
            return (y * float("nan"), logdet) if self.on else (y, logdet)

        layer.forward = poisoned

    def step(self, step: int, *rest: Any) -> None:
        self.on = self.on or step == self.after

    def record(self, row: dict[str, Any], best: bool) -> None: ...
    def message(self, text: str) -> None: ...
    def close(self) -> None: ...


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
