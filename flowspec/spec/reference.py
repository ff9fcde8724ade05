"""The spec reference, generated from the schema so it cannot drift from the code.

``python -m flowspec.spec.reference`` prints the Markdown tables of ``docs/spec.md`` (layer kinds
from ``ALL_OPS``, coupling transforms, conditioners, base distributions); ``--write docs/spec.md``
refreshes them in place; ``--errors docs/errors.md`` writes the table of diagnostic codes;
``--limits docs/limits.md`` refreshes the table of resource limits;
``--schema`` prints the JSON Schema of the whole format for editors (e.g. for the YAML
language server's ``# yaml-language-server: $schema=`` comment).
"""

from __future__ import annotations

import argparse
import json
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from flowspec.errors import CODES, codes_of
from flowspec.layers import ALL_OPS
from flowspec.layers.autoregressive import MADESpec
from flowspec.layers.base import type_tag
from flowspec.layers.nets import NETS
from flowspec.layers.transforms import TRANSFORMS
from flowspec.spec.bases import BASES
from flowspec.spec.context import ClassContextSpec, VectorContextSpec
from flowspec.spec.limits import markdown_table
from flowspec.spec.models import FlowSpec, InputSpec, LevelSpec, RepeatSpec, SplitOptions
from flowspec.spec.training import DataSpec, TrainSpec

__all__ = [
    "BEGIN",
    "END",
    "LIMITS_BEGIN",
    "LIMITS_END",
    "errors_markdown",
    "json_schema",
    "model_table",
    "reference_markdown",
]

_OP_NAMES = {op.spec.__name__ for op in ALL_OPS}

BEGIN = "<!-- BEGIN GENERATED REFERENCE (python -m flowspec.spec.reference) -->"
END = "<!-- END GENERATED REFERENCE -->"
LIMITS_BEGIN = "<!-- BEGIN LIMITS (python -m flowspec.spec.reference --limits docs/limits.md) -->"
LIMITS_END = "<!-- END LIMITS -->"


def _number(value: Any) -> str:
    """A bound as written in the tables: large powers of two as ``2^63``."""
    if isinstance(value, int) and value >= 2**20 and value & (value - 1) == 0:
        return f"2^{value.bit_length() - 1}"
    return str(value)


