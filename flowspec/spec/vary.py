"""Per-repetition values in a ``repeat`` block: its ``vary:`` table.

``vary`` maps a key inside the body to one value per repetition::

    - repeat: 4
      body:
        - {type: tarflow, width: 64}
        - {type: permute, order: reverse}
      vary:
        0.depth: [8, 2, 2, 2]        # body item 0, key depth: repetition r gets value r

A key is ``<body item>.<key>[.<key> ...]`` (nested keys such as ``0.net.hidden``, list indices
such as ``0.net.hidden.1``, and the keys of a nested ``repeat`` block such as ``1.repeat`` or
``1.body.0.width``); when the body has one item its index may be left out (``depth``). Repetition
``r`` is the body as written with each varied key set to its ``r``-th value and validated again,
so a value gets exactly the checks it would get written in place. Problems are located at the
``vary`` entry: an unknown key (``vary-key``), a list whose length is not the repeat count
(``vary-length``), a value the key does not accept (``bad-value``, at the value).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Any

from pydantic import TypeAdapter, ValidationError

from flowspec.errors import Diagnostic, Location
from flowspec.spec.models import FlowSpec, LayerItem, RepeatSpec
from flowspec.spec.source import PathKey

__all__ = ["repetition_body", "varied_paths", "vary_problems"]

_ITEM = TypeAdapter(LayerItem)


def _split_key(repeat: RepeatSpec, key: str) -> tuple[int, list[str | int]] | str:
    """``(body index, path inside the item)``, or a message saying why the key is not one."""
    parts: list[str | int] = [int(p) if p.isdigit() else p for p in key.split(".")]
    if parts and isinstance(parts[0], int):
        if parts[0] >= len(repeat.body):
            return f"the body has {len(repeat.body)} item(s); there is no item {parts[0]}"
        index, rest = parts[0], parts[1:]
    elif len(repeat.body) == 1:
        index, rest = 0, parts
    else:
        return f"the body has {len(repeat.body)} items: start the key with the item's index"
    if not rest or any(p == "" for p in rest):
        return "name a key of the body item after its index, e.g. '0.depth'"
    return index, rest


def _lookup(data: Any, path: list[str | int]) -> tuple[bool, list[str]]:
    """Whether ``path`` exists in ``data``; if not, the keys available where it stopped."""
    for step in path:
        if isinstance(data, dict) and step in data:
            data = data[step]
        elif isinstance(data, (list, tuple)) and isinstance(step, int) and step < len(data):
            data = data[step]
        else:
            return False, sorted(data) if isinstance(data, dict) else []
    return True, []


def _set(data: Any, path: list[str | int], value: Any) -> Any:
    """A copy of ``data`` with ``path`` set to ``value`` (dicts and lists copied on the way)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(data, dict):
        return {**data, head: _set(data[head], rest, value)}
    items = list(data)
    items[head] = _set(items[head], rest, value)  # type: ignore[index]
    return tuple(items)


