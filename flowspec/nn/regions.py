"""Regional compilation: each distinct repeated block compiled once and reused for every copy.

A flow's ``repeat`` blocks run the same body K times with different weights. flowspec knows
which steps are copies of one another (the instance paths say which repetition an op belongs
to; the modules say how they compute), so :func:`compile_regions` groups the steps of each
repetition into one *region* and compiles one function per distinct body: a
``torch.func.functional_call`` of a template body, to which every copy passes its own
parameters and buffers. Cold compile time then grows with the number of distinct bodies (one
per level of a Glow), not with depth, and the compiled step still fuses each body's elementwise
work. Steps outside repeated blocks (preprocessing, squeeze, split) stay eager.

Two bodies are the same when their steps have the same kinds, op specs and input shapes and
their modules hold the same plain attributes (a coupling whose kept channels come first and one
whose do not compute differently); tensors (weights, masks) are inputs of the compiled function.

The flow's interpreter loops run the regions (:attr:`Flow.schedule`) whenever no observer asks
to see single steps; forward, inverse (sampling) and backward are all compiled.
"""

from __future__ import annotations

import copy
import types
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["BACKEND", "Region", "compile_regions", "regions_of", "signature"]

BACKEND = "inductor"  # torch.compile's backend unless told otherwise

_PLAIN = (bool, int, float, str, type(None))


class _Body(nn.Module):
    """The steps of one repetition as a chain: ``forward`` sums their logdets, ``inverse``
    walks them backwards."""

    def __init__(self, modules: Sequence[nn.Module]) -> None:
        super().__init__()
        self.chain = nn.ModuleList(modules)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        logdet: Any = 0
        for module in self.chain:
            x, ld = module(x, context)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        for module in reversed(self.chain):
            y = module.inverse(y, context)
        return y


