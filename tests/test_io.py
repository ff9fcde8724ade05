"""Weights files: round trip, actnorm state, and every way a file can be wrong."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import flowspec
from flowspec.errors import WeightsError, codes_of
from flowspec.io import read_weights, tensors_digest, write_atomic
from tests.helpers import example_spec

SPEC = example_spec(
    [3],
    [
        {"type": "actnorm"},
        {"type": "permute", "order": "random"},
        {"type": "affine_coupling", "mask": "first_half"},
    ],
)


@pytest.fixture()
def saved(tmp_path: Path) -> Path:
    flow = flowspec.compile(SPEC)
    with torch.no_grad():
        flow(torch.randn(64, 3) * 3 + 1)
    return flowspec.save(flow, tmp_path / "model.safetensors")


def test_file_holds_spec_and_metadata(saved: Path) -> None:
    weights = read_weights(saved)
    metadata, tensors = weights.metadata, weights.tensors
    assert metadata["format"] == "flowspec-weights" and metadata["flowspec_version"]
    spec = json.loads(metadata["spec"])
    assert spec["layers"][1]["order"] == "random" and spec["base"] == {"type": "normal"}
    assert "layers.1.perm" in tensors and tensors["layers.0.initialized"].item() is True
    header_len = struct.unpack("<Q", saved.read_bytes()[:8])[0]
    assert json.loads(saved.read_bytes()[8 : 8 + header_len])  # plain safetensors JSON header


def test_loaded_actnorm_is_not_initialised_again(saved: Path) -> None:
    flow = flowspec.load(saved)
    before = flow.layers["0"].log_scale.detach().clone()
    with torch.no_grad():
        flow(torch.randn(64, 3) * 100)  # a batch with very different statistics
    assert torch.equal(flow.layers["0"].log_scale, before)


def test_random_permutation_survives_reload(saved: Path) -> None:
    flow = flowspec.load(saved)
    assert flow.layers["1"].perm.tolist() == list(
        flowspec.build_graph(SPEC).op("layers.1").params["perm"]
    )


def _expect(code: str, path: Path) -> WeightsError:
    with pytest.raises(WeightsError) as info:
        flowspec.load(path)
    assert info.value.codes == [code], info.value.format()
    assert code in codes_of(WeightsError)
    return info.value


def test_missing_file(tmp_path: Path) -> None:
    _expect("weights-missing", tmp_path / "nope.safetensors")


def test_truncated_file(saved: Path) -> None:
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    err = _expect("weights-corrupt", saved)
    assert "truncated" in (err.diagnostics[0].hint or "")


def test_not_safetensors(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"\x80\x04\x95 this is a pickle, not safetensors")
    _expect("weights-corrupt", path)


def test_safetensors_without_spec(tmp_path: Path) -> None:
    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    _expect("weights-format", path)


def _rewrite(path: Path, metadata_change=None, tensor_change=None) -> None:
    """Edit a file; a tensor edit recomputes the tensors' checksum, as a deliberate edit would
    (a flipped bit does not: tests/test_hostile_files.py)."""
    weights = read_weights(path)
    metadata, tensors = dict(weights.metadata), dict(weights.tensors)
    if metadata_change:
        metadata_change(metadata)
    if tensor_change:
        tensor_change(tensors)
        metadata["tensors_sha256"] = tensors_digest(tensors)
    save_file(tensors, str(path), metadata=metadata)


def test_edited_spec_fails_checksum(saved: Path) -> None:
    _rewrite(saved, lambda m: m.update(spec=m["spec"].replace('"random"', '"reverse"')))
    _expect("weights-spec-hash", saved)


def test_tensors_not_matching_spec(saved: Path) -> None:
    _rewrite(saved, tensor_change=lambda t: t.update({"layers.0.bias": torch.zeros(1, 5)}))
    err = _expect("weights-mismatch", saved)
    assert "layers.0.bias" in err.format() and "wrong shape" in err.format()
    _rewrite(saved, tensor_change=lambda t: t.pop("layers.1.perm"))
    assert "missing: layers.1.perm" in _expect("weights-mismatch", saved).format()


def test_invalid_embedded_spec(saved: Path) -> None:
    import hashlib

    def corrupt(m: dict) -> None:
        m["spec"] = m["spec"].replace('"actnorm"', '"actnrom"')
        m["spec_sha256"] = hashlib.sha256(m["spec"].encode()).hexdigest()

    _rewrite(saved, corrupt)
    _expect("weights-spec", saved)


def test_failed_write_leaves_the_old_file_intact(saved: Path) -> None:
    before = saved.read_bytes()

    def crash(tmp: str) -> None:
        Path(tmp).write_bytes(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(saved, crash)
    assert saved.read_bytes() == before
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]


def test_extra_tensors_travel_but_are_ignored_by_load(tmp_path: Path) -> None:
    flow = flowspec.compile(SPEC)
    path = flowspec.save(
        flow,
        tmp_path / "m.safetensors",
        extra_tensors={"optim.step": torch.tensor(5)},
        extra_metadata={"k": "v"},
    )
    weights = read_weights(path)
    assert weights.tensors["optim.step"].item() == 5 and weights.metadata["k"] == "v"
    assert "optim.step" not in weights.state
    flowspec.load(path)


def test_float64_model_comes_back_float64(tmp_path: Path) -> None:
    flow = flowspec.compile(SPEC).double()
    with torch.no_grad():
        flow(torch.randn(64, 3, dtype=torch.float64) * 3 + 1)
        for p in flow.parameters():
            p.add_(1e-9 * torch.randn_like(p))  # digits a float32 round trip would lose
    loaded = flowspec.load(flowspec.save(flow, tmp_path / "m.safetensors"))
    assert {p.dtype for p in loaded.parameters()} == {torch.float64}
    for (name, a), b in zip(flow.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    x = torch.randn(8, 3, dtype=torch.float64)
    assert torch.equal(loaded(x)[0], flow(x)[0])
