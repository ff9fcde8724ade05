"""The registry: every layer kind is two files of the same name, and every table's torch side
has the same rows as its torch-free side."""

from __future__ import annotations

import inspect

import pytest

from flowspec.layers import ALL_OPS, OPS
from flowspec.layers.nets import NETS
from flowspec.layers.transforms import TRANSFORMS
from flowspec.nn import bases as nn_bases
from flowspec.nn import nets as nn_nets
from flowspec.nn import passes as nn_passes
from flowspec.nn import transforms as nn_transforms
from flowspec.spec.bases import BASES
from flowspec.spec.passes import PASS_SUMMARIES
from tests.helpers import ROOT


@pytest.mark.parametrize("op", ALL_OPS, ids=lambda op: op.kind)
def test_layer_kind_has_both_files_and_a_builder(op: object) -> None:
    name = op.module_name
    assert (ROOT / "flowspec" / "layers" / f"{name}.py").is_file()
    assert (ROOT / "flowspec" / "nn" / f"{name}.py").is_file()
    build = op.builder()
    assert list(inspect.signature(build).parameters) == ["spec", "in_shape", "params"]
    assert build.__module__ == f"flowspec.nn.{name}"


def test_every_layers_file_is_a_kind_or_a_table() -> None:
    """layers/*.py holds records of kinds, plus the shared base, bits, cost types, masks and
    tables."""
    shared = {"__init__", "base", "bits", "cost", "masks", "nets", "transforms"}
    files = {p.stem for p in (ROOT / "flowspec" / "layers").glob("*.py")}
    assert files - shared == {op.module_name for op in ALL_OPS}
    assert len(OPS) == len(ALL_OPS)  # kinds are unique


@pytest.mark.parametrize(
    ("torch_free", "torch_side"),
    [
        (set(NETS), set(nn_nets.NETS)),
        (set(TRANSFORMS), set(nn_transforms.TRANSFORMS)),
        (set(BASES), set(nn_bases.BASES)),
        (set(PASS_SUMMARIES), set(nn_passes.PASSES)),
    ],
    ids=["nets", "transforms", "bases", "passes"],
)
def test_tables_have_the_same_rows_on_both_sides(torch_free: set, torch_side: set) -> None:
    assert torch_free == torch_side
