"""Error classes and diagnostics.

Every user-facing problem is a :class:`Diagnostic`: a stable ``code``, a ``message``, the spec
``path`` it concerns (``layers.2.mask``), the ``file:line:col`` it came from when known, and an
optional ``hint``. Stages collect all their diagnostics and raise one :class:`FlowspecError`
subclass holding them, so a user sees every problem of a file at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Location:
    """A position in a source file; ``line`` and ``column`` are 1-based."""

    filename: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.filename}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Diagnostic:
    """One problem (or warning) found in a spec, a graph, a weights file or a data set."""

    code: str
    message: str
    path: str = ""
    location: Location | None = None
    hint: str | None = None
    severity: Severity = "error"

    def format(self) -> str:
        """``file:line:col: path: message`` followed by the hint on its own line."""
        parts = []
        if self.location is not None:
            parts.append(str(self.location))
        if self.path:
            parts.append(self.path)
        prefix = ": ".join(parts)
        label = "warning" if self.severity == "warning" else "error"
        text = (
            f"{prefix}: {label}[{self.code}]: {self.message}"
            if prefix
            else (f"{label}[{self.code}]: {self.message}")
        )
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text

    def __str__(self) -> str:
        return self.format()


class FlowspecError(Exception):
    """Base class of every error flowspec raises for a user's mistake."""

    def __init__(
        self,
        diagnostics: Diagnostic | list[Diagnostic] | tuple[Diagnostic, ...] | str,
        code: str = "error",
    ) -> None:
        if isinstance(diagnostics, str):
            diagnostics = (Diagnostic(code=code, message=diagnostics),)
        elif isinstance(diagnostics, Diagnostic):
            diagnostics = (diagnostics,)
        self.diagnostics = tuple(diagnostics)
        super().__init__(self.format())

    @property
    def codes(self) -> list[str]:
        return [d.code for d in self.diagnostics]

    def format(self) -> str:
        return "\n".join(d.format() for d in self.diagnostics)

    def __str__(self) -> str:
        return self.format()


class SpecError(FlowspecError):
    """The YAML spec cannot be read or does not validate."""


class GraphError(FlowspecError):
    """The spec validates but describes a flow that is not a well-formed bijection."""


class WeightsError(FlowspecError):
    """A weights file is missing, corrupt, or does not match the spec stored in it."""


class DataError(FlowspecError):
    """A data set is unknown, unreadable, or does not match the spec's input shape."""


# Every diagnostic code a user can meet, by stage, with what it means. docs/errors.md is this
# table; tests check that each spec and graph code has an invalid-spec fixture.
SPEC_CODES: dict[str, str] = {
    "spec-missing": "the spec file does not exist",
    "yaml-syntax": "the file is not valid YAML",
    "empty-spec": "the file is empty",
    "missing-version": "no 'flowspec: <version>' key",
    "bad-version": "a format version this flowspec cannot read",
    "unknown-key": "a key the schema does not know (typos are errors, never dropped)",
    "unknown-type": "an unknown layer, conditioner or base type",
    "missing-type": "a layer item with neither 'type' nor 'repeat'",
    "missing-key": "a required key is absent",
    "bad-value": "a value of the wrong type or out of range",
}
GRAPH_CODES: dict[str, str] = {
    "shape-rank": "an input of the wrong rank for the spec or for a layer",
    "mask-rank": "a vector mask on an image or an image mask on a vector",
    "mask-length": "an explicit mask whose length is not the element count",
    "mask-empty": "a mask that keeps everything or nothing (e.g. channel mask on 1 channel)",
    "net-rank": "an MLP conditioner on images or a conv conditioner on vectors",
    "net-input": "net_input 'half' on images with a non-channel mask",
    "squeeze-odd": "squeeze of an odd height or width",
    "split-odd": "split of an odd channel or feature count",
    "empty-flow": "a flow with no layers",
}
WARNING_CODES: dict[str, str] = {
    "same-mask": "two couplings in a row with the same mask and only elementwise layers between",
    "never-mixed": "latent elements that never interact with any other input element",
}
WEIGHTS_CODES: dict[str, str] = {
    "weights-missing": "no file at the given path",
    "weights-corrupt": "not a readable safetensors file (e.g. truncated)",
    "weights-format": "a safetensors file without an embedded flowspec spec",
    "weights-spec-hash": "the embedded spec does not match its checksum",
    "weights-spec": "the embedded spec is invalid",
    "weights-mismatch": "tensors missing, unexpected or of the wrong shape for the spec",
}
