"""``vary:`` per-repetition values in repeat blocks: what each repetition gets, and every problem
located at the vary entry (key, list, or the one bad value)."""

from __future__ import annotations

import pytest

import flowspec
from flowspec.errors import GraphError, SpecError
from flowspec.spec.models import FlowSpec

DEEP_SHALLOW = """flowspec: 1
input: {shape: [1, 4, 4]}
layers:
  - {type: patchify, patch: 2}
  - repeat: 4
    body:
      - {type: tarflow, width: 16, heads: 2, order: alternating}
    vary:
      depth: [8, 2, 2, 2]          # STARFlow's deep-shallow stack
"""


def _line(text: str, marker: str) -> tuple[int, int]:
    lines = text.splitlines()
    i = next(i for i, s in enumerate(lines) if marker in s)
    return i + 1, lines[i].index(marker) + 1


def test_deep_shallow_stack_without_copying_the_block() -> None:
    graph = flowspec.build_graph(DEEP_SHALLOW)
    blocks = [op for op in graph.ops() if op.kind == "tarflow"]
    assert [op.spec.depth for op in blocks] == [8, 2, 2, 2]
    assert [op.params["reverse"] for op in blocks] == [False, True, False, True]
    assert {op.spec.width for op in blocks} == {16} and blocks[1].path == "layers.1.body.0"
    flow = flowspec.compile(DEEP_SHALLOW)
    assert [len(step.module.net.blocks) for step in flow.steps[1:]] == [8, 2, 2, 2]


def test_keys_name_body_items_nested_keys_and_nested_blocks() -> None:
    text = """flowspec: 1
input: {shape: [4]}
layers:
  - repeat: 2
    body:
      - {type: affine_coupling, mask: alternating, net: {type: mlp, hidden: [8, 8]}}
      - repeat: 1
        body: [{type: actnorm}]
    vary:
      0.net.hidden: [[16, 16], [4]]
      0.log_scale: [tanh, sigmoid]
      1.repeat: [1, 3]
"""
    ops = list(flowspec.build_graph(text).ops())
    couplings = [op for op in ops if op.kind == "affine_coupling"]
    assert [op.spec.net.hidden for op in couplings] == [(16, 16), (4,)]
    assert [op.spec.log_scale for op in couplings] == ["tanh", "sigmoid"]
    assert [op.kind for op in ops].count("actnorm") == 1 + 3
    # a list index inside a key: item 1 of hidden only
    one = text.replace("0.net.hidden: [[16, 16], [4]]", "0.net.hidden.1: [3, 5]")
    hidden = [op.spec.net.hidden for op in flowspec.build_graph(one).ops() if op.kind != "actnorm"]
    assert hidden == [(8, 3), (8, 5)]


def test_a_varied_spec_round_trips_through_a_weights_file(tmp_path) -> None:
    flow = flowspec.compile(DEEP_SHALLOW)
    loaded = flowspec.load(flowspec.save(flow, tmp_path / "m.safetensors"))
    assert loaded.spec.layers[1].vary == {"depth": (8, 2, 2, 2)}
    assert loaded.num_parameters() == flow.num_parameters()


@pytest.mark.parametrize(
    ("written", "code", "path", "offset"),
    [
        # (the vary line as written, code, spec path, column of the error within the line)
        ("depth: [8, 2, 2]", "vary-length", "layers.1.vary.depth", 0),
        ("2.depth: [8, 2, 2, 2]", "vary-key", "layers.1.vary.2.depth", 0),
        ("net: [1, 2, 3, 4]", "vary-key", "layers.1.vary.net", 0),
        ("depth: [8, 2, 0, 2]", "bad-value", "layers.1.vary.depth.2", len("depth: [8, 2, ")),
    ],
)
def test_vary_problems_are_located(written: str, code: str, path: str, offset: int) -> None:
    text = DEEP_SHALLOW.replace("depth: [8, 2, 2, 2]", written)
    with pytest.raises(SpecError) as info:
        flowspec.load_spec(text)
    (diag,) = info.value.diagnostics
    assert (diag.code, diag.path) == (code, path), diag
    line, column = _line(text, written)
    assert (diag.location.line, diag.location.column) == (line, column + offset)
    if code == "bad-value":
        assert "repetition 2" in diag.message and "greater than 0" in diag.message


def test_a_graph_problem_of_a_varied_value_points_at_that_value() -> None:
    text = DEEP_SHALLOW.replace("depth: [8, 2, 2, 2]", "heads: [2, 2, 3, 2]")
    with pytest.raises(GraphError) as info:
        flowspec.build_graph(text)
    (diag,) = info.value.diagnostics
    assert (diag.code, diag.path) == ("attention-heads", "layers.1.vary.heads.2")
    line, column = _line(text, "heads: [2, 2, 3, 2]")
    assert (diag.location.line, diag.location.column) == (line, column + len("heads: [2, 2, "))


def test_several_body_items_need_an_index() -> None:
    text = DEEP_SHALLOW.replace(
        "- {type: tarflow, width: 16, heads: 2, order: alternating}",
        "- {type: tarflow, width: 16, heads: 2}\n      - {type: permute}",
    )
    with pytest.raises(SpecError) as info:
        flowspec.load_spec(text)
    assert info.value.codes == ["vary-key"] and "index" in info.value.diagnostics[0].message
    fixed = flowspec.build_graph(text.replace("depth: [", "0.depth: ["))
    assert [op.spec.depth for op in fixed.ops() if op.kind == "tarflow"] == [8, 2, 2, 2]


def test_a_spec_built_in_python_is_checked_too() -> None:
    spec = FlowSpec.model_validate(
        {
            "input": {"shape": (4,)},
            "layers": ({"repeat": 2, "body": ({"type": "actnorm"},), "vary": {"data_init": (1,)}},),
        }
    )
    with pytest.raises(SpecError) as info:
        flowspec.build_graph(spec)
    assert info.value.codes == ["vary-length"]
