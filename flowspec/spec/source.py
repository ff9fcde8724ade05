"""Read a YAML spec once, keeping the position of every key and value.

PyYAML composes the node tree (each node carries its ``start_mark``) and constructs plain Python
data from the same tree, so the data and the positions cannot disagree. Positions are indexed by
key path (``("layers", 2, "mask")``) and looked up by the longest known prefix of a path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flowspec.errors import Diagnostic, Location, SpecError

__all__ = ["PathKey", "Source", "read_source", "source_from_data", "source_from_text"]

PathKey = tuple[str | int, ...]


class _SpecLoader(yaml.SafeLoader):
    """Safe loader that also reads ``1e-3`` as a float (YAML 1.1 wants ``1.0e-3``)."""


_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_SpecLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


@dataclass(frozen=True)
class Source:
    """A spec's raw data with the ``(line, column)`` of every key path (1-based)."""

    data: Any
    filename: str
    positions: dict[PathKey, tuple[int, int]] = field(default_factory=dict)

    def locate(self, path: PathKey) -> Location | None:
        """The location of ``path``, or of its longest prefix that the file spells out."""
        for end in range(len(path), -1, -1):
            pos = self.positions.get(tuple(path[:end]))
            if pos is not None:
                return Location(self.filename, *pos)
        return None


def read_source(path: str | Path) -> Source:
    """Read the spec file at ``path``.

    Raises:
        SpecError: the file is missing (``spec-missing``) or is not valid YAML (``yaml-syntax``).
    """
    path = Path(path)
    if not path.is_file():
        raise SpecError(
            Diagnostic(
                "spec-missing",
                f"spec file '{path}' does not exist",
                hint="check the path; specs/ holds the shipped examples",
            )
        )
    return source_from_text(path.read_text(encoding="utf-8"), str(path))


def source_from_text(text: str, filename: str = "<string>") -> Source:
    """Parse YAML ``text``; diagnostics name ``filename``.

    Raises:
        SpecError: the text is empty (``empty-spec``) or not valid YAML (``yaml-syntax``).
    """
    try:
        node = yaml.compose(text, Loader=_SpecLoader)
    except yaml.YAMLError as exc:
        raise SpecError(_yaml_diagnostic(exc, filename)) from None
    if node is None:
        raise SpecError(
            Diagnostic(
                "empty-spec",
                "the spec is empty",
                location=Location(filename, 1, 1),
                hint="a spec starts with 'flowspec: 1'",
            )
        )
    loader = _SpecLoader(text)
    try:
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise SpecError(_yaml_diagnostic(exc, filename)) from None
    finally:
        loader.dispose()
    positions: dict[PathKey, tuple[int, int]] = {}
    _index(node, (), positions)
    return Source(data=data, filename=filename, positions=positions)


def source_from_data(data: Any, filename: str = "<dict>") -> Source:
    """Wrap already-parsed data (a dict built in Python) as a Source without positions."""
    return Source(data=data, filename=filename)


def _yaml_diagnostic(exc: yaml.YAMLError, filename: str) -> Diagnostic:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    location = Location(filename, mark.line + 1, mark.column + 1) if mark is not None else None
    problem = getattr(exc, "problem", None) or str(exc)
    return Diagnostic(
        "yaml-syntax",
        f"invalid YAML: {problem}",
        location=location,
        hint="check indentation and that every 'key: value' has a space after ':'",
    )


def _index(node: yaml.Node, path: PathKey, out: dict[PathKey, tuple[int, int]]) -> None:
    out.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            # The key's own position is the best place to point at for a problem with the entry.
            out[(*path, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            _index(value_node, (*path, key), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, (*path, i), out)