def _frozen(value: Any) -> Any:
    """Lists as tuples, all the way down (the strict models take tuples)."""
    if isinstance(value, dict):
        return {k: _frozen(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


def _dump(item: Any) -> Any:
    return item.model_dump(mode="python")


def _key_problem(repeat: RepeatSpec, key: str) -> tuple[str, str] | None:
    split = _split_key(repeat, key)
    if isinstance(split, str):
        return split, "vary keys are '<body item>.<key>', e.g. '0.depth'"
    index, rest = split
    found, keys = _lookup(_dump(repeat.body[index]), rest)
    if found:
        return None
    close = difflib.get_close_matches(str(rest[-1]), keys, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'?" if close else f"keys here: {', '.join(keys) or 'none'}"
    return f"body item {index} has no key '{'.'.join(map(str, rest))}'", hint


def repetition_body(repeat: RepeatSpec, r: int) -> tuple[Any, ...]:
    """The body of repetition ``r``: each varied key set to its ``r``-th value, validated.

    Raises:
        pydantic.ValidationError: a value is not valid for its key (:func:`vary_problems`
            reports these located; specs read by ``parse_spec`` have passed it).

    Example:
        >>> from flowspec.spec.models import RepeatSpec
        >>> block = RepeatSpec.model_validate(
        ...     {"repeat": 2, "body": ({"type": "tarflow"},), "vary": {"depth": (8, 2)}}
        ... )
        >>> [item.depth for r in range(2) for item in repetition_body(block, r)]
        [8, 2]
    """
    if not repeat.vary:
        return repeat.body
    dumps = [_dump(item) for item in repeat.body]
    changed: set[int] = set()
    for key, values in repeat.vary.items():
        index, rest = _split_key(repeat, key)  # type: ignore[misc]
        dumps[index] = _set(dumps[index], rest, _frozen(values[r]))
        changed.add(index)
    return tuple(
        _ITEM.validate_python(dump) if i in changed else item
        for i, (item, dump) in enumerate(zip(repeat.body, dumps))
    )


def varied_paths(repeat: RepeatSpec, r: int) -> dict[int, dict[tuple[str | int, ...], PathKey]]:
    """Per body index, each varied key path (inside the item) and where its ``r``-th value is
    written, relative to the repeat block: ``{0: {("depth",): ("vary", "0.depth", r)}}``."""
    out: dict[int, dict[tuple[str | int, ...], PathKey]] = {}
    for key in repeat.vary:
        index, rest = _split_key(repeat, key)  # type: ignore[misc]
        out.setdefault(index, {})[tuple(rest)] = ("vary", key, r)
    return out


def _blocks(items: Any, path: PathKey) -> Iterator[tuple[RepeatSpec, PathKey]]:
    for i, item in enumerate(items):
        if isinstance(item, RepeatSpec):
            yield item, (*path, i)


def vary_problems(
    spec: FlowSpec, locate: Callable[[PathKey], Location | None] = lambda path: None
) -> list[Diagnostic]:
    """Every problem of every ``vary`` table in ``spec`` (nested blocks included), each located
    by ``locate`` (e.g. ``Source.locate``)."""
    problems: list[Diagnostic] = []
    todo = list(_blocks(spec.preprocess, ("preprocess",)))
    for index, level in enumerate(spec.levels):
        todo += _blocks(level.steps, ("levels", index, "steps"))
    todo += _blocks(spec.layers, ("layers",))
    checked: set[tuple[PathKey, str]] = set()
    while todo:
        repeat, path = todo.pop(0)
        identity = (path, repeat.model_dump_json())
        if identity in checked:  # the same block in several repetitions: check it once
            continue
        checked.add(identity)
        good = True
        for key, values in repeat.vary.items():
            wrong, code = _key_problem(repeat, key), "vary-key"
            if wrong is None and len(values) != repeat.repeat:
                wrong = (
                    f"{len(values)} value(s) for a block repeated {repeat.repeat} times",
                    "give one value per repetition",
                )
                code = "vary-length"
            if wrong is not None:
                problems.append(_diagnostic(code, wrong[0], (*path, "vary", key), wrong[1], locate))
                good = False
        if not repeat.vary:  # every repetition is the body as written
            todo += _blocks(repeat.body, (*path, "body"))
            continue
        for r in range(repeat.repeat if good else 0):
            body = _validated_body(repeat, r, path, problems, locate)
            todo += _blocks(body or (), (*path, "body"))
    return list({(d.code, d.path, d.message): d for d in problems}.values())


def _validated_body(
    repeat: RepeatSpec,
    r: int,
    path: PathKey,
    problems: list[Diagnostic],
    locate: Callable[[PathKey], Location | None],
) -> tuple[Any, ...] | None:
    try:
        return repetition_body(repeat, r)
    except ValidationError:
        pass
    for key, values in repeat.vary.items():  # one key at a time, to say which value is wrong
        single = repeat.model_copy(update={"vary": {key: values}})
        try:
            repetition_body(single, r)
        except ValidationError as exc:
            message = "; ".join(err["msg"] for err in exc.errors())
            problems.append(
                _diagnostic(
                    "bad-value",
                    f"repetition {r}: {message}",
                    (*path, "vary", key, r),
                    "each value must be valid where the key is written in the body",
                    locate,
                )
            )
    return None


def _diagnostic(
    code: str,
    message: str,
    path: PathKey,
    hint: str,
    locate: Callable[[PathKey], Location | None],
) -> Diagnostic:
    return Diagnostic(code, message, ".".join(map(str, path)), locate(path), hint)
