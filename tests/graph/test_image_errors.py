"""Located graph errors of image flows: each code with its spec path, line, column and hint.

Each spec is inline YAML; the line the error must point at ends with ``# <-``, and the column is
that of the key the path names (for a list item, of the item).
"""

from __future__ import annotations

import pytest

import flowspec
from flowspec.errors import GraphError

# (code, path, key whose column is expected, hint fragment, spec)
CASES: list[tuple[str, str, str, str, str]] = [
    (
        "squeeze-odd",
        "levels.1.squeeze",
        "squeeze",
        "drop this squeeze",
        """flowspec: 1
input: {shape: [1, 4, 6]}
levels:
  - squeeze: true
    steps: [{type: actnorm}]
  - squeeze: true  # <-
    steps: [{type: actnorm}]
""",
    ),
    (
        "split-odd",
        "levels.0.split",
        "split",
        "squeeze first",
        """flowspec: 1
input: {shape: [3, 4, 4]}
levels:
  - steps: [{type: actnorm}]
    split: true  # <-
""",
    ),
    (
        "split-odd",
        "layers.1",
        "type",
        "squeeze first",
        """flowspec: 1
input: {shape: [3, 4, 4]}
layers:
  - type: invconv
  - type: split  # <-
    prior: learned
""",
    ),
    (
        "mask-empty",
        "levels.1.steps.0.mask",
        "mask",
        "larger than 1x1",
        """flowspec: 1
input: {shape: [2, 2, 2]}
levels:
  - squeeze: true
  - steps:
      - type: affine_coupling
        mask: checkerboard  # <-
        net_input: masked
        net: {type: glow_conv, channels: 4}
""",
    ),
    (
        "mask-empty",
        "layers.0.mask",
        "mask",
        "at least 2 channels",
        """flowspec: 1
input: {shape: [1, 4, 4]}
layers:
  - type: affine_coupling
    net: {type: glow_conv, channels: 4}
    mask: channel  # <-
""",
    ),
    (
        "shape-rank",
        "input.shape",
        "shape",
        "[1, 8, 8]",
        """flowspec: 1
name: grey
input:
  shape: [8, 8]  # <-
layers: [{type: actnorm}]
""",
    ),
    (
        "shape-rank",
        "levels.1.squeeze",
        "squeeze",
        "[C, H, W]",
        """flowspec: 1
input: {shape: [16]}
levels:
  - steps: [{type: actnorm}]
  - squeeze: true  # <-
""",
    ),
    (
        "shape-rank",
        "layers.1.type",
        "type",
        "[C, H, W]",
        """flowspec: 1
input: {shape: [16]}
layers:
  - {type: actnorm}
  - {type: squeeze}  # <-
""",
    ),
    (
        "mask-rank",
        "layers.0.mask",
        "mask",
        "masks for vectors",
        """flowspec: 1
input: {shape: [4]}
layers:
  - type: affine_coupling
    mask: checkerboard  # <-
""",
    ),
    (
        "mask-rank",
        "levels.0.steps.1.mask",
        "mask",
        "masks for images",
        """flowspec: 1
input: {shape: [1, 4, 4]}
levels:
  - squeeze: true
    steps:
      - {type: invconv}
      - {type: affine_coupling, mask: alternating, net: {type: glow_conv}}  # <-
""",
    ),
    (
        "net-rank",
        "levels.0.steps.0.net.type",
        "type",
        "glow_conv or resnet",
        """flowspec: 1
input: {shape: [1, 4, 4]}
levels:
  - squeeze: true
    steps:
      - type: affine_coupling
        mask: channel
        net:
          type: mlp  # <-
          hidden: [32]
""",
    ),
    (
        "net-input",
        "layers.0.net_input",
        "net_input",
        "net_input: masked",
        """flowspec: 1
input: {shape: [2, 4, 4]}
layers:
  - type: affine_coupling
    mask: checkerboard
    net: {type: resnet, channels: 8, blocks: 1}
    net_input: half  # <-
""",
    ),
    (
        "mask-length",
        "layers.0.mask",
        "mask",
        "one 0/1 per element",
        """flowspec: 1
input: {shape: [1, 2, 2]}
layers:
  - type: affine_coupling
    mask: [1, 0, 1]  # <-
    net: {type: glow_conv, channels: 4}
    net_input: masked
""",
    ),
]


def expected_position(text: str, key: str) -> tuple[int, int]:
    """1-based line of the ``# <-`` marker and column of ``key`` on that line."""
    lines = text.splitlines()
    line = next(i for i, s in enumerate(lines) if s.rstrip().endswith("# <-"))
    return line + 1, lines[line].index(key) + 1


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}:{c[1]}" for c in CASES])
def test_error_code_path_and_line(case: tuple[str, str, str, str, str]) -> None:
    code, path, key, hint, text = case
    with pytest.raises(GraphError) as info:
        flowspec.build_graph(text)
    (diag,) = info.value.diagnostics
    assert (diag.code, diag.path) == (code, path)
    assert diag.location is not None and diag.location.filename == "<string>"
    assert (diag.location.line, diag.location.column) == expected_position(text, key)
    assert hint in (diag.hint or "")
    assert f"<string>:{diag.location.line}:{diag.location.column}: {path}: " in str(info.value)


def test_all_image_errors_reported_at_once() -> None:
    text = """flowspec: 1
input: {shape: [1, 6, 6]}
levels:
  - squeeze: true
    steps:
      - {type: affine_coupling, mask: checkerboard, net: {type: mlp}}
    split: true
  - squeeze: true
    split: true
  - split: true
"""
    with pytest.raises(GraphError) as info:
        flowspec.build_graph(text)
    found = [(d.code, d.path, d.location.line) for d in info.value.diagnostics if d.location]
    assert found == [
        ("net-rank", "levels.0.steps.0.net.type", 6),
        ("net-input", "levels.0.steps.0.net_input", 6),
        ("squeeze-odd", "levels.1.squeeze", 8),
        ("split-odd", "levels.2.split", 10),
    ]


def test_the_fixed_spec_builds() -> None:
    """The shapes of the cases above, made valid, raise nothing: the checks are not always on."""
    text = """flowspec: 1
input: {shape: [1, 4, 4]}
levels:
  - steps:
      - {type: affine_coupling, mask: checkerboard, net_input: masked, net: {type: resnet}}
  - squeeze: true
    steps:
      - {type: affine_coupling, mask: channel, net: {type: glow_conv, channels: 4}}
    split: true
"""
    graph = flowspec.build_graph(text)
    assert [shape for _, shape in graph.latent_shapes()] == [(2, 2, 2), (2, 2, 2)]
