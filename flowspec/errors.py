"""Error classes, diagnostics, and the one table of every diagnostic code.

Every user-facing problem is a :class:`Diagnostic`: a stable ``code``, a ``message``, the spec
``path`` it concerns (``layers.2.mask``), the ``file:line:col`` it came from when known, and an
optional ``hint``. Stages collect all their diagnostics and raise one :class:`FlowspecError`
subclass holding them, so a user sees every problem of a file at once.

:data:`CODES` lists every code flowspec can report, with the error class that carries it and what
it means; ``docs/errors.md`` is generated from it and a test checks that every code raised in the
package is listed here and has a test that triggers it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "CODES",
    "CodeInfo",
    "DataError",
    "Diagnostic",
    "FlowspecError",
    "GraphError",
    "Location",
    "SpecError",
    "TrainingError",
    "WeightsError",
    "codes_of",
]

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
        prefix = ": ".join(part for part in (str(self.location or ""), self.path) if part)
        label = "warning" if self.severity == "warning" else "error"
        text = f"{label}[{self.code}]: {self.message}"
        if prefix:
            text = f"{prefix}: {text}"
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


class TrainingError(FlowspecError):
    """Training cannot start, resume or go on: a non-finite loss, a mismatched resume, a device."""


@dataclass(frozen=True)
class CodeInfo:
    """What a diagnostic code means and which error class carries it (None: a warning)."""

    error: type[FlowspecError] | None
    meaning: str


def _table(error: type[FlowspecError] | None, rows: dict[str, str]) -> dict[str, CodeInfo]:
    return {code: CodeInfo(error, meaning) for code, meaning in rows.items()}


CODES: dict[str, CodeInfo] = {
    **_table(
        SpecError,
        {
            "spec-missing": "the spec file does not exist",
            "spec-encoding": "the file is not UTF-8 text (UTF-16, Latin-1, binary)",
            "yaml-syntax": "the file is not valid YAML",
            "duplicate-key": "a key given twice in one mapping (YAML would keep only the last)",
            "limit-exceeded": "the spec exceeds a resource limit (size, nesting, aliases, ops, "
            "elements, widths; docs/limits.md says how to raise one)",
            "empty-spec": "the file is empty",
            "missing-version": "no 'flowspec: <version>' key",
            "bad-version": "a format version this flowspec cannot read",
            "unknown-key": "a key the schema does not know (typos are errors, never dropped)",
            "unknown-type": "an unknown layer, conditioner or base type",
            "missing-type": "a layer item with neither 'type' nor 'repeat'",
            "missing-key": "a required key is absent",
            "bad-value": "a value of the wrong type or out of range",
            "vary-key": "a 'vary' key that names no key of the repeat block's body",
            "vary-length": "a 'vary' list whose length is not the repeat count",
        },
    ),
    **_table(
        GraphError,
        {
            "shape-rank": "an input of the wrong rank for the spec or for a layer",
            "mask-rank": "a vector mask on an image or an image mask on a vector",
            "mask-length": "an explicit mask whose length is not the element count",
            "mask-empty": "a mask that keeps everything or nothing (channel mask on 1 channel)",
            "net-rank": "a conditioner for another input rank (MLP on images, vit on vectors, ...)",
            "net-input": "net_input 'half' with a mask that does not cut whole channels or tokens",
            "net-tokens": "a vit conditioner with unequal kept and transformed token counts",
            "attention-heads": "an attention width that does not split into the heads",
            "patch-size": "a patch size that does not tile the image or vector",
            "tarflow-tokens": "a tarflow block (output shift) on a single token",
            "squeeze-odd": "squeeze of an odd height or width",
            "split-odd": "split of an odd channel or feature count",
            "empty-flow": "a flow with no layers",
            "preprocess-order": "dequantize or logit twice, out of order (dequantize first, then "
            "logit) or outside 'preprocess', or another layer inside it",
            "spline-minimum": "spline bin floors that cannot all fit (bins x minimum >= 1)",
            "order-invalid": "an explicit autoregressive order that is not a permutation",
            "context-required": "a conditional base in a spec without a 'context:' section",
            "context-unused": "a 'context:' section that no layer or base uses",
            "graph-cycle": "(verifier) the graph has a cycle",
            "graph-disconnected": "(verifier) the graph is not connected",
            "graph-latent": "(verifier) a latent node has consumers",
            "graph-input": "(verifier) more than one input node",
            "graph-ports": "(verifier) an op input or output port not consumed exactly once",
            "graph-op": "(verifier) an op of a kind that is not registered",
            "graph-shape": "(verifier) shapes on the edges disagree with the op's shape rule",
            "graph-dimension": "(verifier) the latents do not hold as many elements as the input",
            "graph-context": "(verifier) context edges that disagree with the ops that take it",
        },
    ),
    **_table(
        None,
        {
            "same-mask": "two couplings in a row with the same mask and only elementwise layers "
            "between",
            "never-mixed": "latent elements that never interact with any other input element",
        },
    ),
    **_table(
        WeightsError,
        {
            "weights-missing": "no file at the given path",
            "not-a-model": "a spec (YAML) given where a model file (.safetensors) is expected",
            "weights-corrupt": "not a readable safetensors file (e.g. truncated)",
            "weights-format": "a safetensors file without an embedded flowspec spec",
            "weights-spec-hash": "the embedded spec does not match its checksum",
            "weights-spec": "the embedded spec is invalid",
            "weights-mismatch": "tensors missing, unexpected or of the wrong shape for the spec",
            "weights-checksum": "the tensors do not match their checksum (a flipped bit, an edit)",
            "weights-invalid": "non-finite weights, or a buffer that breaks its invariant (a "
            "permutation that is not one, singular LU factors, a negative variance)",
            "not-a-checkpoint": "a model file without training state given to --resume",
            "nonfinite-output": "the model gives NaN or Inf (an NLL in eval, samples in sample); "
            "the message names the first layer that did",
        },
    ),
    **_table(
        DataError,
        {
            "unknown-dataset": "neither a built-in data set nor a path to a file",
            "data-missing": "the data file does not exist",
            "data-format": "a data file of an unsupported type",
            "data-unreadable": "a data file that cannot be read as numbers",
            "data-nonfinite": "data with NaN or Inf values",
            "data-too-small": "too few examples to split into train, validation and test (or "
            "an empty file)",
            "data-not-integer": "non-integer data given to a flow that starts with dequantize",
            "data-levels": "integer data outside 0 .. levels-1 of the flow's dequantize layer",
            "data-shape": "examples whose shape is not the spec's input shape (or images of "
            "different sizes in one folder)",
            "data-labels": "labels that are missing, out of range or mixed with unlabelled "
            "images (class folders, CIFAR-10 label bytes, ImageNet .npz labels)",
            "no-data": "no data given and none recorded in the spec or the model",
            "context-missing": "a conditional flow given data (or a command) without a context",
            "context-unexpected": "a context given to an unconditional flow",
            "context-shape": "a context whose shape does not match the spec's context",
            "context-range": "class labels that are not integers in 0..classes-1",
        },
    ),
    **_table(
        TrainingError,
        {
            "nonfinite-loss": "training diverged: a NaN or Inf loss, gradient or validation NLL",
            "nothing-to-resume": "--resume without a checkpoint in the run directory",
            "run-exists": "the output directory already holds a run (and neither --resume nor "
            "--overwrite was given)",
            "resume-mismatch": "--resume with other settings, data or spec than the checkpoint",
            "device-unavailable": "--device cuda without a visible GPU",
            "device-unknown": "a device name other than cpu or cuda",
            "batch-indivisible": "a global batch that does not split evenly over the processes "
            "of a torchrun job",
            "rank-lost": "another process of a torchrun job died (killed, crashed); the job stops",
            "precision-unsupported": "precision bf16 on a GPU without bfloat16 support",
            "memory-exceeded": "a training step's estimated memory exceeds the device's free "
            "memory",
        },
    ),
    **_table(
        FlowspecError,
        {
            "sample-format": "samples that cannot be drawn in the asked file format",
            "missing-extra": "a feature needs an optional dependency that is not installed; "
            "the message names the pip extra",
            "export-unsupported": "a layer, conditioner, transform or base that cannot be "
            "written as Python source (flowspec export -o *.py) yet, or a conditional flow "
            "(any export format: the exported model takes no context)",
        },
    ),
}


def codes_of(error: type[FlowspecError] | None) -> dict[str, str]:
    """``code -> meaning`` of the codes carried by ``error`` (None: the warnings)."""
    return {code: info.meaning for code, info in CODES.items() if info.error is error}
