"""``flowspec specs``: the specs shipped with flowspec, or the text of one of them."""

from __future__ import annotations

import argparse
from typing import Any

from flowspec.cli.common import Command, table, write_text

__all__ = ["COMMAND"]


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", metavar="NAME", help="print this spec's YAML")
    p.add_argument("-o", "--output", metavar="FILE", help="write the YAML to FILE (with NAME)")


def _run(args: argparse.Namespace) -> int:
    from flowspec.spec.shipped import shipped_spec, shipped_specs

    if args.name:
        write_text(shipped_spec(args.name).read_text(encoding="utf-8"), args.output)
        return 0
    from flowspec.spec.source import read_source

    rows: list[tuple[Any, ...]] = [("name", "input", "description")]
    for name, path in shipped_specs().items():
        data = read_source(path).data
        shape = "x".join(map(str, data.get("input", {}).get("shape", [])))
        rows.append((name, shape, data.get("description", "")))
    print(table(rows))
    print("\ntrain one with 'flowspec train NAME'; copy one with 'flowspec specs NAME -o FILE'")
    return 0


COMMAND = Command(
    "specs",
    "list the shipped specs, or print one",
    "The specs that ship with flowspec. Any command that takes a SPEC also takes a shipped "
    "spec's name.",
    """examples:
  flowspec specs
  flowspec specs realnvp_moons                 # its YAML
  flowspec specs realnvp_moons -o mine.yaml    # a copy to edit
  flowspec train realnvp_moons""",
    _arguments,
    _run,
)
