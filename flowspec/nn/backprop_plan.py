"""The plan of invertible backprop (:mod:`flowspec.nn.invertible`): how each step of a flow
gets its input back in backward, which parameters it owns, which buffers to restore, and from
which step on anything needs rebuilding. Built once per training mode and gradient pattern and
cached on the flow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from torch import Tensor, nn
from torch.nn.modules.batchnorm import _NormBase
from torch.nn.modules.dropout import _DropoutNd

__all__ = [
    "MEMORY_MODES",
    "BackpropMode",
    "Plan",
    "backprop_mode",
    "plan_of",
    "require_initialized",
]

BackpropMode = Literal["invert", "checkpoint"]
MEMORY_MODES = ("plain", "invertible")


def backprop_mode(step: nn.Module) -> BackpropMode:
    """How the backward pass gets ``step``'s input: ``"invert"`` (rebuilt from its output) or
    ``"checkpoint"`` (stored), read from the declarations :mod:`flowspec.nn.invertible` lists.

    Example:
        >>> backprop_mode(nn.Identity()), backprop_mode(nn.Sequential(nn.Dropout(0.1)))
        ('invert', 'checkpoint')
    """
    for module in step.modules():
        if not getattr(module, "invertible_backprop", True):
            return "checkpoint"
        if isinstance(module, _DropoutNd) and module.training and module.p > 0:
            return "checkpoint"
    return "invert"


@dataclass
class Plan:
    """What the backward pass needs to know about each step, fixed when the forward pass runs."""

    flow: Any
    steps: tuple[Any, ...]
    modes: tuple[BackpropMode, ...]
    params: tuple[nn.Parameter, ...]
    owned: tuple[tuple[int, ...], ...]  # per step: indices into ``params``
    stateful: tuple[tuple[nn.Module, ...], ...]  # per step: modules whose buffers to restore
    first: int  # steps before this one are never rebuilt
    input_grad: tuple[bool, ...]  # per step: does its input need a gradient?
    check: float | None
    index: dict[int, int]  # id(step) -> position
    keep: tuple[bool, ...]  # per step: store its input in the forward pass?
    every: tuple[nn.Parameter, ...]  # all parameters, trained or frozen
    ready: bool = False  # data-dependent initialisation checked

    @staticmethod
    def build(flow: Any, x: Tensor, context: Tensor | None, check: float | None) -> Plan:
        steps = tuple(flow._steps)
        modes = tuple(backprop_mode(s.module) for s in steps)
        params: dict[int, nn.Parameter] = {}
        index: dict[int, int] = {}
        owned = []
        for s in steps:
            mine = [p for p in s.module.parameters() if p.requires_grad]
            for p in mine:
                index.setdefault(id(p), len(index))
                params.setdefault(id(p), p)
            owned.append(tuple(index[id(p)] for p in mine))
        upstream = x.requires_grad or (context is not None and context.requires_grad)
        input_grad, first = [], len(steps)
        for i, own in enumerate(owned):
            input_grad.append(upstream)
            if own or upstream:
                first = min(first, i)
            upstream = upstream or bool(own)
        stateful = tuple(
            (s.module,) if mode == "checkpoint" else _norm_layers(s.module)
            for s, mode in zip(steps, modes)
        )
        keep = tuple(
            i >= first and (mode == "checkpoint" or check is not None)
            for i, mode in enumerate(modes)
        )
        return Plan(
            flow,
            steps,
            modes,
            tuple(params.values()),
            tuple(owned),
            stateful,
            first,
            tuple(input_grad),
            check,
            {id(s): i for i, s in enumerate(steps)},
            keep,
            tuple(p for s in steps for p in s.module.parameters()),
        )


def _norm_layers(module: nn.Module) -> tuple[nn.Module, ...]:
    """The batch-norm layers inside ``module`` (a conditioner's), whose running statistics a
    recompute would update a second time."""
    return tuple(m for m in module.modules() if isinstance(m, _NormBase))


def plan_of(flow: Any, x: Tensor, context: Tensor | None, check: float | None) -> Plan:
    """The plan for this call, cached on the flow per training mode and gradient pattern, and
    rebuilt when the set of parameters that require grad changes."""
    key = (flow.training, x.requires_grad, context is not None and context.requires_grad, check)
    cache = flow.__dict__.setdefault("_invertible_plans", {})
    plan = cache.get(key)
    if plan is None or sum(p.requires_grad for p in plan.every) != len(plan.params):
        plan = cache[key] = Plan.build(flow, x, context, check)
    return plan


def require_initialized(plan: Plan) -> None:
    for step in plan.steps:
        for module in step.module.modules():
            flag = getattr(module, "_initialized", getattr(module, "initialized", True))
            if isinstance(flag, (bool, Tensor)) and not bool(flag):
                raise RuntimeError(
                    f"step '{step.name}' ({step.kind}) has not run its data-dependent "
                    "initialisation; run one forward pass of the flow under torch.no_grad() "
                    "first (flowspec.train does), since invertible backprop cannot initialise "
                    "parameters inside its no-grad pass"
                )