def _plain_type(tp: Any) -> str:
    """A short human name for a type annotation (``int > 0``, ``list of layers``, ...)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        inner, bounds = _plain_type(args[0]), []
        for meta in args[1:]:
            for attr, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
                value = getattr(meta, attr, None)
                if value is not None:
                    bounds.append(f"{sym} {_number(value)}")
            if type(meta).__name__ == "Discriminator":
                return inner
        return f"{inner} {' '.join(bounds)}".strip()
    if origin is typing.Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        names = [_plain_type(a) for a in args if a is not type(None)]
        if any(a is type(None) for a in args):
            names.append("null")
        if all(name in _OP_NAMES or name in ("RepeatSpec", "layer") for name in names):
            return "layer"
        return " | ".join(dict.fromkeys(names))
    if origin in (tuple, list):
        return f"list of {_plain_type(args[0])}"
    if isinstance(tp, type):
        return tp.__name__
    return str(tp)


def _type_name(field: Any) -> str:
    text = _plain_type(field.annotation)
    for meta in field.metadata:
        for attr, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            value = getattr(meta, attr, None)
            if value is not None:
                text += f" {sym} {_number(value)}"
    return "`" + text.replace("|", "\\|") + "`"


def _default(field: Any) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    value = field.default_factory() if field.default_factory is not None else field.default
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return f"`{json.dumps(value)}`" if not isinstance(value, str) else f"`{value}`"


def model_table(model: type[BaseModel], skip: tuple[str, ...] = ("type",)) -> list[str]:
    rows = ["| key | type | default |", "| --- | --- | --- |"]
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        rows.append(f"| `{name}` | {_type_name(field)} | {_default(field)} |")
    return rows if len(rows) > 2 else ["(no keys besides `type`)"]


def _section(
    title: str, model: type[BaseModel], summary: str = "", skip: tuple[str, ...] = ("type",)
) -> list[str]:
    doc = (model.__doc__ or "").strip()
    lines = [f"#### {title}", ""]
    if summary:
        lines += [summary, ""]
    if doc and not doc.startswith(model.__name__ + "("):
        lines += [" ".join(doc.split()), ""]
    return [*lines, *model_table(model, skip), ""]


def reference_markdown() -> str:
    """The generated part of docs/spec.md."""
    out = [BEGIN, "", "### Top level", ""]
    out += _section("`FlowSpec` (the file)", FlowSpec, skip=())
    for title, model in (
        ("`input`", InputSpec),
        ("`repeat` block", RepeatSpec),
        ("`levels` item", LevelSpec),
        ("`split` options of a level", SplitOptions),
        ("`context` as a vector", VectorContextSpec),
        ("`context` as class labels", ClassContextSpec),
    ):
        out += _section(title, model, skip=())
    out += [
        "### Layer kinds (`type:`)",
        "",
        "| type | role | what it does |",
        "| --- | --- | --- |",
    ]
    out += [f"| `{op.kind}` | {op.role} | {op.summary} |" for op in ALL_OPS]
    out.append("")
    for op in ALL_OPS:
        out += _section(f"`{op.kind}`", op.spec, op.summary)
    out += ["### Coupling transforms (`transform: {type: ...}`)", ""]
    for row in TRANSFORMS.values():
        out += _section(f"`{row.type}`", row.spec, row.summary)
    out += ["### Conditioner networks (`net: {type: ...}`)", ""]
    for net in NETS.values():
        out += _section(f"`{net.type}`", net.spec)
    out += _section("`made` (the `net` of `autoregressive` layers)", MADESpec)
    out += ["### Base distributions (`base: {type: ...}`)", ""]
    for base in BASES.values():
        out += _section(f"`{type_tag(base.spec)}`", base.spec)
    out += ["### Training defaults (`data:` and `train:`)", ""]
    out += _section("`data`", DataSpec, skip=()) + _section("`train`", TrainSpec, skip=())
    out += [
        "### Diagnostic codes",
        "",
        "Every code, with the error class that carries it: [errors.md](errors.md).",
        "",
        END,
    ]
    return "\n".join(out)


def errors_markdown() -> str:
    """``docs/errors.md``: every diagnostic code by error class, from :data:`CODES`."""
    classes: dict[str, Any] = {}
    for info in CODES.values():
        classes.setdefault(info.error.__name__ if info.error else "warning", info.error)
    out = [
        "# Diagnostic codes",
        "",
        "<!-- generated by python -m flowspec.spec.reference --errors docs/errors.md -->",
        "",
        "Every problem flowspec reports carries one of these codes, printed as",
        "`file:line:col: path: error[code]: message` with a hint. Errors exit the command with",
        "status 1 and are raised in Python as the class named in each section (all subclasses of",
        "`FlowspecError`); warnings are printed and do not fail.",
        "",
    ]
    for name, error in classes.items():
        title = "Warnings (mixing analysis)" if error is None else f"`{name}`"
        doc = "" if error is None else " ".join((error.__doc__ or "").split())
        out += [f"## {title}", ""] + ([doc, ""] if doc else [])
        out += ["| code | meaning |", "| --- | --- |"]
        out += [f"| `{code}` | {meaning} |" for code, meaning in codes_of(error).items()] + [""]
    return "\n".join(out).rstrip() + "\n"


def json_schema() -> dict[str, Any]:
    """JSON Schema of the spec format."""
    return FlowSpec.model_json_schema()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schema", action="store_true", help="print the JSON Schema instead")
    parser.add_argument("--write", metavar="MD", help="replace the generated block in this file")
    parser.add_argument("--errors", metavar="MD", help="write the table of error codes here")
    parser.add_argument("--limits", metavar="MD", help="replace the table of limits in this file")
    args = parser.parse_args()
    if args.limits:
        path = Path(args.limits)
        text = path.read_text(encoding="utf-8")
        head, rest = text.split(LIMITS_BEGIN, 1)
        table = f"{LIMITS_BEGIN}\n{markdown_table()}\n{LIMITS_END}"
        path.write_text(head + table + rest.split(LIMITS_END, 1)[1], encoding="utf-8")
        return
    if args.errors:
        Path(args.errors).write_text(errors_markdown(), encoding="utf-8")
        return
    if args.write:
        path = Path(args.write)
        text = path.read_text(encoding="utf-8")
        head, rest = text.split(BEGIN, 1)
        path.write_text(head + reference_markdown() + rest.split(END, 1)[1], encoding="utf-8")
        return
    print(json.dumps(json_schema(), indent=2) if args.schema else reference_markdown(), flush=True)


if __name__ == "__main__":
    main()
