"""The docs stay true: the generated spec reference is current and the README's code runs."""

from __future__ import annotations

from flowspec.spec.reference import BEGIN, END, json_schema, reference_markdown
from tests.conftest import ROOT


def test_spec_reference_is_up_to_date() -> None:
    text = (ROOT / "docs" / "spec.md").read_text()
    block = BEGIN + text.split(BEGIN, 1)[1].split(END, 1)[0] + END
    assert block == reference_markdown(), (
        "run: python -m flowspec.spec.reference --write docs/spec.md"
    )


def test_json_schema_names_every_layer_kind() -> None:
    schema = json_schema()
    assert "AffineCouplingSpec" in schema["$defs"] and "InvConvSpec" in schema["$defs"]
    assert schema["additionalProperties"] is False
