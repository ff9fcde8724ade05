"""The spec format (version 1) as immutable Pydantic models.

The union of layer kinds is derived from :data:`flowspec.layers.ALL_OPS`; a list item is either a
layer (``type: ...``) or a ``repeat: K`` block whose ``body`` is repeated K times.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, PrivateAttr, Tag, field_validator

from flowspec.layers import ALL_OPS
from flowspec.layers.base import PositiveInt, Seed, StrictModel
from flowspec.spec.bases import BaseSpec, NormalSpec
from flowspec.spec.context import ContextSpec
from flowspec.spec.training import DataSpec, TrainSpec

__all__ = [
    "FORMAT_VERSION",
    "NAME_PATTERN",
    "FlowSpec",
    "InputSpec",
    "LayerItem",
    "LevelSpec",
    "OpSpec",
    "RepeatSpec",
    "SplitOptions",
]

FORMAT_VERSION = 1
NAME_PATTERN = re.compile(r"\w[\w.+-]{0,99}")

OpSpec = Union[tuple(Annotated[op.spec, Tag(op.kind)] for op in ALL_OPS)]  # type: ignore[valid-type]


def _item_tag(value: Any) -> str | None:
    """The union tag of a layer-list item: its ``type``, or ``repeat`` for a repeat block."""
    if isinstance(value, dict):
        if "type" in value:
            return value["type"]
        return "repeat" if "repeat" in value or "body" in value else None
    return getattr(value, "type", "repeat")


class RepeatSpec(StrictModel):
    """``repeat: K`` and a ``body`` list: the body, K times over, each copy with its own weights.
    ``vary`` gives keys of the body one value per repetition (``0.depth: [8, 2, 2, 2]``: body
    item 0 gets ``depth: 8`` in repetition 0, ``2`` in the others); see ``flowspec.spec.vary``."""

    repeat: PositiveInt
    body: tuple[LayerItem, ...]
    vary: dict[str, tuple[Any, ...]] = Field(default_factory=dict)


LayerItem = Annotated[
    Union[OpSpec, Annotated[RepeatSpec, Tag("repeat")]],  # type: ignore[valid-type]
    Discriminator(_item_tag),
]
RepeatSpec.model_rebuild()


class SplitOptions(StrictModel):
    """Options of a level's factor-out (see the ``split`` layer kind)."""

    prior: Literal["standard", "learned"] = "learned"


class LevelSpec(StrictModel):
    """One scale of a multiscale flow: optional squeeze, the steps, optional split."""

    squeeze: bool = False
    steps: tuple[LayerItem, ...] = ()
    split: bool | SplitOptions = False


class InputSpec(StrictModel):
    """Per-example shape: ``[D]`` for vectors, ``[C, H, W]`` for images."""

    shape: tuple[PositiveInt, ...] = Field(examples=[[2], [3, 32, 32]])


class FlowSpec(StrictModel):
    """A whole flow. Layers run in the order ``preprocess``, ``levels``, ``layers``. With a
    ``context:`` section the flow is conditional: every conditioner and a conditional base
    receive the context."""

    flowspec: Literal[1] = FORMAT_VERSION
    name: str = "flow"
    description: str = ""
    seed: Seed = 0
    input: InputSpec
    context: ContextSpec | None = None
    base: BaseSpec = Field(default_factory=NormalSpec)
    preprocess: tuple[LayerItem, ...] = ()
    levels: tuple[LevelSpec, ...] = ()
    layers: tuple[LayerItem, ...] = ()
    data: DataSpec | None = None
    train: TrainSpec | None = None

    _source: Any = PrivateAttr(default=None)

    @field_validator("name")
    @classmethod
    def _name_is_a_file_name(cls, name: str) -> str:
        """The name becomes a directory name (``runs/<name>``), so it cannot be a path."""
        if not NAME_PATTERN.fullmatch(name) or set(name) == {"."}:
            raise ValueError(
                f"the name {name!r} is not a plain file name: it names the run directory "
                "runs/<name>, so use 1 to 100 letters, digits, '_', '.', '+' or '-', starting "
                "with a letter, digit or '_' (no '/', no '..')"
            )
        return name

    @property
    def source(self) -> Any:
        """The :class:`flowspec.spec.source.Source` this spec was read from (positions for
        errors), or None for a spec built in Python."""
        return self._source
