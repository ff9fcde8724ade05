"""YAML 1.2 scalars for specs: the resolver flowspec reads plain scalars with, and what YAML 1.1
would have made of a string instead.

PyYAML resolves plain scalars by YAML 1.1, where ``010`` is 8, ``1:30`` is 90, ``yes`` and ``on``
are true and ``2024-01-01`` is a date. flowspec's resolver follows YAML 1.2's core schema: only
``true``/``false`` (also ``True``, ``TRUE``, ...) are booleans, integers are decimal without
leading zeros (underscores as in Python) or hexadecimal, and ``1e-3`` is a float. Anything else
stays a string, so a field that wants a number reports it, with :func:`yaml11_reading` saying
what YAML 1.1 would have read.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import yaml

__all__ = ["CoreResolver", "yaml11_reading"]

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


class CoreResolver(yaml.resolver.Resolver):
    """PyYAML's resolver with YAML 1.2 booleans and numbers, and no timestamps."""

    yaml_implicit_resolvers: ClassVar[dict[str, list[tuple[str, re.Pattern[str]]]]] = {
        first: [(tag, rx) for tag, rx in rules if tag not in _REPLACED]
        for first, rules in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
    }


for _tag, _rx, _first in _RESOLVERS:
    CoreResolver.add_implicit_resolver(_tag, _rx, list(_first))


_CORE = CoreResolver()
_YAML11 = yaml.resolver.Resolver()


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
