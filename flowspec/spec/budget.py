"""The resource limits a validated spec must stay within, checked before anything is built.

The schema bounds each value on its own; these checks bound what the values add up to, against
the limits of :mod:`flowspec.spec.limits` (each can be raised explicitly): op instances after
expanding ``repeat`` blocks (``ops``), elements of one example (``elements``), the widths and
depths of conditioners and the components of a mixture base (``width``, ``blocks``),
``train.threads`` (``threads``) and ``train.workers`` (``workers``). The walk visits each
written value once (a repeat's body is not expanded), so it is cheap however large the numbers
are.
"""

from __future__ import annotations

from collections.abc import Iterator
from math import prod
from typing import Any

from pydantic import BaseModel

from flowspec.errors import Diagnostic
from flowspec.spec.limits import limit, raise_hint
from flowspec.spec.models import FlowSpec, LevelSpec, RepeatSpec
from flowspec.spec.source import PathKey

__all__ = ["FIELD_LIMITS", "check_budget", "count_ops"]

# A spec field of this name (in any model: conditioners, bases, training) is bounded by the
# limit it maps to; a tuple of ints (``hidden``) is bounded item by item and by its length.
FIELD_LIMITS: dict[str, tuple[str, str | None]] = {
    # field: (limit on each value, limit on the number of values)
    "hidden": ("width", "blocks"),
    "channels": ("width", None),
    "width": ("width", None),
    "mlp_ratio": ("width", None),
    "components": ("width", None),
    "bins": ("width", None),  # a spline: 3 x bins - 1 conditioner outputs per element
    "classes": ("width", None),  # a class context's labels (one-hot width, embedding rows)
    "embedding": ("width", None),
    "blocks": ("blocks", None),
    "depth": ("blocks", None),
    "threads": ("threads", None),
    "workers": ("workers", None),
}


def count_ops(items: Any) -> int:
    """Op instances in a list of layer items, with ``repeat`` blocks expanded (as a number).

    Example:
        >>> from flowspec.api import load_spec
        >>> count_ops(load_spec("specs/realnvp_moons.yaml").layers)
        20
    """
    total = 0
    for item in items:
        total += item.repeat * count_ops(item.body) if isinstance(item, RepeatSpec) else 1
    return total


def _level_ops(level: LevelSpec) -> int:
    return int(level.squeeze) + count_ops(level.steps) + int(bool(level.split))


def _blocks(spec: FlowSpec) -> Iterator[tuple[PathKey, int]]:
    """``(path, op count)`` of every top-level block, in order."""
    for section in ("preprocess", "layers"):
        for i, item in enumerate(getattr(spec, section)):
            path: PathKey = (section, i, "repeat") if isinstance(item, RepeatSpec) else (section, i)
            yield path, count_ops([item])
    for i, level in enumerate(spec.levels):
        yield ("levels", i), _level_ops(level)


def _fields(model: BaseModel, path: PathKey) -> Iterator[tuple[PathKey, str, Any]]:
    """Every ``(path, field name, value)`` of a model tree, each written value once (a value in
    a repeat block's ``vary`` table under the key it sets)."""
    if isinstance(model, RepeatSpec):
        for key, values in model.vary.items():
            for r, value in enumerate(values):
                yield (*path, "vary", key, r), key.split(".")[-1], value
    for name in type(model).model_fields:
        value = getattr(model, name)
        yield (*path, name), name, value
        if isinstance(value, BaseModel):
            yield from _fields(value, (*path, name))
        elif isinstance(value, tuple):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    yield from _fields(item, (*path, name, i))


def check_budget(spec: FlowSpec) -> list[Diagnostic]:
    """Every limit ``spec`` exceeds, each located at the value responsible.

    Example:
        >>> from flowspec.api import load_spec
        >>> check_budget(load_spec("specs/glow_cifar10.yaml"))
        []
    """
    source = spec.source
    problems: list[Diagnostic] = []

    def report(name: str, message: str, path: PathKey) -> None:
        location = source.locate(path) if source is not None else None
        problems.append(
            Diagnostic(
                "limit-exceeded",
                f"{message} (limit {name}: {limit(name):,})",
                ".".join(map(str, path)),
                location,
                raise_hint(name),
            )
        )

    elements = prod(spec.input.shape)
    if elements > limit("elements"):
        report(
            "elements",
            f"an example of shape {list(spec.input.shape)} has {elements:,} elements",
            ("input", "shape"),
        )
    blocks = list(_blocks(spec))
    total = sum(n for _, n in blocks)
    if total > limit("ops"):
        path, count = max(blocks, key=lambda b: b[1])
        report(
            "ops",
            f"the flow has {total:,} op instances after expanding repeat blocks "
            f"({count:,} from this block)",
            path,
        )
    for path, name, value in _fields(spec, ()):
        if name not in FIELD_LIMITS or value is None or isinstance(value, BaseModel | str):
            continue
        each, length = FIELD_LIMITS[name]
        values = value if isinstance(value, tuple) else (value,)
        if length is not None and len(values) > limit(length):
            report(length, f"{name} lists {len(values):,} layers", path)
        for i, number in enumerate(values):
            if isinstance(number, int) and number > limit(each):
                where = (*path, i) if isinstance(value, tuple) else path
                report(each, f"{name} {number:,} is too large", where)
    return problems
