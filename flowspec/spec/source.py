"""Read a YAML spec once, keeping the node tree so that every key path can be located.

PyYAML composes the node tree (each node carries its ``start_mark``) and constructs plain Python
data from the same tree, so the data and the positions cannot disagree. A key path such as
``("layers", 2, "mask")`` is located by walking the tree, falling back to its longest prefix the
file spells out.

Reading is bounded before anything grows (:mod:`flowspec.limits`): the file's size, the nesting
depth (checked while composing, so deep input never reaches Python's recursion limit), and the
number of values that aliases (``*name``) add when expanded, counted on the composed graph
without expanding it (a 500-byte "billion laughs" file is refused at once). Duplicate keys are
errors. Scalars follow YAML 1.2, not PyYAML's YAML 1.1: only ``true``/``false`` are booleans,
``010`` or ``1:30`` are not numbers and ``2024-01-01`` is not a date (they stay strings, so a
field that wants a number reports them, with what YAML 1.1 would have read), while ``1e-3`` is
a float.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import yaml

from flowspec.errors import Diagnostic, Location, SpecError
from flowspec.limits import limit, raise_hint

__all__ = [
    "PathKey",
    "Source",
    "check_data_size",
    "read_source",
    "source_from_data",
    "source_from_text",
    "too_deep",
    "yaml11_reading",
]

PathKey = tuple[str | int, ...]

_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_REPLACED = {_BOOL, _INT, _FLOAT, "tag:yaml.org,2002:timestamp"}

_RESOLVERS: list[tuple[str, re.Pattern[str], str]] = [
    (_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), "tTfF"),
    # decimal without leading zeros (underscores as in Python), or hexadecimal
    (_INT, re.compile(r"^(?:[-+]?(?:0|[1-9][0-9]*(?:_[0-9]+)*)|0x[0-9a-fA-F]+)$"), "-+0123456789"),
    (
        _FLOAT,
        re.compile(
            r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
            |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
            |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
            |[-+]?\.(?:inf|Inf|INF)
            |\.(?:nan|NaN|NAN))$""",
            re.X,
        ),
        "-+0123456789.",
    ),
]


class _CoreResolver(yaml.resolver.Resolver):
    """PyYAML's resolver with YAML 1.2 booleans and numbers, and no timestamps."""

    yaml_implicit_resolvers: ClassVar[dict[str, list[tuple[str, re.Pattern[str]]]]] = {
        first: [(tag, rx) for tag, rx in rules if tag not in _REPLACED]
        for first, rules in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
    }


for _tag, _rx, _first in _RESOLVERS:
    _CoreResolver.add_implicit_resolver(_tag, _rx, list(_first))


class _SpecLoader(yaml.SafeLoader):
    """Safe loader with YAML 1.2 scalars, a nesting bound and a record of alias uses."""

    yaml_implicit_resolvers = _CoreResolver.yaml_implicit_resolvers

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.depth = 0
        self.max_depth = limit("nesting")
        self.aliases: list[tuple[yaml.Node, yaml.Mark]] = []

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if self.depth >= self.max_depth:
            raise _Refused(
                "nesting",
                f"the spec nests lists and mappings more than {self.max_depth} deep",
                event.start_mark,
            )
        self.depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self.depth -= 1
        if isinstance(event, yaml.AliasEvent):
            self.aliases.append((node, event.start_mark))
        return node


class _Refused(Exception):
    """A limit was exceeded while reading (turned into a located ``limit-exceeded``)."""

    def __init__(self, name: str, message: str, mark: yaml.Mark | None) -> None:
        super().__init__(message)
        self.name, self.message, self.mark = name, message, mark


@dataclass(frozen=True)
class Source:
    """A spec's raw data and, when read from YAML, its node tree (for 1-based line:column)."""

    data: Any
    filename: str
    root: yaml.Node | None = None

    def locate(self, path: PathKey) -> Location | None:
        """The location of ``path``, or of its longest prefix that the file spells out: a
        mapping entry is located at its key, a list item at its first character."""
        node = self.root
        if node is None:
            return None
        mark = node.start_mark
        for key in path:
            found = _child(node, key)
            if found is None:
                break
            mark, node = found
        return Location(self.filename, mark.line + 1, mark.column + 1)


