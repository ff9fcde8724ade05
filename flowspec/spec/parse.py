"""``parse_spec``: raw YAML data -> validated :class:`FlowSpec`, every problem located.

Pydantic reports each problem with a ``loc`` path that also contains union tags
(``layers.2.affine_coupling.net.mlp.hiden``). The path is cleaned by walking the model types
alongside it, then mapped to the file's line and column by the longest prefix the file spells
out. Unknown keys, unknown layer types and bad literal values get a "did you mean" hint; a value
of the wrong type (the models never coerce: ``yes`` or ``"5"`` is not a number) says what YAML
1.1 would have read where that explains it. A spec that validates is then held to the resource
limits (:mod:`flowspec.spec.budget`).
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from flowspec.errors import Diagnostic, SpecError
from flowspec.spec.bounds import too_deep
from flowspec.spec.budget import check_budget
from flowspec.spec.messages import TYPE_ERRORS, type_problem
from flowspec.spec.models import FlowSpec
from flowspec.spec.scalars import yaml11_reading
from flowspec.spec.source import PathKey, Source
from flowspec.spec.upgrade import upgrade_spec
from flowspec.spec.vary import vary_problems

__all__ = ["parse_spec"]

_CODES = {
    "extra_forbidden": "unknown-key",
    "union_tag_invalid": "unknown-type",
    "union_tag_not_found": "missing-type",
    "missing": "missing-key",
}


def parse_spec(source: Source) -> FlowSpec:
    """Validate ``source.data`` into a :class:`FlowSpec`.

    Raises:
        SpecError: with one located diagnostic per problem found.
    """
    data = source.data
    if not isinstance(data, dict):
        raise SpecError(
            Diagnostic(
                "bad-value",
                "a spec must be a mapping of keys to values",
                location=source.locate(()),
                hint="start the file with 'flowspec: 1'",
            )
        )
    data, problems = upgrade_spec(dict(data))
    if problems:
        raise SpecError([_locate(d, source) for d in problems])
    try:
        spec = FlowSpec.model_validate(_frozen(data, {}))
    except ValidationError as exc:
        raise SpecError(_dedupe([_diagnostic(err, source) for err in exc.errors()])) from None
    except RecursionError:  # only when the nesting limit was raised past what Python can hold
        raise SpecError(too_deep(source.filename)) from None
    spec._source = source
    problems = check_budget(spec)
    if problems:
        raise SpecError(problems)
    varied = vary_problems(spec, source.locate)  # within the limits: repetitions are bounded
    if varied:
        raise SpecError(_dedupe(varied))
    return spec


def _frozen(data: Any, memo: dict[int, Any]) -> Any:
    """``data`` with every list turned into a tuple (the strict models take tuples); shared
    objects (YAML aliases) stay shared. Depth is bounded by the ``nesting`` limit."""
    if id(data) in memo:
        return memo[id(data)]
    if isinstance(data, dict):
        out: Any = {k: _frozen(v, memo) for k, v in data.items()}
    elif isinstance(data, list | tuple):
        out = tuple(_frozen(v, memo) for v in data)
    else:
        return data
    memo[id(data)] = out
    return out


# pydantic's strict type errors -> what the spec needed there
_EXPECTED = {
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "string_type": "a string",
    "tuple_type": "a list",
    "finite_number": "a finite number",
}


def _wrong_type(kind: str, value: Any, path: PathKey, parent: Any) -> tuple[str, str | None]:
    """Message and hint for a value of the wrong type or range (the models never coerce): what
    the field expects (its type, bounds and an example, :mod:`flowspec.spec.messages`), and why
    the value is not that when YAML or a type could mislead."""
    described = type_problem(kind, path[-1], parent) if path else None
    expected, hint = described or (_EXPECTED.get(kind, "another value"), None)
    shown = f"the string {value!r}" if isinstance(value, str) else repr(value)
    message = f"expected {expected}, got {shown}"
    reading = yaml11_reading(value)
    if reading == "quoted":
        hint = f"{value!r} is quoted, so it is a string: remove the quotes"
    elif reading is not None:
        hint = (
            f"YAML 1.1 would read {value!r} as {reading}; flowspec follows YAML 1.2 and does not "
            "guess: write the value itself (decimal without leading zeros, true/false)"
        )
    elif isinstance(value, bool):
        hint = "a boolean is not a number: write the number"
    elif isinstance(value, float) and kind == "int_type" and value.is_integer():
        hint = f"write {int(value)} (an integer, without '.' or exponent)"
    elif kind == "finite_number":
        hint = "infinite and NaN values are not allowed here"
    return message, hint


def _locate(diag: Diagnostic, source: Source) -> Diagnostic:
    path = tuple(diag.path.split(".")) if diag.path else ()
    return Diagnostic(diag.code, diag.message, diag.path, source.locate(path), diag.hint)


def _diagnostic(err: Any, source: Source) -> Diagnostic:
    path, parent = _clean_loc(err["loc"])
    kind = err["type"]
    code = _CODES.get(kind, "bad-value")
    message, hint = err["msg"].removeprefix("Value error, "), None
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        key = str(path[-1])
        allowed = sorted(parent.model_fields) if _is_model(parent) else []
        message = f"unknown key '{key}'"
        hint = _did_you_mean(key, allowed) or (
            f"allowed keys: {', '.join(allowed)}" if allowed else None
        )
    elif kind == "union_tag_invalid":
        path = (*path, "type")
        tags = [t.strip(" '") for t in ctx.get("expected_tags", "").split(",")]
        what = "type" if path[-2] in ("base", "net") else "layer type"
        message = f"unknown {what} '{ctx.get('tag')}'"
        hint = _did_you_mean(str(ctx.get("tag")), tags) or f"expected one of: {', '.join(tags)}"
    elif kind == "union_tag_not_found" and path and path[-1] == "context":
        code = "missing-key"
        message = "a context needs 'shape: [K]' (a vector) or 'classes: N' (class labels)"
        keys = list(_value_at(source.data, path) or {})
        hint = next(
            (h for k in keys if (h := _did_you_mean(str(k), ["shape", "classes"]))),
            "e.g. 'context: {classes: 10, embedding: 8}' or 'context: {shape: [3]}'",
        )
    elif kind == "union_tag_not_found":
        message = "this item has no 'type'"
        hint = "each layer needs 'type: <kind>' (or 'repeat: K' with a 'body' list)"
    elif kind == "missing":
        message = f"missing required key '{path[-1]}'"
    elif kind in _EXPECTED or kind in TYPE_ERRORS:
        message, hint = _wrong_type(kind, _value_at(source.data, path), path, parent)
    elif kind == "literal_error":
        options = [o.strip(" '") for o in ctx.get("expected", "").replace(" or ", ",").split(",")]
        value = _value_at(source.data, path)
        message = f"invalid value {value!r}: {err['msg']}"
        hint = _did_you_mean(str(value), options)
    return Diagnostic(code, message, ".".join(str(p) for p in path), source.locate(path), hint)


def _dedupe(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """One diagnostic per spec path (a value failing every member of a union reports once),
    in file order."""
    seen: dict[str, Diagnostic] = {}
    for diag in diagnostics:
        seen.setdefault(diag.path, diag)
    located = sorted(
        seen.values(), key=lambda d: (d.location.line, d.location.column) if d.location else (0, 0)
    )
    return located


def _did_you_mean(word: str, options: list[str]) -> str | None:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def _value_at(data: Any, path: PathKey) -> Any:
    for key in path:
        try:
            data = data[key]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _strip(tp: Any) -> Any:
    """Remove ``Annotated`` wrappers."""
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _union_tags(tp: Any) -> dict[str, Any] | None:
    """Map each tag of a (discriminated) union to its member type, or None if not a union."""
    if typing.get_origin(tp) not in (typing.Union, types.UnionType):
        return None
    tags: dict[str, Any] = {}
    for member in typing.get_args(tp):
        if typing.get_origin(member) is typing.Annotated:
            for meta in typing.get_args(member)[1:]:
                if type(meta).__name__ == "Tag":
                    tags[meta.tag] = _strip(member)
        member = _strip(member)
        if _is_model(member) and "type" in member.model_fields:
            for value in typing.get_args(member.model_fields["type"].annotation):
                tags.setdefault(value, member)
    return tags


def _clean_loc(loc: tuple[Any, ...]) -> tuple[PathKey, Any]:
    """Drop union tags and type labels from a pydantic ``loc``; also return the parent type."""
    tp: Any = FlowSpec
    path: list[str | int] = []
    parent: Any = None
    for element in loc:
        tp = _strip(tp)
        consumed = False
        while (tags := _union_tags(tp)) is not None:  # an optional union nests in a union
            if element in tags:
                tp, consumed = tags[element], True
                break
            if isinstance(element, str) and ("[" in element or element in {"int", "str", "bool"}):
                tp, consumed = None, True
                break
            non_none = [m for m in typing.get_args(tp) if m is not type(None)]
            tp = _strip(non_none[0]) if len(non_none) == 1 else None
        if consumed:
            continue
        parent = tp
        if _is_model(tp) and element in tp.model_fields:
            tp = tp.model_fields[element].annotation
        elif isinstance(element, int) and typing.get_origin(tp) in (tuple, list):
            tp = typing.get_args(tp)[0]
        else:
            tp = None
        path.append(element)
    return tuple(path), parent
