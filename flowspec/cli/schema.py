"""``flowspec schema``: the JSON Schema of the spec format, for editors and other tools."""

from __future__ import annotations

import argparse
import json

from flowspec.cli.common import Command, write_text

__all__ = ["COMMAND"]


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", metavar="FILE", help="write it to FILE (default: stdout)")


def _run(args: argparse.Namespace) -> int:
    from flowspec.spec.reference import json_schema

    write_text(json.dumps(json_schema(), indent=2), args.output)
    return 0


COMMAND = Command(
    "schema",
    "write the JSON Schema of the spec format",
    "Write the JSON Schema of the spec format (draft 2020-12), for editors: with the YAML "
    "language server, a spec's first line '# yaml-language-server: $schema=FILE' gives "
    "completion and checks as you type.",
    """examples:
  flowspec schema -o flowspec.schema.json
  # then, as the first line of a spec:
  # yaml-language-server: $schema=flowspec.schema.json""",
    _arguments,
    _run,
)