def _child(node: yaml.Node, key: str | int) -> tuple[yaml.Mark, yaml.Node] | None:
    """``(mark, child node)`` of ``key`` in a mapping (explicit keys, then ``<<`` merges) or of
    index ``key`` in a sequence."""
    if isinstance(node, yaml.SequenceNode):
        if isinstance(key, int) and 0 <= key < len(node.value):
            return node.value[key].start_mark, node.value[key]
        return None
    if not isinstance(node, yaml.MappingNode):
        return None
    merged = []
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode):
            if key_node.value == str(key) and key_node.tag != "tag:yaml.org,2002:merge":
                return key_node.start_mark, value_node
            if key_node.tag == "tag:yaml.org,2002:merge":
                merged += (
                    value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                )
    for source in merged:
        found = _child(source, key)
        if found is not None:
            return found
    return None


def read_source(path: str | Path) -> Source:
    """Read the spec file at ``path`` (UTF-8, at most ``limits.spec_bytes`` bytes).

    Raises:
        SpecError: the file is missing (``spec-missing``), too large (``limit-exceeded``), not
            UTF-8 (``spec-encoding``) or not valid YAML (``yaml-syntax``).
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
    most = limit("spec_bytes")
    with open(path, "rb") as fh:
        raw = fh.read(most + 1)
    name = str(path)
    if len(raw) > most:
        raise _too_large(name, f"more than {most:,} bytes")
    return source_from_text(_decode(raw, name), name)


def _too_large(filename: str, what: str) -> SpecError:
    return SpecError(
        Diagnostic(
            "limit-exceeded",
            f"the spec is {what} (limit spec_bytes)",
            location=Location(filename, 1, 1),
            hint=raise_hint("spec_bytes"),
        )
    )


def _decode(raw: bytes, filename: str) -> str:
    """UTF-8 text of ``raw`` (a UTF-8 byte-order mark is dropped); anything else is a located
    ``spec-encoding`` error."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE)):
        raise SpecError(
            Diagnostic(
                "spec-encoding",
                "the spec is UTF-16 or UTF-32 encoded (it starts with a byte-order mark); "
                "flowspec reads UTF-8",
                location=Location(filename, 1, 1),
                hint="save the file as UTF-8",
            )
        )
    raw = raw.removeprefix(codecs.BOM_UTF8)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        column = len(before) - (before.rfind(b"\n") + 1) + 1
        raise SpecError(
            Diagnostic(
                "spec-encoding",
                f"the spec is not UTF-8 text: byte 0x{raw[exc.start]:02x} at byte offset "
                f"{exc.start} cannot be decoded",
                location=Location(filename, line, column),
                hint="save the file as UTF-8 (Latin-1 and UTF-16 files must be converted; "
                "binary files are not specs)",
            )
        ) from None


def source_from_text(text: str, filename: str = "<string>") -> Source:
    """Parse YAML ``text``; diagnostics name ``filename``.

    Raises:
        SpecError: the text is empty (``empty-spec``), not valid YAML (``yaml-syntax``), has
            duplicate keys (``duplicate-key``) or exceeds a limit (``limit-exceeded``).
    """
    if len(text) > limit("spec_bytes"):  # characters: at least as many bytes
        raise _too_large(filename, f"more than {limit('spec_bytes'):,} characters long")
    loader: _SpecLoader | None = None
    try:
        loader = _SpecLoader(text)
        node = loader.get_single_node()
        if node is None:
            raise SpecError(
                Diagnostic(
                    "empty-spec",
                    "the spec is empty",
                    location=Location(filename, 1, 1),
                    hint="a spec starts with 'flowspec: 1'",
                )
            )
        _check_graph(node, loader.aliases, filename)
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise SpecError(_yaml_diagnostic(exc, filename, text)) from None
    except RecursionError:  # only when the nesting limit was raised past what Python can hold
        raise SpecError(too_deep(filename)) from None
    except _Refused as exc:
        mark = exc.mark
        location = Location(filename, mark.line + 1, mark.column + 1) if mark else None
        raise SpecError(
            Diagnostic(
                "limit-exceeded",
                f"{exc.message} (limit {exc.name})",
                location=location,
                hint=raise_hint(exc.name),
            )
        ) from None
    finally:
        if loader is not None:
            loader.dispose()
    return Source(data=data, filename=filename, root=node)


