"""The public API and the package's shape: exports, ``__all__``, layering, ``python -m``."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import subprocess
import sys
import types

import pytest

import flowspec
from tests.helpers import ROOT

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(flowspec.__path__, "flowspec.")
    if not info.name.endswith("__main__")
)
# Stages from the bottom up: a package may import only from packages listed before it (and
# errors/limits/version, which every package may use).
LAYERS = ["layers", "spec", "graph", "nn", "data", "api", "io", "exporters", "training", "cli"]


@pytest.mark.parametrize("name", sorted(flowspec.__all__))
def test_every_exported_name_resolves(name: str) -> None:
    value = getattr(flowspec, name)
    assert value is not None and not isinstance(value, types.ModuleType), name
    if callable(value) and not isinstance(value, type):
        assert (value.__doc__ or "").strip(), f"flowspec.{name} has no docstring"


def test_submodule_imports_do_not_shadow_public_functions() -> None:
    for name in MODULES:
        importlib.import_module(name)
    for name in ("compile", "load", "save", "build_graph", "load_spec", "format_graph", "train"):
        assert isinstance(getattr(flowspec, name), types.FunctionType), name


@pytest.mark.parametrize("name", MODULES)
def test_every_module_declares_all(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names what it does not define: {missing}"


def _imported_packages(path: str) -> set[str]:
    tree = ast.parse((ROOT / path).read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("flowspec."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("flowspec.")}
    return found


@pytest.mark.parametrize("name", MODULES)
def test_no_upward_imports(name: str) -> None:
    """Each stage imports only from stages below it: no import cycles between packages."""
    parts = name.split(".")
    own = parts[1]
    if own not in LAYERS:
        return
    path = inspect.getfile(importlib.import_module(name)).split("/flowspec/", 1)[1]
    above = set(LAYERS[LAYERS.index(own) + 1 :])
    upward = _imported_packages(f"flowspec/{path}") & above
    assert not upward, f"{name} imports from {sorted(upward)}, a stage above it"


def test_python_dash_m_flowspec_runs_the_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "flowspec", "validate", "specs/nice_moons.yaml"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 0 and "specs/nice_moons.yaml: ok" in out.stdout, out.stderr