class _Inverse(nn.Module):
    """A body's inverse as a ``forward`` (``functional_call`` calls ``forward``), over the same
    submodules, so its tensors have the same names."""

    def __init__(self, body: _Body) -> None:
        super().__init__()
        self.chain = body.chain

    def forward(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        for module in reversed(self.chain):
            y = module.inverse(y, context)
        return y


def _call(template: nn.Module, tensors: dict[str, Tensor], x: Tensor, context: Any) -> Any:
    return torch.func.functional_call(template, tensors, (x, context))


def _fresh(function: Any, name: str) -> Any:
    """A copy of ``function`` with its own code object: dynamo keeps its cache (and its
    recompilation limit) per code object, so each distinct body gets its own."""
    code = function.__code__.replace(co_name=name)
    return types.FunctionType(code, function.__globals__, name)


class Region(nn.Module):
    """One repetition, run by the compiled function of its body. Not registered in the flow
    (its steps' modules are, under their own names); held by :attr:`Flow.schedule`."""

    def __init__(self, body: _Body, template: _Body, compiled: dict[str, Any]) -> None:
        super().__init__()
        object.__setattr__(self, "body", body)  # not a submodule: no second registration
        templates = {"forward": template, "inverse": _Inverse(template)}
        object.__setattr__(self, "templates", templates)
        self.compiled = compiled
        self.ready = False
        self.entries = [
            (name, module, attr, kind)
            for kind in ("_parameters", "_buffers")
            for name, module, attr in _tensor_slots(body, kind)
        ]

    def tensors(self) -> dict[str, Tensor]:
        """This copy's parameters and buffers, looked up now (``.to()`` replaces buffers)."""
        out = {}
        for name, module, attr, kind in self.entries:
            value = getattr(module, kind)[attr]
            if value is not None:
                out[name] = value
        return out

    def _run(self, part: str, x: Tensor, context: Tensor | None) -> Any:
        template = self.templates[part]
        training = self.body.chain[0].training
        if template.training != training:  # follow flow.train() / flow.eval()
            template.train(training)
        if torch.is_grad_enabled() and not x.requires_grad:
            # One graph whether or not the input needs a gradient (the first repetition's
            # does not): a second compilation costs more than this gradient.
            x = x.detach().requires_grad_()
        return self.compiled[part](template, self.tensors(), x.contiguous(), context)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if not self.ready:
            if not all(getattr(m, "_initialized", True) for m in self.body.modules()):
                return self.body(x, context)  # data-dependent init runs eagerly, once
            self.ready = True
        return self._run("forward", x, context)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        return self._run("inverse", y, context)


def _tensor_slots(body: nn.Module, kind: str) -> list[tuple[str, nn.Module, str]]:
    return [
        (f"{prefix}.{attr}" if prefix else attr, module, attr)
        for prefix, module in body.named_modules()
        for attr in getattr(module, kind)
    ]


def signature(module: nn.Module) -> tuple[Any, ...]:
    """What decides how ``module`` computes, besides its tensors: its class, its plain
    attributes (and those of plain objects it holds, e.g. a transform) and its children's."""
    items = []
    for key, value in sorted(vars(module).items()):
        if key.startswith("_") and key not in ("_initialized",):
            continue
        if isinstance(value, _PLAIN) or (
            isinstance(value, tuple) and all(isinstance(v, _PLAIN) for v in value)
        ):
            items.append((key, value))
        elif not isinstance(value, (Tensor, nn.Module)) and hasattr(value, "__dict__"):
            items.append(
                (
                    key,
                    type(value).__qualname__,
                    tuple(sorted((k, v) for k, v in vars(value).items() if isinstance(v, _PLAIN))),
                )
            )
    children = tuple((name, signature(child)) for name, child in module.named_children())
    shapes = tuple((n, tuple(t.shape), t.dtype) for n, t in module.named_parameters())
    shapes += tuple((n, tuple(t.shape), t.dtype) for n, t in module.named_buffers())
    return (type(module).__qualname__, tuple(items), children, shapes)


def regions_of(steps: Sequence[Any]) -> list[list[Any]]:
    """The steps grouped: consecutive single-output steps of one repetition of a ``repeat``
    block form a group (their names share all but the last part, and that prefix ends with
    the repetition index); every other step is a group of its own."""
    groups: list[list[Any]] = []
    for step in steps:
        key = _repetition(step)
        last = groups[-1] if groups else None
        if (
            key is not None
            and last is not None
            and _repetition(last[0]) == key
            and last[-1].dst == (step.src,)
        ):
            last.append(step)
        else:
            groups.append([step])
    return groups


def _repetition(step: Any) -> str | None:
    if len(step.dst) != 1 or "." not in step.name:
        return None
    prefix = step.name.rsplit(".", 1)[0]
    return prefix if prefix.rsplit(".", 1)[-1].isdigit() and step.path.count("body") else None


def compile_regions(flow: Any, backend: str | None = None, **options: Any) -> dict[str, Any]:
    """Run ``flow``'s repeated blocks through ``torch.compile``, one compilation per distinct
    body (module docstring). Sets ``flow.schedule``; returns what was done: the number of
    regions, of distinct bodies, and the steps left eager. ``options`` go to
    ``torch.compile`` (``backend="aot_eager"`` traces without generating code: a quick check).
    """
    backend = backend or BACKEND
    if backend == "inductor":
        # Keep convolutions in the flow's own layout: converting small images to channels-last
        # and back costs more than it gains on a CPU (measured: convolutions 2x slower).
        options.setdefault("options", {}).setdefault("layout_optimization", False)
    bodies: dict[Any, tuple[_Body, dict[str, Any]]] = {}
    schedule, eager = [], []
    for group in regions_of(flow.steps):
        if _repetition(group[0]) is None:
            schedule.append(group[0])
            eager.append(group[0].name)
            continue
        body = _Body([s.module for s in group])
        key = tuple((s.kind, signature(s.module)) for s in group)
        if key not in bodies:
            # The template is a copy: its own tensors are never the ones passed in (dynamo
            # would guard on that aliasing and compile the first repetition twice).
            template = copy.deepcopy(body)
            name = f"region_{len(bodies)}"
            compiled = {
                part: torch.compile(_fresh(_call, f"{name}_{part}"), backend=backend, **options)
                for part in ("forward", "inverse")
            }
            bodies[key] = (template, compiled)
        template, compiled = bodies[key]
        region = Region(body, template, compiled)
        first, last = group[0], group[-1]
        schedule.append(
            type(first)(
                f"{first.name}..{last.name.rsplit('.', 1)[-1]}" if len(group) > 1 else first.name,
                "region",
                first.path,
                region,
                first.src,
                last.dst,
            )
        )
    flow.schedule = tuple(schedule)
    return {"regions": len(schedule) - len(eager), "bodies": len(bodies), "eager": eager}
