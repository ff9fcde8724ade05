"""Training on many processes: torchrun + DistributedDataParallel, one process per device.

``torchrun --nproc-per-node N -m flowspec train SPEC`` starts N copies of the command; each
reads its place in the job from the environment torchrun sets (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) and :meth:`Ranks.start` joins them in one
process group: ``gloo`` on CPU, ``nccl`` on CUDA (process ``r`` of a machine on its GPU
``LOCAL_RANK``). Without those variables (or with ``WORLD_SIZE=1``) a run is the ordinary
single-process run, untouched.

What makes N processes train the same flow as one process with the same global batch:

* every process builds the same initial weights (the same seed), and data-dependent
  initialisation (actnorm) runs before the model is wrapped in DDP, on statistics all-reduced
  over the global first batch (:func:`flowspec.training.sync.global_data_init`), so all ranks
  start from identical
  parameters;
* the spec's ``batch_size`` is the global batch: each step every process takes its contiguous
  share of the same global batch (the shuffle is seeded alike everywhere), DDP averages the
  gradients, and the learning rate is the spec's, never rescaled;
* ops with batch statistics (flow ``batchnorm``, ``BatchNorm2d`` inside ResNet conditioners) use
  the global batch's statistics, gradients included
  (:func:`flowspec.training.sync.synchronised_statistics`);
* decisions are collective: the loss is all-reduced before the backward pass, so a non-finite
  loss on any process stops all of them at the same step, and so does Ctrl-C on any of them.

Only rank 0 writes files. Dequantisation noise is drawn from a per-rank seed
(:func:`rank_seed`; rank 0 keeps the run's seed, so one process is exactly a plain run).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from flowspec.data import Rows
from flowspec.errors import Diagnostic, TrainingError
from flowspec.nn.flow import Flow
from flowspec.training.setup import resolve_device

__all__ = [
    "LogLikelihood",
    "Ranks",
    "collective_failure",
    "launched",
    "rank_seed",
    "wrap",
]

BACKENDS = {"cpu": "gloo", "cuda": "nccl"}
# What a collective raises when another process of the job died (gloo, NCCL, the store).
_LOST = re.compile(
    r"Connection (closed|reset) by peer|remote worker|Broken pipe|NCCL|ProcessGroup|"
    r"gloo|[Tt]imed out|DistNetworkError|DistBackendError|Socket"
)


def launched() -> tuple[int, int, int]:
    """``(rank, world size, local rank)`` as torchrun sets them (``(0, 1, 0)`` when not)."""
    env = os.environ
    return int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0))


def rank_seed(seed: int, rank: int, *salt: int) -> int:
    """The seed of process ``rank``'s own random stream (dequantisation noise): ``seed`` itself
    on rank 0, an independent stream derived from ``(seed, rank, *salt)`` elsewhere.

    Example:
        >>> rank_seed(7, 0), rank_seed(7, 1) == rank_seed(7, 1) != rank_seed(7, 2)
        (7, True)
    """
    if rank == 0 and not salt:
        return seed
    state = np.random.SeedSequence([seed % 2**32, rank, *salt]).generate_state(2, np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


@dataclass
class Ranks:
    """This process's place in the job, and the few collectives training needs.

    On one process (the default) every method is the identity, so the single-process loop
    runs exactly as it would without this class.
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def start(cls, device: str) -> Ranks:
        """Join the job torchrun started (or the process group the caller already set up);
        a plain run when there is none. ``cuda`` means this process's local GPU."""
        rank, world, local = launched()
        if dist.is_available() and dist.is_initialized():
            rank, world = dist.get_rank(), dist.get_world_size()
        if world == 1:
            return cls(device=resolve_device(device))
        torch_device = resolve_device(device)
        if torch_device.type == "cuda":
            visible = torch.cuda.device_count()
            if local >= visible:
                raise TrainingError(
                    Diagnostic(
                        "device-unavailable",
                        f"process {rank} is local process {local} of its machine and takes GPU "
                        f"{local}, but {visible} GPU(s) are visible",
                        hint=f"start at most {visible} processes per machine (--nproc, "
                        "--nproc-per-node)",
                    )
                )
            torch_device = torch.device("cuda", local)
            torch.cuda.set_device(torch_device)
        owns = not dist.is_initialized()
        if owns:
            dist.init_process_group(BACKENDS[torch_device.type])
        return cls(rank, world, local, torch_device, owns)

    def close(self, peers_alive: bool = True) -> None:
        """Leave the process group if this run created it. With ``peers_alive`` every process
        first waits for the others, so none tears its connections down while a peer still
        reads from them (gloo aborts a process whose peer vanished mid-teardown)."""
        if self.owns_group and dist.is_initialized():
            if peers_alive and self.distributed:
                dist.barrier()
            dist.destroy_process_group()
            self.owns_group = False

    # ------------------------------------------------------------------ collectives
    def reduce(self, t: Tensor) -> Tensor:
        """The sum of ``t`` over every process, differentiable (for batch statistics)."""
        return _AllReduceSum.apply(t) if self.distributed else t

    def mean(self, loss: Tensor) -> float:
        """The mean of a scalar over every process (the global batch's loss)."""
        if not self.distributed:
            return loss.item()
        t = loss.detach().reshape(1).to(torch.float64, copy=True)  # never reduce into the loss
        dist.all_reduce(t)
        return t.item() / self.world

    def any(self, flag: bool) -> bool:
        """True on every process when ``flag`` is true on some process."""
        if not self.distributed:
            return flag
        t = torch.tensor([float(flag)], device=self.device)
        dist.all_reduce(t)
        return bool(t.item() > 0)

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sums over every process, in float64."""
        if not self.distributed:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def rng_states(self) -> dict[str, Tensor]:
        """Every other process's random states, gathered for rank 0's checkpoint:
        ``rng.torch.<r>`` (and ``rng.cuda.<r>``) for ``r = 1 .. world - 1``."""
        if not self.distributed:
            return {}
        states = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            states["cuda"] = torch.cuda.get_rng_state(self.device)
        out: dict[str, Tensor] = {}
        for name, state in states.items():
            mine = state.to(self.device)
            parts = [torch.empty_like(mine) for _ in range(self.world)]
            dist.all_gather(parts, mine)
            out.update({f"rng.{name}.{r}": parts[r].cpu() for r in range(1, self.world)})
        return out

    def share(self, n: int) -> slice:
        """This process's contiguous share of ``n`` items (shares differ by at most one)."""
        bounds = np.linspace(0, n, self.world + 1).round().astype(int)
        return slice(int(bounds[self.rank]), int(bounds[self.rank + 1]))

    def share_rows(self, x: Any, seed: int) -> tuple[Any, int]:
        """This process's share of the rows ``x`` (still unread when ``x`` is
        :class:`~flowspec.data.Rows`) and its seed for scoring them; all of ``x`` and ``seed``
        itself on one process."""
        if not self.distributed:
            return x, seed
        share = self.share(len(x))
        return (x.subset(share) if isinstance(x, Rows) else x[share]), rank_seed(seed, self.rank)

    def weighted_mean(self, value: float, n: int) -> float:
        """The mean over every process of per-process means ``value`` of ``n`` items."""
        if not self.distributed:
            return value
        total, count = self.sum([value * n, float(n)])
        return total / max(count, 1.0)

    def lost(self, exc: BaseException, step: int, checkpoint: str | None) -> TrainingError:
        """The error of a run whose job lost a process (killed, crashed, out of memory)."""
        cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        keep = f"the last checkpoint is {checkpoint}; " if checkpoint else ""
        return TrainingError(
            Diagnostic(
                "rank-lost",
                f"process {self.rank} of {self.world} stopped at step {step}: another process "
                f"of the job is gone ({cause[:200]})",
                hint=keep + "the other processes' messages say why they stopped; continue with "
                "--resume (with any number of processes)",
            )
        )


class _AllReduceSum(torch.autograd.Function):
    """``y = sum over processes of x``; the gradient of ``x`` on each process is the sum over
    processes of the gradients of ``y`` (every process's loss depends on every ``x``)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        y = x.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        g = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(g)
        return g


def collective_failure(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it wraps) is a collective failing because a peer left."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, RuntimeError) and _LOST.search(str(seen)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class LogLikelihood(nn.Module):
    """``x -> flow.log_prob(x, context)``: the module DDP wraps, so its forward sees the whole
    loss."""

    def __init__(self, flow: Flow) -> None:
        super().__init__()
        self.flow = flow

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        return self.flow.log_prob(x, context)


def wrap(flow: Flow, ranks: Ranks) -> nn.Module:
    """The module the loop calls for ``log p(batch)``: DDP around the flow on many processes."""
    model = LogLikelihood(flow)
    if not ranks.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [ranks.device.index] if ranks.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)
