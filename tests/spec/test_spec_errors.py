"""Invalid specs: every problem reported at once, each with its code, spec path and line."""

from __future__ import annotations

from pathlib import Path

import pytest

import flowspec
from flowspec.errors import FlowspecError, GraphError, SpecError, codes_of
from flowspec.spec.upgrade import upgrade_spec
from tests.helpers import ROOT

FIXTURES = sorted((ROOT / "tests" / "fixtures" / "invalid").glob("*.yaml"))
VERIFIER = {code for code in codes_of(GraphError) if code.startswith("graph-")}


def _expectation(path: Path) -> tuple[str, str, int]:
    first = path.read_text().splitlines()[0]
    code, spec_path, line = first.split()[2:]
    return code, "" if spec_path == "-" else spec_path, int(line)


def test_every_spec_and_graph_code_has_a_fixture() -> None:
    """(The verifier's graph-* codes are tested on hand-broken graphs in tests/graph; a missing
    file and a file that is not UTF-8 text in their own tests.)"""
    covered = {_expectation(p)[0] for p in FIXTURES} | {"spec-missing", "spec-encoding"}
    assert covered == set(codes_of(SpecError)) | (set(codes_of(GraphError)) - VERIFIER)


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_invalid_spec_reports_code_path_and_line(path: Path) -> None:
    code, spec_path, line = _expectation(path)
    with pytest.raises(FlowspecError) as info:
        flowspec.build_graph(path)
    diag = info.value.diagnostics[0]
    assert (diag.code, diag.path) == (code, spec_path), info.value.format()
    assert diag.location is not None and diag.location.filename == str(path)
    assert diag.location.line == line, info.value.format()
    assert f"{path}:{line}:" in info.value.format()


def test_missing_file() -> None:
    with pytest.raises(SpecError) as info:
        flowspec.load_spec("no/such/spec.yaml")
    assert info.value.codes == ["spec-missing"]


def test_all_problems_reported_at_once_in_file_order() -> None:
    text = """flowspec: 1
input: {shape: [2]}
bogus: 1
base: {type: gaussian}
layers:
  - type: affine_coupling
    mask: frist_half
    net: {type: mlp, hiden: [3]}
  - type: permute
    order: revrse
"""
    with pytest.raises(SpecError) as info:
        flowspec.load_spec(text)
    found = [(d.code, d.path, d.location.line) for d in info.value.diagnostics]
    assert found == [
        ("unknown-key", "bogus", 3),
        ("unknown-type", "base.type", 4),
        ("bad-value", "layers.0.mask", 7),
        ("unknown-key", "layers.0.net.hiden", 8),
        ("bad-value", "layers.1.order", 10),
    ]
    hints = [d.hint for d in info.value.diagnostics]
    assert hints[2] == "did you mean 'first_half'?"
    assert hints[3] == "did you mean 'hidden'?"
    assert hints[4] == "did you mean 'reverse'?"


def test_unknown_layer_type_hint() -> None:
    with pytest.raises(SpecError) as info:
        flowspec.load_spec("flowspec: 1\ninput: {shape: [2]}\nlayers:\n  - type: afine_coupling\n")
    diag = info.value.diagnostics[0]
    assert diag.message == "unknown layer type 'afine_coupling'"
    assert diag.hint == "did you mean 'affine_coupling'?"
    assert diag.format().startswith("<string>:4:5: layers.0.type: error[unknown-type]")


def test_graph_errors_are_all_collected() -> None:
    text = """flowspec: 1
input: {shape: [3, 6, 6]}
levels:
  - squeeze: true
    steps:
      - {type: affine_coupling, mask: first_half, net: {type: glow_conv}}
    split: true
"""
    with pytest.raises(FlowspecError) as info:
        flowspec.build_graph(text)
    assert [(d.code, d.location.line) for d in info.value.diagnostics] == [("mask-rank", 6)]
    text2 = text.replace("mask: first_half", "mask: channel").replace("[3, 6, 6]", "[3, 2, 5]")
    with pytest.raises(FlowspecError) as info:
        flowspec.build_graph(text2)
    found = [(d.code, d.path, d.location.line) for d in info.value.diagnostics]
    assert found == [("squeeze-odd", "levels.0.squeeze", 4), ("split-odd", "levels.0.split", 7)]


def test_yaml_1_1_float_trap_is_handled() -> None:
    spec = flowspec.load_spec(
        "flowspec: 1\ninput: {shape: [2]}\nlayers: [{type: scale}]\ntrain: {lr: 1e-3}\n"
    )
    assert spec.train is not None and spec.train.lr == pytest.approx(1e-3)


def test_format_upgrades_run_in_order() -> None:
    """The upgrade loop applies one function per version until the target (today's table is
    empty: version 1 is the first format)."""
    steps = {
        1: lambda d: {**d, "flowspec": 2, "layers": [{"type": "scale"}]},
        2: lambda d: {**d, "flowspec": 3, "name": d["name"] + "-v3"},
    }
    data, problems = upgrade_spec({"flowspec": 1, "name": "old"}, target=3, upgrades=steps)
    assert problems == [] and data == {
        "flowspec": 3,
        "name": "old-v3",
        "layers": [{"type": "scale"}],
    }
    _, problems = upgrade_spec({"flowspec": 4}, target=3, upgrades=steps)
    assert [p.code for p in problems] == ["bad-version"]
