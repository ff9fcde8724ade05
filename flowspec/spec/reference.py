"""The spec reference, generated from the schema so it cannot drift from the code.

``python -m flowspec.spec.reference`` prints the Markdown tables of ``docs/spec.md`` (layer kinds
from ``ALL_OPS``, conditioners, base distributions); ``--write docs/spec.md`` refreshes them in
place; ``--schema`` prints the JSON Schema of the whole format for editors (e.g. for the YAML
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

from flowspec.errors import GRAPH_CODES, SPEC_CODES, WARNING_CODES, WEIGHTS_CODES
from flowspec.ops import ALL_OPS
from flowspec.spec.models import (
    DiagNormalSpec,
    FlowSpec,
    InputSpec,
    LevelSpec,
    MixtureSpec,
    NormalSpec,
    RepeatSpec,
    SplitOptions,
)
from flowspec.spec.nets import NET_SPECS
from flowspec.spec.run import DataSpec, TrainSpec

_OP_NAMES = {op.spec.__name__ for op in ALL_OPS}

BEGIN = "<!-- BEGIN GENERATED REFERENCE (python -m flowspec.spec.reference) -->"
END = "<!-- END GENERATED REFERENCE -->"


def _plain_type(tp: Any) -> str:
    """A short human name for a type annotation (``int > 0``, ``list of layers``, ...)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        inner, bounds = _plain_type(args[0]), []
        for meta in args[1:]:
            for attr, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
                value = getattr(meta, attr, None)
                if value is not None:
                    bounds.append(f"{sym} {value}")
            if type(meta).__name__ == "Discriminator":
                return "layer"
        return f"{inner} {' '.join(bounds)}".strip()
    if origin is typing.Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        names = [_plain_type(a) for a in args if a is not type(None)]
        if any(a is type(None) for a in args):
            names.append("null")
        if all(name in _OP_NAMES or name == "RepeatSpec" for name in names):
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
                text += f" {sym} {value}"
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
    out += ["### Conditioner networks (`net: {type: ...}`)", ""]
    for net in NET_SPECS:
        out += _section(f"`{net.model_fields['type'].default}`", net)
    out += ["### Base distributions (`base: {type: ...}`)", ""]
    for base in (NormalSpec, DiagNormalSpec, MixtureSpec):
        out += _section(f"`{typing.get_args(base.model_fields['type'].annotation)[0]}`", base)
    out += ["### Training defaults (`data:` and `train:`)", ""]
    out += _section("`data`", DataSpec, skip=()) + _section("`train`", TrainSpec, skip=())
    out += ["### Diagnostic codes", ""]
    for title, codes in (
        ("Spec errors (`SpecError`)", SPEC_CODES),
        ("Graph errors (`GraphError`)", GRAPH_CODES),
        ("Warnings (mixing analysis)", WARNING_CODES),
        ("Weights-file errors (`WeightsError`)", WEIGHTS_CODES),
    ):
        out += [f"#### {title}", "", "| code | meaning |", "| --- | --- |"]
        out += [f"| `{code}` | {meaning} |" for code, meaning in codes.items()] + [""]
    out.append(END)
    return "\n".join(out)


def json_schema() -> dict[str, Any]:
    """JSON Schema of the spec format."""
    return FlowSpec.model_json_schema()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schema", action="store_true", help="print the JSON Schema instead")
    parser.add_argument("--write", metavar="MD", help="replace the generated block in this file")
    args = parser.parse_args()
    if args.write:
        path = Path(args.write)
        text = path.read_text(encoding="utf-8")
        head, rest = text.split(BEGIN, 1)
        path.write_text(head + reference_markdown() + rest.split(END, 1)[1], encoding="utf-8")
        return
    print(json.dumps(json_schema(), indent=2) if args.schema else reference_markdown(), flush=True)


if __name__ == "__main__":
    main()
