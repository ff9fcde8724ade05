"""The public API: every exported name resolves, and no submodule import shadows a function."""

from __future__ import annotations

import importlib
import pkgutil
import types

import flowspec


def test_every_exported_name_resolves() -> None:
    for name in flowspec.__all__:
        assert getattr(flowspec, name) is not None, name


def test_submodule_imports_do_not_shadow_public_functions() -> None:
    for info in pkgutil.walk_packages(flowspec.__path__, "flowspec."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    for name in ("compile", "load", "save", "build_graph", "load_spec", "format_graph"):
        assert isinstance(getattr(flowspec, name), types.FunctionType), name
