"""Bounds on what a spec can expand to, checked before it is expanded.

:func:`check_composed` works on the node graph PyYAML composed (aliases share nodes): it counts
the values of the expanded document without expanding it, refuses recursive aliases and
expansions beyond the ``aliases`` and ``nodes`` limits, and reports duplicate keys.
:func:`check_data_size` does the same for data built in Python or parsed from JSON, where
shared references play the part of aliases. Both walks are iterative, so depth is never a
problem for Python's recursion limit.
"""

from __future__ import annotations

from typing import Any

import yaml

from flowspec.errors import Diagnostic, Location, SpecError
from flowspec.spec.limits import limit, raise_hint

__all__ = ["Refused", "check_composed", "check_data_size", "too_deep"]


class Refused(Exception):
    """A limit was exceeded while reading (turned into a located ``limit-exceeded``)."""

    def __init__(self, name: str, message: str, mark: yaml.Mark | None) -> None:
        super().__init__(message)
        self.name, self.message, self.mark = name, message, mark


def too_deep(filename: str) -> Diagnostic:
    return Diagnostic(
        "limit-exceeded",
        f"the spec nests lists and mappings deeper than Python's recursion limit allows "
        f"(the nesting limit is raised to {limit('nesting')})",
        location=Location(filename, 1, 1) if not filename.startswith("<") else None,
        hint="flatten the spec; nesting beyond a few hundred levels cannot be read",
    )


def check_composed(
    root: yaml.Node, aliases: list[tuple[yaml.Node, yaml.Mark]], filename: str
) -> None:
    """Count the values of the expanded document on the composed graph (without expanding it),
    refuse recursive aliases and too large expansions, and report duplicate keys."""
    sizes: dict[int, int] = {}
    duplicates: list[Diagnostic] = []
    # iterative post-order walk over distinct nodes (aliases share node objects)
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    open_nodes: set[int] = set()
    while stack:
        node, done = stack.pop()
        if done:
            open_nodes.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(c)] for c in _children(node))
            continue
        if id(node) in sizes:
            continue
        if id(node) in open_nodes:
            raise Refused(
                "aliases",
                "an alias refers to the list or mapping that contains it",
                node.start_mark,
            )
        open_nodes.add(id(node))
        stack.append((node, True))
        if isinstance(node, yaml.MappingNode):
            duplicates += _duplicate_keys(node, filename)
        for child in _children(node):
            if id(child) in open_nodes:
                raise Refused(
                    "aliases",
                    "an alias refers to the list or mapping that contains it",
                    child.start_mark,
                )
            if id(child) not in sizes:
                stack.append((child, False))
    total, distinct = sizes[id(root)], len(sizes)
    if total - distinct > limit("aliases"):
        node, mark = max(aliases, key=lambda a: sizes.get(id(a[0]), 0))
        raise Refused(
            "aliases",
            f"expanding the aliases in this spec would add {total - distinct:,} values "
            f"(this alias alone {sizes[id(node)]:,})",
            mark,
        )
    if total > limit("nodes"):
        raise Refused("nodes", f"the spec holds {total:,} values", root.start_mark)
    if duplicates:
        raise SpecError(duplicates)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _duplicate_keys(node: yaml.MappingNode, filename: str) -> list[Diagnostic]:
    first: dict[str, yaml.Mark] = {}
    found = []
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
            continue
        mark = key_node.start_mark
        if key_node.value in first:
            earlier = first[key_node.value]
            found.append(
                Diagnostic(
                    "duplicate-key",
                    f"key '{key_node.value}' appears twice in this mapping (first at line "
                    f"{earlier.line + 1}); YAML would silently keep only the last one",
                    location=Location(filename, mark.line + 1, mark.column + 1),
                    hint="remove or rename one of them",
                )
            )
        else:
            first[key_node.value] = mark
    return found


def check_data_size(data: Any, filename: str = "<dict>") -> None:
    """Refuse data (a dict built in Python, or parsed JSON) with more values than the
    ``nodes`` limit or deeper than the ``nesting`` limit, and cycles. Shared references count
    each time they are reached, as a YAML alias does, but are sized once (no expansion), and
    the walk is iterative, so deep or self-referencing data is safe.

    Raises:
        SpecError: ``limit-exceeded``.
    """
    sizes: dict[int, tuple[int, int]] = {}  # id -> (values when expanded, depth)
    open_ids: set[int] = set()
    stack: list[tuple[Any, bool]] = [(data, False)]
    while stack:
        value, done = stack.pop()
        children = _data_children(value)
        if done:
            open_ids.discard(id(value))
            counts = [sizes[id(c)] if _data_children(c) else (1, 1) for c in children]
            sizes[id(value)] = (
                1 + sum(n for n, _ in counts),
                1 + max((d for _, d in counts), default=0),
            )
            continue
        if id(value) in sizes:
            continue
        open_ids.add(id(value))
        stack.append((value, True))
        for child in children:
            if id(child) in open_ids:
                _refuse_data("nesting", "a list or mapping that contains itself", filename)
            if _data_children(child) and id(child) not in sizes:
                stack.append((child, False))
    total, depth = sizes.get(id(data), (1, 1))
    if depth > limit("nesting"):
        _refuse_data("nesting", f"lists and mappings nested {depth} deep", filename)
    if total > limit("nodes"):
        _refuse_data("nodes", f"{total:,} values", filename)


def _data_children(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [v for pair in value.items() for v in pair]
    if isinstance(value, list | tuple):
        return list(value)
    return []


def _refuse_data(name: str, what: str, filename: str) -> None:
    raise SpecError(
        Diagnostic(
            "limit-exceeded",
            f"the spec has {what} (limit {name}: {limit(name):,})",
            location=Location(filename, 1, 1) if not filename.startswith("<") else None,
            hint=raise_hint(name),
        )
    )
