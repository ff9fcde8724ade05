"""Read a YAML spec once, keeping the node tree so that every key path can be located.

PyYAML composes the node tree (each node carries its ``start_mark``) and constructs plain Python
data from the same tree, so the data and the positions cannot disagree. A key path such as
``("layers", 2, "mask")`` is located by walking the tree, falling back to its longest prefix the
file spells out.

Reading is bounded before anything grows (:mod:`flowspec.spec.limits`): the file's size (nothing
larger is read), the nesting depth (checked while composing, so deep input never reaches
Python's recursion limit), and the values aliases (``*name``) add when expanded, counted on the
composed graph without expanding it (:mod:`flowspec.spec.bounds`: a 500-byte "billion laughs"
file is refused at once). Duplicate keys are errors; a file that is not UTF-8 is a located
``spec-encoding`` error. Scalars follow YAML 1.2 (:mod:`flowspec.spec.scalars`).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from flowspec.errors import Diagnostic, Location, SpecError
from flowspec.spec.bounds import Refused, check_composed, check_data_size, too_deep
from flowspec.spec.limits import limit, raise_hint
from flowspec.spec.scalars import CoreResolver

__all__ = ["PathKey", "Source", "read_source", "source_from_data", "source_from_text"]

PathKey = tuple[str | int, ...]


class _SpecLoader(yaml.SafeLoader):
    """Safe loader with YAML 1.2 scalars, a nesting bound and a record of alias uses."""

    yaml_implicit_resolvers = CoreResolver.yaml_implicit_resolvers

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.depth = 0
        self.max_depth = limit("nesting")
        self.aliases: list[tuple[yaml.Node, yaml.Mark]] = []

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if self.depth >= self.max_depth:
            raise Refused(
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
                hint="check the path; 'flowspec specs' lists the shipped specs, which can be "
                "given by name",
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
        check_composed(node, loader.aliases, filename)
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise SpecError(_yaml_diagnostic(exc, filename, text)) from None
    except RecursionError:  # only when the nesting limit was raised past what Python can hold
        raise SpecError(too_deep(filename)) from None
    except Refused as exc:
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


def source_from_data(data: Any, filename: str = "<dict>") -> Source:
    """Wrap already-parsed data (a dict built in Python, or parsed JSON) as a Source without
    positions, after checking it against the ``nodes`` and ``nesting`` limits."""
    check_data_size(data, filename)
    return Source(data=data, filename=filename)


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
