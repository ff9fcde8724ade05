"""The docs stay true: the generated spec reference and JSON Schema are current and complete."""

from __future__ import annotations

from flowspec.layers import ALL_OPS
from flowspec.layers.nets import NETS
from flowspec.layers.transforms import TRANSFORMS
from flowspec.spec.bases import BASES
from flowspec.spec.reference import BEGIN, END, json_schema, reference_markdown
from tests.helpers import ROOT


def test_spec_reference_is_up_to_date() -> None:
    text = (ROOT / "docs" / "spec.md").read_text()
    block = BEGIN + text.split(BEGIN, 1)[1].split(END, 1)[0] + END
    assert block == reference_markdown(), (
        "run: python -m flowspec.spec.reference --write docs/spec.md"
    )


def test_json_schema_names_every_kind_net_transform_and_base() -> None:
    schema = json_schema()
    models = [op.spec for op in ALL_OPS]
    models += [d.spec for d in NETS.values()] + [d.spec for d in TRANSFORMS.values()]
    models += [d.spec for d in BASES.values()]
    missing = [m.__name__ for m in models if m.__name__ not in schema["$defs"]]
    assert not missing
    assert schema["additionalProperties"] is False


def test_reference_has_a_section_per_kind() -> None:
    text = reference_markdown()
    for op in ALL_OPS:
        assert f"#### `{op.kind}`" in text and f"| `{op.kind}` |" in text