def too_deep(filename: str) -> Diagnostic:
    return Diagnostic(
        "limit-exceeded",
        f"the spec nests lists and mappings deeper than Python's recursion limit allows "
        f"(the nesting limit is raised to {limit('nesting')})",
        location=Location(filename, 1, 1) if not filename.startswith("<") else None,
        hint="flatten the spec; nesting beyond a few hundred levels cannot be read",
    )


def _check_graph(
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
            raise _Refused(
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
                raise _Refused(
                    "aliases",
                    "an alias refers to the list or mapping that contains it",
                    child.start_mark,
                )
            if id(child) not in sizes:
                stack.append((child, False))
    total, distinct = sizes[id(root)], len(sizes)
    if total - distinct > limit("aliases"):
        node, mark = max(aliases, key=lambda a: sizes.get(id(a[0]), 0))
        raise _Refused(
            "aliases",
            f"expanding the aliases in this spec would add {total - distinct:,} values "
            f"(this alias alone {sizes[id(node)]:,})",
            mark,
        )
    if total > limit("nodes"):
        raise _Refused("nodes", f"the spec holds {total:,} values", root.start_mark)
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


def source_from_data(data: Any, filename: str = "<dict>") -> Source:
    """Wrap already-parsed data (a dict built in Python, or parsed JSON) as a Source without
    positions, after checking it against the ``nodes`` and ``nesting`` limits."""
    check_data_size(data, filename)
    return Source(data=data, filename=filename)


_YAML11 = yaml.resolver.Resolver()
_CORE = _CoreResolver()


def yaml11_reading(value: Any) -> str | None:
    """Why a string where a number or boolean was expected may surprise: what YAML 1.1 (and
    PyYAML's default loader) would make of it, or that it was quoted; None otherwise.

    Example:
        >>> yaml11_reading("010"), yaml11_reading("1:30"), yaml11_reading("yes")
        ('the number 8', 'the number 90', 'the boolean True')
        >>> yaml11_reading("5"), yaml11_reading("moons") is None
        ('quoted', True)
    """
    if not isinstance(value, str) or not value:
        return None
    if _CORE.resolve(yaml.ScalarNode, value, (True, False)) in (_BOOL, _INT, _FLOAT):
        return "quoted"
    tag = _YAML11.resolve(yaml.ScalarNode, value, (True, False))
    if tag not in (_BOOL, _INT, _FLOAT):
        return None
    read = yaml.safe_load(value)
    return f"the {'boolean' if isinstance(read, bool) else 'number'} {read!r}"


def _yaml_diagnostic(exc: yaml.YAMLError, filename: str, text: str) -> Diagnostic:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    location = Location(filename, mark.line + 1, mark.column + 1) if mark is not None else None
    problem = getattr(exc, "problem", None) or str(exc)
    if isinstance(exc, yaml.reader.ReaderError):  # a control character, e.g. a binary file
        before = text[: exc.position]
        location = Location(filename, before.count("\n") + 1, exc.position - before.rfind("\n"))
        problem = f"character #x{exc.character:04x} is not allowed ({exc.reason})"
        return Diagnostic(
            "yaml-syntax",
            f"invalid YAML: {problem}",
            location=location,
            hint="a spec is a YAML text file; binary files are not specs",
        )
    return Diagnostic(
        "yaml-syntax",
        f"invalid YAML: {problem}",
        location=location,
        hint="check indentation and that every 'key: value' has a space after ':'",
    )
