"""Behaviour is unchanged: files written by flowspec 0.1 load and reproduce its numbers exactly.

``tests/fingerprints/record.py`` wrote, with flowspec 0.1, a perturbed model of every shipped
spec, its parameter count, and in float64 ``z``, ``logdet`` and 4 samples on fixed inputs.
Loading those files today must give the same numbers bit for bit with the optimisation passes
off, and to 1e-12 with them on (paper-size specs: the same parameter count and the same forward
pass of freshly compiled, identically seeded weights).
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import flowspec
from tests.fingerprints import record

COUNTS = json.loads((record.OUT / "parameters.json").read_text())
SPECS = {path.stem: path for path in record.spec_files()}


def test_every_shipped_spec_has_a_fingerprint() -> None:
    assert sorted(COUNTS) == sorted(SPECS)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_fingerprint_matches_flowspec_0_1(name: str) -> None:
    if name in record.LARGE:
        flow = record.prepare(SPECS[name])
        n = 2
    else:
        flow = flowspec.load(record.OUT / f"{name}.safetensors", passes=())
        n = 16
    assert flow.num_parameters() == COUNTS[name]
    expected = load_file(record.OUT / f"{name}.expected")
    got = record.fingerprint(flow, n)
    for key in ("x", "z", "logdet", "sample"):
        assert got[key].dtype == torch.float64
        assert torch.equal(got[key], expected[key]), f"{name}: {key} differs"
    if name not in record.LARGE:  # the optimisation passes: the same numbers to rounding
        optimised = record.fingerprint(flowspec.load(record.OUT / f"{name}.safetensors"), n)
        for key in ("z", "logdet", "sample"):
            assert torch.allclose(optimised[key], expected[key], rtol=1e-12, atol=1e-12), key
