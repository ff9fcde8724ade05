"""A standing fuzz test: specs made by mutating the shipped ones (integer leaves set to huge,
zero or negative values, values of the wrong type, keys dropped or unknown, layer types and
masks swapped, list items moved), given as YAML text or as a dict.

Every outcome is a success or a :class:`~flowspec.errors.FlowspecError` whose diagnostics are
all located (file:line:col for YAML text), within a time and memory budget; and every spec that
compiles (small enough to check quickly) passes the float64 oracles on inputs from its domain:
both round trips, the log-determinant against autograd and, for dequantized flows, integer data
back exactly. The default run is a few seconds of derandomised examples; the slow run explores
many more (``pytest -m slow tests/test_fuzz.py``).
"""

from __future__ import annotations

import copy
import math
import resource
import time
from typing import Any

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flowspec
from flowspec.errors import FlowspecError
from flowspec.layers import OPS
from flowspec.layers.masks import MASKS
from flowspec.nn.oracles import (
    example_context,
    example_inputs,
    perturb_parameters,
    run_oracles,
)
from flowspec.spec.source import read_source
from tests.helpers import SPEC_FILES

SHIPPED = [read_source(path).data for path in SPEC_FILES]
SECONDS = 15.0  # CPU seconds per example to read, validate and build the graph (or fail, located)
MEMORY_KB = 1_500_000  # growth of the peak resident memory over a whole run

HUGE = st.sampled_from([0, -1, -(10**9), 2**31, 2**63, 10**9, 10**12, 10**30, 10**100])
WRONG = st.sampled_from(
    [True, False, None, "yes", "010", "1:30", 1.5, 1e300, float("nan"), float("inf"), [], {}]
)


def _paths(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path of a plain data tree (lists and dicts), the root excluded."""
    found = []
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(
        data, list
    ) else []  # fmt: skip
    for key, value in items:
        found.append((*path, key))
        found += _paths(value, (*path, key))
    return found


def _parent(data: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        data = data[key]
    return data


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    data = copy.deepcopy(draw(st.sampled_from(SHIPPED)))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(data)
        path = draw(st.sampled_from(paths))
        parent, key = _parent(data, path), path[-1]
        value = parent[key]
        how = draw(st.sampled_from(["huge", "wrong", "drop", "unknown", "type", "mask", "move"]))
        if how == "huge" and isinstance(value, int):
            parent[key] = draw(HUGE)
        elif how == "wrong":
            parent[key] = draw(WRONG)
        elif how == "drop":
            del parent[key]
        elif how == "unknown" and isinstance(value, dict):
            value[draw(st.sampled_from(["hiden", "mask_", "typ", "blocks"]))] = 3
        elif how == "type" and key == "type":
            parent[key] = draw(st.sampled_from(sorted(OPS)))
        elif how == "mask" and key == "mask":
            parent[key] = draw(st.sampled_from([*sorted(MASKS), [1, 0], [1, 1, 0, 0]]))
        elif how == "move" and isinstance(value, list) and len(value) > 1:
            value.insert(draw(st.integers(0, len(value) - 1)), value.pop())
    return data


def _small(graph: Any) -> bool:
    """Flows checked numerically: few inputs, few ops, narrow conditioners."""
    widths = [getattr(op.spec, "net", None) for op in graph.ops()]
    wide = any(
        max((*getattr(net, "hidden", ()), getattr(net, "channels", 0))) > 256
        or getattr(net, "blocks", 0) > 4
        for net in widths
        if net is not None
    )
    return math.prod(graph.input_shape) <= 64 and sum(1 for _ in graph.ops()) <= 80 and not wide


def _check(data: dict[str, Any], as_text: bool) -> None:
    spec: Any = data
    if as_text:
        try:
            spec = yaml.safe_dump(data, sort_keys=False)
        except (yaml.YAMLError, ValueError):  # e.g. NaN keys: not a spec anyone can write
            return
    start = time.process_time()
    try:
        graph = flowspec.build_graph(spec)
    except FlowspecError as exc:
        assert exc.diagnostics
        for diag in exc.diagnostics:
            assert diag.code and diag.message
            if as_text:
                assert diag.location is not None, diag.format()
        return
    finally:
        assert time.process_time() - start < SECONDS
    if not _small(graph):
        return
    try:
        flow = flowspec.compile(graph.spec).double()
    except FlowspecError as exc:  # a limit on parameters, located
        assert exc.codes == ["limit-exceeded"] and exc.diagnostics[0].location is not None
        return
    with torch.no_grad():
        gen = torch.Generator().manual_seed(0)
        flow(example_inputs(flow, 64, gen), example_context(flow, 64, gen))
    perturb_parameters(flow, scale=0.05, seed=0)
    results = run_oracles(flow, n=2, seed=0)
    assert all(r.ok for r in results), [(r.name, r.error, r.tolerance) for r in results]


def _run(data: dict[str, Any], as_text: bool) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _check(data, as_text)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < MEMORY_KB


QUICK = settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LONG = settings(QUICK, max_examples=1500, derandomize=False)


@QUICK
@given(mutated(), st.booleans())
def test_mutated_shipped_specs(data: dict[str, Any], as_text: bool) -> None:
    _run(data, as_text)


@pytest.mark.slow
@LONG
@given(mutated(), st.booleans())
def test_mutated_shipped_specs_long(data: dict[str, Any], as_text: bool) -> None:
    _run(data, as_text)
