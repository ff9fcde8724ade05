"""Fixtures shared by every test (helpers live in tests/helpers.py, op examples in
tests/catalogue.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture()
def model(tmp_path: Path) -> Path:
    """A saved flow of ``tests.helpers.WEIGHTS_SPEC`` after its data-dependent initialisation."""
    import flowspec
    from tests.helpers import WEIGHTS_SPEC

    flow = flowspec.compile(WEIGHTS_SPEC)
    with torch.no_grad():
        flow(torch.randn(256, 2))  # actnorm's data-dependent init and batchnorm statistics
    return flowspec.save(flow, tmp_path / "model.safetensors")
