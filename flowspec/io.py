"""Weights files: safetensors with the resolved spec in the metadata. No pickle anywhere.

Metadata keys: ``format`` (``flowspec-weights``), ``format_version``, ``flowspec_version``,
``spec`` (the resolved spec, all defaults filled, as JSON), ``spec_sha256``,
``tensors_sha256`` (every tensor's name, dtype, shape and bytes, in name order) and ``buffers``
(the names of the model's tensors that are buffers, not parameters, as JSON). One file
rebuilds the model: :func:`load` needs nothing else, reads the file once, and returns the model
in eval mode in the dtype it was saved in. Files are written atomically (temp file + rename), so
an interrupted save never leaves a half-written file under the target name.

A file is checked before it is trusted: both checksums (``verify=False`` skips the tensors'
one; files written by flowspec 0.1 have none and still load), the embedded spec through the same
limits as a spec file (:mod:`flowspec.spec.limits`) before anything is built, and the loaded state
through :func:`check_state`: every floating-point tensor finite, and the buffers that must
satisfy an invariant (a permutation, the LU factors of an invertible matrix, positive running
variances) satisfying it.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from flowspec.errors import Diagnostic, FlowspecError, WeightsError
from flowspec.nn.flow import Flow
from flowspec.nn.integrity import check_state, check_tensors, tensors_digest
from flowspec.spec.limits import limit, raise_hint
from flowspec.version import __version__

__all__ = [
    "EXTRA_PREFIX",
    "WeightsFile",
    "check_state",
    "check_tensors",
    "flow_from_file",
    "graph_from_file",
    "load",
    "looks_like_spec",
    "read_weights",
    "save",
    "spec_json",
    "tensors_digest",
    "write_atomic",
]

EXTRA_PREFIX = "optim."  # tensors that travel in the file but are not the model's state

FORMAT = "flowspec-weights"
FORMAT_VERSION = "1"


def spec_json(flow: Flow) -> str:
    """The flow's resolved spec as canonical JSON."""
    return json.dumps(flow.spec.model_dump(mode="json"), sort_keys=True)


def save(
    flow: Flow,
    path: str | Path,
    extra_tensors: dict[str, torch.Tensor] | None = None,
    extra_metadata: dict[str, str] | None = None,
) -> Path:
    """Write ``flow``'s state and spec to ``path`` atomically.

    ``extra_tensors`` (e.g. optimizer state, names prefixed ``optim.``) and ``extra_metadata``
    travel in the same file and are ignored by :func:`load`.

    Example:
        >>> import tempfile, flowspec
        >>> flow = flowspec.compile("specs/nice_moons.yaml").double()
        >>> path = save(flow, tempfile.mkdtemp() + "/moons.safetensors")
        >>> loaded = load(path)
        >>> loaded.num_parameters() == flow.num_parameters(), next(loaded.parameters()).dtype
        (True, torch.float64)
    """
    path = Path(path)
    text = spec_json(flow)
    state = flow.state_dict()
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
    buffers = sorted(name for name, _ in flow.named_buffers() if name in state)
    for key, value in (extra_tensors or {}).items():
        tensors[key] = value.detach().cpu().contiguous().clone()
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "flowspec_version": __version__,
        "spec": text,
        "spec_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "tensors_sha256": tensors_digest(tensors),
        "buffers": json.dumps(buffers),
        **(extra_metadata or {}),
    }
    write_atomic(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))
    return path


