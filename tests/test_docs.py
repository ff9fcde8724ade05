"""The docs stay true: the generated spec reference and JSON Schema are current and complete."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from flowspec.layers import ALL_OPS
from flowspec.layers.nets import NETS
from flowspec.layers.transforms import TRANSFORMS
from flowspec.spec.bases import BASES
from flowspec.spec.limits import markdown_table
from flowspec.spec.reference import (
    BEGIN,
    END,
    LIMITS_BEGIN,
    LIMITS_END,
    json_schema,
    reference_markdown,
)
from tests.helpers import ROOT


def test_spec_reference_is_up_to_date() -> None:
    text = (ROOT / "docs" / "spec.md").read_text()
    block = BEGIN + text.split(BEGIN, 1)[1].split(END, 1)[0] + END
    assert block == reference_markdown(), (
        "run: python -m flowspec.spec.reference --write docs/spec.md"
    )


def test_json_schema_names_every_kind_net_transform_and_base() -> None:
    schema = json_schema()
    models = [op.spec for op in ALL_OPS]
    models += [d.spec for d in NETS.values()] + [d.spec for d in TRANSFORMS.values()]
    models += [d.spec for d in BASES.values()]
    missing = [m.__name__ for m in models if m.__name__ not in schema["$defs"]]
    assert not missing
    assert schema["additionalProperties"] is False


def test_reference_has_a_section_per_kind() -> None:
    text = reference_markdown()
    for op in ALL_OPS:
        assert f"#### `{op.kind}`" in text and f"| `{op.kind}` |" in text


def test_limits_doc_lists_every_limit_and_its_example_runs() -> None:
    import subprocess
    import sys

    text = (ROOT / "docs" / "limits.md").read_text()
    table = text.split(LIMITS_BEGIN, 1)[1].split(LIMITS_END, 1)[0].strip()
    assert table == markdown_table(), (
        "run: python -m flowspec.spec.reference --limits docs/limits.md"
    )
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.split() == ["20000", "100"]


# Python blocks of the docs that run as written (the others need a run's files or a GPU).
RUNNABLE = [("README.md", 0), ("README.md", 1), ("docs/spec.md", 0), ("docs/training.md", 0),
            ("docs/training.md", 1), ("docs/export.md", 0),
            ("docs/performance.md", 0)]  # fmt: skip


def _python_blocks(path: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / path).read_text(), re.S)


@pytest.mark.parametrize(("path", "index"), RUNNABLE, ids=[f"{p}-{i}" for p, i in RUNNABLE])
def test_docs_python_examples_run(path: str, index: int, tmp_path: Path) -> None:
    """Each block runs in a fresh directory (with the repository's specs/ beside it), as a
    reader would paste it; /tmp/ paths are redirected into that directory."""
    (tmp_path / "specs").symlink_to(ROOT / "specs")
    code = _python_blocks(path)[index].replace("/tmp/", f"{tmp_path}/")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1",
                            "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_conditional_page_example_runs_and_its_graph_excerpt_is_true(monkeypatch: Any) -> None:
    import flowspec

    monkeypatch.chdir(ROOT)
    text = (ROOT / "docs" / "conditional.md").read_text()
    namespace: dict[str, Any] = {}
    exec(text.split("```python\n", 1)[1].split("```", 1)[0], namespace)
    assert namespace["upper"].shape == (500, 2) and namespace["mixed"].shape == (4, 2)
    assert namespace["log_p"].shape == (8,)
    assert (namespace["back"] - namespace["x"][:8]).abs().max() < 1e-4
    excerpt = text.split("$ flowspec graph specs/conditional_moons.yaml\n", 1)[1].split("```")[0]
    shown = [line for line in excerpt.splitlines() if line.strip() != "..."]
    graph = flowspec.format_graph(flowspec.build_graph("specs/conditional_moons.yaml"))
    assert all(line in graph.splitlines() for line in shown), shown
