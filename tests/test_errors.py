"""The one table of diagnostic codes is complete and true: every code raised anywhere in the
package is in ``flowspec.errors.CODES`` (and nothing else is), every code has a test that
triggers it, and docs/errors.md is generated from the table."""

from __future__ import annotations

import ast
import re

from flowspec.errors import CODES
from flowspec.spec.reference import errors_markdown
from tests.helpers import ROOT

CODE = re.compile(r"^[a-z]+(?:-[a-z0-9]+)+$")
NOT_CODES = {"flowspec-weights", "utf-8"}  # a format tag, an encoding


def _string_constants(tree: ast.AST) -> set[str]:
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }


def test_every_code_in_the_package_is_in_the_table() -> None:
    found: set[str] = set()
    for path in (ROOT / "flowspec").rglob("*.py"):
        if path.name == "errors.py":
            continue
        found |= {s for s in _string_constants(ast.parse(path.read_text())) if CODE.match(s)}
    assert found - NOT_CODES == set(CODES)


def test_every_code_has_a_test_that_triggers_it() -> None:
    """Each code is asserted by some test, or is the expectation of an invalid-spec fixture."""
    texts = [
        p.read_text()
        for p in (ROOT / "tests").rglob("*")
        if p.suffix in (".py", ".yaml") and p.name != "test_errors.py"
    ]
    untested = [
        code
        for code in CODES
        if not any(f'"{code}"' in t or f"expect: {code} " in t or f"[{code}]" in t for t in texts)
    ]
    assert not untested


def test_errors_doc_is_generated_from_the_table() -> None:
    assert (ROOT / "docs" / "errors.md").read_text() == errors_markdown(), (
        "run: python -m flowspec.spec.reference --errors docs/errors.md"
    )