def _create_temp(path: Path) -> str:
    """A new empty file beside ``path``, created with mode 0666 less the umask (as ``open``
    creates files; ``tempfile.mkstemp`` would make it 0600 whatever the umask says)."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return str(tmp)
    raise FileExistsError(f"no free temporary name beside {path}")


def write_atomic(path: Path, write: Callable[[str], object]) -> None:
    """Call ``write(tmp_path)`` on a temp file beside ``path``, then rename it over ``path``.
    The file gets the permissions any new file gets (0666 less the umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temp(path)
    mode = os.stat(tmp).st_mode  # 0666 less the umask; writers that replace the file lose it
    try:
        write(tmp)
        os.chmod(tmp, mode)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@dataclass(frozen=True)
class WeightsFile:
    """A flowspec weights file's metadata and tensors, read once and checked as such."""

    path: Path
    metadata: dict[str, str]
    tensors: dict[str, torch.Tensor]

    @property
    def state(self) -> dict[str, torch.Tensor]:
        """The model's own tensors (without optimizer state and random states)."""
        return {k: v for k, v in self.tensors.items() if not k.startswith(EXTRA_PREFIX)}

    @property
    def spec_data(self) -> dict[str, object]:
        """The embedded resolved spec, as plain data.

        Raises:
            WeightsError: ``weights-spec``, when it is not JSON (or nested too deep to read).
        """
        try:
            return json.loads(self.metadata["spec"])
        except (json.JSONDecodeError, RecursionError) as exc:
            why = "it is nested too deep" if isinstance(exc, RecursionError) else str(exc)
            raise WeightsError(
                _diag("weights-spec", f"the spec embedded in '{self.path}' is not readable: {why}")
            ) from None


def read_weights(path: str | Path, verify: bool = True) -> WeightsFile:
    """Read a flowspec weights file and check its format, the embedded spec's checksum and size,
    and (``verify``) the tensors' checksum (absent from files written by flowspec 0.1).

    Raises:
        WeightsError: ``weights-missing``, ``weights-corrupt``, ``weights-format``,
            ``weights-spec-hash``, ``weights-spec`` (too large) or ``weights-checksum``.
    """
    path = Path(path)
    if not path.is_file():
        hint = "train one with 'flowspec train' or write one with 'flowspec compile'"
        if (path / "model.safetensors").is_file():
            hint = f"'{path}' is a run directory: give '{path / 'model.safetensors'}'"
        raise WeightsError(_diag("weights-missing", f"no weights file at '{path}'", hint))
    if looks_like_spec(path):
        raise WeightsError(
            _diag(
                "not-a-model",
                f"'{path}' is a spec (YAML), not a model file",
                f"'flowspec train {path}' trains it and 'flowspec compile {path} -o "
                "model.safetensors' writes an initialised model; eval, sample and inspect take "
                "the .safetensors file that a run writes (runs/<name>/model.safetensors)",
            )
        )
    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(
            _diag(
                "weights-corrupt",
                f"'{path}' is not a readable safetensors file ({exc})",
                "the file may be truncated or not a "
                "flowspec model; re-create it with 'flowspec compile' or train",
            )
        ) from None
    if metadata.get("format") != FORMAT or "spec" not in metadata:
        raise WeightsError(
            _diag(
                "weights-format",
                f"'{path}' is a safetensors file but not a flowspec model (no embedded spec)",
            )
        )
    text = metadata["spec"]
    if hashlib.sha256(text.encode()).hexdigest() != metadata.get("spec_sha256"):
        raise WeightsError(
            _diag(
                "weights-spec-hash",
                f"the spec embedded in '{path}' does not match its checksum",
                "the file was modified or damaged",
            )
        )
    if len(text) > limit("spec_bytes"):
        raise WeightsError(
            _diag(
                "weights-spec",
                f"the spec embedded in '{path}' is {len(text):,} characters long (limit "
                "spec_bytes)",
                raise_hint("spec_bytes"),
            )
        )
    expected = metadata.get("tensors_sha256")
    if verify and expected is not None and tensors_digest(tensors) != expected:
        raise WeightsError(
            _diag(
                "weights-checksum",
                f"the tensors in '{path}' do not match their checksum: a bit flipped on disk, "
                "or the file was edited",
                "restore the file from a copy, or re-create it ('flowspec compile', train); "
                "--no-verify loads it anyway",
            )
        )
    return WeightsFile(path, metadata, tensors)


def looks_like_spec(path: Path) -> bool:
    """Whether the file at ``path`` is a YAML spec: a ``.yaml``/``.yml`` name, or text whose
    first lines hold a ``flowspec:`` key (a safetensors file starts with an 8-byte length)."""
    if path.suffix.lower() in (".yaml", ".yml"):
        return True
    with open(path, "rb") as fh:
        text = fh.read(4096).decode("utf-8", errors="replace")
    return any(line.startswith("flowspec:") for line in text.splitlines())


def flow_from_file(weights: WeightsFile, passes: Sequence[str] | None = None) -> Flow:
    """Build the flow a weights file describes and load its tensors into it, in the dtype the
    tensors were saved in. ``passes``: as in :func:`flowspec.compile` (default: all).

    Raises:
        WeightsError: ``weights-spec`` (the embedded spec does not validate or build) or
            ``weights-mismatch`` (the tensors do not fit the spec).
    """
    from flowspec.api import compile as compile_spec

    graph = graph_from_file(weights)
    try:
        flow = compile_spec(graph.spec, passes=passes)
    except FlowspecError as exc:
        raise _invalid_spec(weights, exc) from None
    state = weights.state
    check_tensors(state, flow, weights.path)
    dtype = next((t.dtype for t in state.values() if t.is_floating_point()), None)
    if dtype is not None:
        flow.to(dtype)
    flow.load_state_dict(state)
    check_state(flow, weights.path)
    return flow.eval()


def graph_from_file(weights: WeightsFile) -> Any:
    """The checked graph of a weights file's embedded spec, read through the same limits as a
    spec file; torch is not needed and nothing is built.

    Raises:
        WeightsError: ``weights-spec``, with the spec's own diagnostics in the message.
    """
    from flowspec.graph import build_graph
    from flowspec.spec.parse import parse_spec
    from flowspec.spec.source import source_from_data

    data = weights.spec_data
    try:
        return build_graph(parse_spec(source_from_data(data, str(weights.path))))
    except FlowspecError as exc:
        raise _invalid_spec(weights, exc) from None


def _invalid_spec(weights: WeightsFile, exc: FlowspecError) -> WeightsError:
    return WeightsError(
        _diag("weights-spec", f"the spec embedded in '{weights.path}' is invalid: {exc}")
    )


def load(path: str | Path, verify: bool = True, passes: Sequence[str] | None = None) -> Flow:
    """Rebuild the flow stored in ``path``: the spec from its metadata, then its weights, in the
    dtype they were saved in, in eval mode (as a model is used; ``train()`` it to train). The
    file is read once and checked (``verify=False`` skips the tensors' checksum). ``passes``:
    the optimisation passes, as in :func:`flowspec.compile` (default: the file's spec's;
    ``()`` computes exactly as flowspec 0.1 did).

    Raises:
        WeightsError: the file is missing, damaged or holds an invalid spec or state.
    """
    return flow_from_file(read_weights(path, verify=verify), passes)


def _diag(code: str, message: str, hint: str | None = None) -> Diagnostic:
    return Diagnostic(code, message, hint=hint)
