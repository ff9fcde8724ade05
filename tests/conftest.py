"""Fixtures shared by every test (helpers live in tests/helpers.py, op examples in
tests/catalogue.py)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
