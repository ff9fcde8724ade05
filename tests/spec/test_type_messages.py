"""Type errors say what the field expects, with an example, located like every diagnostic."""

from __future__ import annotations

import pytest

import flowspec
from flowspec.errors import SpecError

HEAD = "flowspec: 1\ninput: {shape: [2]}\n"
CASES = [  # (YAML after the head, spec path, message, hint)
    ("layers:\n  - {type: affine_coupling, net: {type: mlp, hidden: 64}}\n",
     "layers.0.net.hidden", "expected a list of integers > 0, got 64",
     "for example 'hidden: [64, 64]'"),
    ("layers:\n  - {type: actnorm, data_init: maybe}\n", "layers.0.data_init",
     "expected true or false, got the string 'maybe'", "for example 'data_init: true'"),
    ("layers:\n  - {type: dequantize, levels: 1}\n", "layers.0.levels",
     "expected an integer >= 2 and <= 65536, got 1", "for example 'levels: 256'"),
    ("layers:\n  - {type: affine_coupling, net: 5}\n", "layers.0.net",
     "expected a mapping with a type (mlp, glow_conv, resnet, vit), got 5",
     "for example 'net: {type: mlp}'"),
    ("layers: [{type: scale}]\ntrain: {lr: -1}\n", "train.lr", "expected a number > 0, got -1",
     "for example 'lr: 0.001'"),
    ("layers: [{type: scale}]\ntrain: {epochs: 1.5}\n", "train.epochs",
     "expected an integer > 0 or null, got 1.5", "for example 'epochs: 20'"),
    ("layers: [{type: scale}]\ndata: {name: 5}\n", "data.name", "expected a string, got 5",
     "for example 'name: moons'"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "path", "message", "hint"), CASES, ids=[c[1] for c in CASES])
def test_type_errors_say_what_is_expected(body: str, path: str, message: str, hint: str) -> None:
    with pytest.raises(SpecError) as exc:
        flowspec.load_spec(HEAD + body)
    (diag,) = exc.value.diagnostics
    assert (diag.code, diag.path, diag.message, diag.hint) == ("bad-value", path, message, hint)
    assert diag.location is not None and diag.location.line == 3 + body.count("\n") - 1
    assert "Input should be" not in exc.value.format()


def test_shape_of_the_input_gets_an_example() -> None:
    with pytest.raises(SpecError) as exc:
        flowspec.load_spec("flowspec: 1\ninput: {shape: 2}\nlayers: [{type: scale}]\n")
    diag = exc.value.diagnostics[0]
    assert diag.message == "expected a list of integers > 0, got 2"
    assert diag.hint == "for example 'shape: [2]'" and str(diag.location) == "<string>:2:9"
