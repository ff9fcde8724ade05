"""docs/transformers.md stays true: its Python example runs, every YAML snippet builds into a
checked graph, the parameter counts it quotes for the shipped specs are the specs' own, and the
figures it shows are there."""

from __future__ import annotations

import re
from typing import Any

import pytest
import torch
import yaml

import flowspec
from tests.helpers import HUGE_SPECS, ROOT

TEXT = (ROOT / "docs" / "transformers.md").read_text()


def _blocks(language: str) -> list[str]:
    return [part.split("```", 1)[0] for part in TEXT.split(f"```{language}\n")[1:]]


@pytest.mark.parametrize("snippet", _blocks("yaml"))
def test_yaml_snippets_build(snippet: str) -> None:
    """Each snippet is a list of layers or a part of a spec on 8x8 images; patch tokens are
    made first when the snippet does not say how."""
    data = yaml.safe_load(snippet)
    spec: dict[str, Any] = {"flowspec": 1, "input": {"shape": [1, 8, 8]}}
    if isinstance(data, list):
        spec["layers"] = [{"type": "patchify", "patch": 2}, *data]
    else:
        spec.update(data)
        spec.setdefault("layers", [{"type": "patchify", "patch": 2}])
    assert flowspec.build_graph(spec).latent_size() == 64


def test_python_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    namespace: dict[str, Any] = {}
    (code,) = _blocks("python")
    exec(code, namespace)
    assert namespace["z"].shape == (8, 64) and namespace["logdet"].shape == (8,)
    samples = namespace["samples"]
    assert samples.shape == (4, 1, 8, 8) and torch.equal(samples, samples.round())
    assert type(namespace["block"]).__name__ == "TarFlowBlock"


def test_quoted_parameter_counts_are_the_specs_own() -> None:
    rows = re.findall(r"^\| `(\w+)` \| ([\d,]+) \|", TEXT, flags=re.M)
    assert {name for name, _ in rows} == {
        "tarflow_digits", "jet_digits", "tarflow_moons", "tarflow_imagenet64", "jet_imagenet64"
    }  # fmt: skip
    for name, quoted in rows:
        with torch.device("meta" if name in HUGE_SPECS else "cpu"):
            count = flowspec.compile(ROOT / "specs" / f"{name}.yaml").num_parameters()
        assert int(quoted.replace(",", "")) == count, name


def test_figures_exist() -> None:
    figures = re.findall(r"!\[[^\]]*\]\((figures/[\w.]+)\)", TEXT)
    assert len(figures) == 4
    assert all((ROOT / "docs" / f).stat().st_size > 1000 for f in figures)
