"""The Pydantic base every spec model derives from: frozen, unknown keys rejected."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Shape = tuple[int, ...]
PositiveInt = Annotated[int, Field(gt=0)]


class StrictModel(BaseModel):
    """Immutable model that rejects unknown keys (a typo is an error, never silently dropped)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
