"""Type errors in a spec, said in the spec's terms: what the field expects, with an example.

Pydantic reports ``hidden: 64`` as "Input should be a valid tuple"; :func:`type_problem` turns
such an error into "expected a list of integers > 0, got 64" with the hint "for example
'hidden: [64, 64]'", from the field's annotation and default. Torch-free.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

__all__ = ["TYPE_ERRORS", "describe", "example", "type_problem"]

# Pydantic error types that mean "a value of the wrong type or out of range".
TYPE_ERRORS = frozenset(
    {
        "tuple_type", "list_type", "int_type", "int_parsing", "int_from_float", "float_type",
        "float_parsing", "bool_type", "bool_parsing", "string_type", "greater_than",
        "greater_than_equal", "less_than", "less_than_equal", "dict_type", "model_type",
        "model_attributes_type", "finite_number",
    }
)  # fmt: skip

_NAMES = {int: ("an integer", "integers"), float: ("a number", "numbers"),
          bool: ("true or false", "true/false values"), str: ("a string", "strings")}  # fmt: skip
_BOUNDS = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))


def _unwrap(tp: Any) -> tuple[Any, list[str]]:
    """The bare type and its bounds (``["> 0"]``) from ``Annotated`` metadata."""
    bounds: list[str] = []
    while typing.get_origin(tp) is typing.Annotated:
        tp, *meta = typing.get_args(tp)
        for item in meta:
            for attr, sym in _BOUNDS:
                if getattr(item, attr, None) is not None:
                    bounds.append(f"{sym} {getattr(item, attr)}")
            for inner in getattr(item, "metadata", []):  # Field(gt=0) keeps them here
                for attr, sym in _BOUNDS:
                    if getattr(inner, attr, None) is not None:
                        bounds.append(f"{sym} {getattr(inner, attr)}")
    return tp, bounds


def describe(tp: Any, plural: bool = False) -> str:
    """Plain words for an annotation: ``a list of integers > 0``, ``a number > 0 or null``.

    Example:
        >>> from flowspec.layers.base import PositiveInt
        >>> describe(tuple[PositiveInt, ...]), describe(float | None)
        ('a list of integers > 0', 'a number or null')
    """
    tp, bounds = _unwrap(tp)
    suffix = f" {' and '.join(bounds)}" if bounds else ""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    tags = _model_tags(tp)
    if tags:
        return f"{'mappings' if plural else 'a mapping'} with a type ({', '.join(tags)})"
    if origin in (typing.Union, types.UnionType):
        options = [describe(a, plural) for a in args if a is not type(None)]
        text = " or ".join(dict.fromkeys(options))
        return text + (" or null" if type(None) in args else "")
    if origin is typing.Literal:
        return "one of " + ", ".join(json.dumps(a) for a in args)
    if origin in (tuple, list):
        return f"{'lists' if plural else 'a list'} of {describe(args[0], plural=True)}"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return f"{'mappings' if plural else 'a mapping'} ({tp.__name__})"
    if tp in _NAMES:
        return _NAMES[tp][1 if plural else 0] + suffix
    return getattr(tp, "__name__", str(tp)) + suffix


def _model_tags(tp: Any) -> list[str]:
    """The ``type`` tags of a union of spec models (``mlp``, ``glow_conv``, ...), else []."""
    tp, _ = _unwrap(tp)
    members = (
        typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else ()
    )
    tags = []
    for member in members:
        member, _ = _unwrap(member)
        if isinstance(member, type) and issubclass(member, BaseModel):
            annotation = member.model_fields.get("type")
            tags += list(typing.get_args(annotation.annotation)) if annotation else []
    return [str(t) for t in tags]


def _synthesised(tp: Any) -> Any:
    tags = _model_tags(tp)
    if tags:
        return f"{{type: {tags[0]}}}"
    tp, bounds = _unwrap(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return _synthesised(next(a for a in args if a is not type(None)))
    if origin is typing.Literal:
        return args[0]
    if origin in (tuple, list):
        return [_synthesised(args[0])] * 2
    low = next((float(b.split()[1]) for b in bounds if b[0] in "><"), None)
    if tp is bool:
        return True
    if tp is int:
        return 1 if low is None else int(low) + (1 if bounds[0].startswith("> ") else 0)
    if tp is float:
        return 0.001 if low is not None and low >= 0 else 0.5
    return "..." if tp is str else None


def example(field: FieldInfo | None, tp: Any) -> str:
    """A value to show in a hint, as YAML: the field's default when it has one, else made up
    from the type."""
    value = None
    if field is not None and field.examples:
        value = field.examples[0]
    elif field is not None and field.default is not PydanticUndefined:
        value = field.default
    if value in (None, (), []) or isinstance(value, BaseModel):
        value = _synthesised(tp)
    if isinstance(value, tuple):
        value = list(value)
    return json.dumps(value) if not isinstance(value, str) else value


def type_problem(kind: str, key: str | int, parent: Any) -> tuple[str, str | None] | None:
    """``(what the field expects, a hint with an example)`` for a pydantic error of type
    ``kind`` at ``key`` of ``parent`` (a model, or a list/tuple type for an item), or None when
    it is not a type error of a field this can describe.

    Example:
        >>> from flowspec.layers.nets import MLPSpec
        >>> type_problem("tuple_type", "hidden", MLPSpec)
        ('a list of integers > 0', "for example 'hidden: [64, 64]'")
    """
    if kind not in TYPE_ERRORS:
        return None
    field: FieldInfo | None = None
    if isinstance(parent, type) and issubclass(parent, BaseModel) and key in parent.model_fields:
        field = parent.model_fields[str(key)]
        tp = (
            typing.Annotated[(field.annotation, *field.metadata)]
            if field.metadata
            else (field.annotation)
        )
    elif typing.get_origin(parent) in (tuple, list) and typing.get_args(parent):
        tp = typing.get_args(parent)[0]
    else:
        return None
    hint = f"for example '{key}: {example(field, tp)}'" if isinstance(key, str) else None
    return describe(tp), hint
