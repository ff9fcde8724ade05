"""Files are checked before they are trusted, and non-finite results are errors: weights files
(checksums, embedded specs through the limits, buffer invariants), data file headers, and the
outputs of ``eval`` and ``sample``."""

from __future__ import annotations

import hashlib
import json
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import flowspec
from flowspec.cli import main
from flowspec.data import load_splits
from flowspec.errors import DataError, WeightsError
from flowspec.io import read_weights
from tests.fingerprints import record
from tests.helpers import example_spec

SPEC = example_spec(
    [2],
    [
        {"type": "actnorm"},
        {"type": "affine_coupling", "mask": "first_half", "net": {"type": "mlp", "hidden": [8]}},
        {"type": "permute", "order": "reverse"},
        {"type": "invconv", "lu": True},
        {"type": "batchnorm"},
        {"type": "affine_coupling", "mask": "first_half", "net": {"type": "mlp", "hidden": [8]}},
    ],
    data={"name": "moons"},
)


@pytest.fixture()
def model(tmp_path: Path) -> Path:
    flow = flowspec.compile(SPEC)
    with torch.no_grad():
        flow(torch.randn(256, 2))  # actnorm's data-dependent init and batchnorm statistics
    return flowspec.save(flow, tmp_path / "model.safetensors")


def _rewrite(
    path: Path, edit: Callable[[dict[str, torch.Tensor], dict[str, str]], None], name: str
) -> Path:
    """A copy of ``path`` with tensors/metadata edited; the checksums are left as they were
    unless ``edit`` changes them (an attacker can recompute them; a flipped bit does not)."""
    with safe_open(str(path), framework="pt") as fh:
        metadata = dict(fh.metadata())
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    edit(tensors, metadata)
    out = path.parent / name
    save_file(tensors, str(out), metadata=metadata)
    return out


def _resealed(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Recompute both checksums, as someone editing a file on purpose would."""
    from flowspec.io import tensors_digest

    metadata["tensors_sha256"] = tensors_digest(tensors)
    metadata["spec_sha256"] = hashlib.sha256(metadata["spec"].encode()).hexdigest()


def _codes(path: Path, **kwargs: Any) -> list[str]:
    with pytest.raises(WeightsError) as info:
        flowspec.load(path, **kwargs)
    return info.value.codes


# ---------------------------------------------------------------- checksums


def test_a_flipped_bit_in_the_tensors_is_detected(model: Path) -> None:
    data = bytearray(model.read_bytes())
    data[-3] ^= 0x40  # a bit of the last tensor
    flipped = model.parent / "flipped.safetensors"
    flipped.write_bytes(bytes(data))
    assert _codes(flipped) == ["weights-checksum"]
    flowspec.load(flipped, verify=False)  # --no-verify: read as it is
    assert main(["eval", str(flipped), "--json"]) == 1
    assert main(["inspect", str(flipped), "--no-verify"]) == 0


def test_files_written_by_flowspec_0_1_have_no_checksum_and_still_load() -> None:
    old = record.OUT / "glow_digits.safetensors"
    assert "tensors_sha256" not in read_weights(old).metadata
    assert flowspec.load(old).num_parameters() > 0  # bit for bit: tests/test_fingerprints.py


def test_checksum_covers_names_dtypes_and_shapes(model: Path) -> None:
    def rename(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
        tensors["layers.0.bias"] = tensors["layers.0.bias"].double()

    assert _codes(_rewrite(model, rename, "dtype.safetensors")) == ["weights-checksum"]


# ---------------------------------------------------------------- invariants


def _set(key: str, value: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    def edit(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
        tensors[key] = value(tensors[key])
        _resealed(tensors, metadata)

    return edit


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("layers.2.perm", lambda t: t * 0, "layers.2.perm: not a permutation"),
        ("layers.2.perm", lambda t: t + 5, "layers.2.perm: not a permutation"),
        ("layers.2.inverse_perm", lambda t: t.flip(0), "inverse_perm: not the inverse"),
        ("layers.3.sign", lambda t: t * 0, "layers.3.sign: entries other than +1 and -1"),
        ("layers.3.p", lambda t: t * 0, "layers.3.p: not a permutation matrix"),
        ("layers.0.log_scale", lambda t: t + float("inf"), "layers.0.log_scale holds NaN"),
        ("layers.4.running_var", lambda t: -t, "layers.4.running_var: values <= -eps"),
        ("layers.1.net.trunk.0.weight", lambda t: t * float("nan"), "holds NaN"),
    ],
    ids=[
        "perm-zero",
        "perm-range",
        "inverse-perm",
        "lu-sign",
        "lu-p",
        "actnorm-inf",
        "running-var",
        "nan-weight",
    ],
)
def test_buffers_that_break_their_invariant_are_refused(
    model: Path, key: str, value: Callable[[torch.Tensor], torch.Tensor], expected: str
) -> None:
    bad = _rewrite(model, _set(key, value), "bad.safetensors")
    with pytest.raises(WeightsError) as info:
        flowspec.load(bad)
    assert info.value.codes == ["weights-invalid"] and expected in info.value.format()
    assert main(["eval", str(bad), "--json"]) == 1  # no number for a model that is no flow


def test_a_permutation_other_than_the_specs_is_refused(tmp_path: Path) -> None:
    spec = example_spec([3], [{"type": "permute", "order": "random"}, {"type": "scale"}])
    path = flowspec.save(flowspec.compile(spec), tmp_path / "perm.safetensors")

    def swap(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
        perm = tensors["layers.0.perm"].flip(0)
        tensors["layers.0.perm"], tensors["layers.0.inverse_perm"] = perm, torch.argsort(perm)
        _resealed(tensors, metadata)

    with pytest.raises(WeightsError, match="not the permutation the spec defines"):
        flowspec.load(_rewrite(path, swap, "swapped.safetensors"))


def test_plain_invconv_must_be_invertible(tmp_path: Path) -> None:
    spec = example_spec([2], [{"type": "invconv", "lu": False}])
    path = flowspec.save(flowspec.compile(spec), tmp_path / "plain.safetensors")
    singular = _rewrite(path, _set("layers.0.weight", lambda w: w * 0), "singular.safetensors")
    with pytest.raises(WeightsError, match=r"layers\.0\.weight: a singular matrix"):
        flowspec.load(singular)


# ---------------------------------------------------------------- embedded specs


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def _embedded(model: Path, change: Callable[[dict[str, Any]], Any]) -> Path:
    def edit(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
        spec = json.loads(metadata["spec"])
        change(spec)
        metadata["spec"] = json.dumps(spec, sort_keys=True)
        _resealed(tensors, metadata)

    return _rewrite(model, edit, "embedded.safetensors")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda s: s.update(layers=[{"repeat": 10**8, "body": [{"type": "scale"}]}]), "ops"),
        (lambda s: s.update(input={"shape": [10**9]}), "elements"),
        (lambda s: s["layers"][1]["net"].update(hidden=[10**9]), "width"),
        (lambda s: s.update(description=_nested(32)), "nesting"),
        (lambda s: s.update(name="../../escape"), "name"),
    ],
    ids=["repeat-1e8", "input-1e9", "hidden-1e9", "nesting", "name"],
)
def test_the_embedded_spec_goes_through_the_limits_first(
    model: Path, change: Callable[[dict[str, Any]], Any], expected: str, capsys: Any
) -> None:
    path = _embedded(model, change)
    start = time.perf_counter()
    with flowspec.limits.raised(nesting=20):
        assert _codes(path) == ["weights-spec"]
        assert main(["inspect", str(path)]) == 1
    assert time.perf_counter() - start < 30  # a hang guard, not a speed target
    assert expected in capsys.readouterr().err


def test_an_oversized_or_unreadable_embedded_spec_is_refused(model: Path) -> None:
    def huge(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
        metadata["spec"] = "[" * 2_000_000 + "]" * 2_000_000
        _resealed(tensors, metadata)

    assert _codes(_rewrite(model, huge, "huge.safetensors")) == ["weights-spec"]
    with flowspec.limits.raised(spec_bytes=10**7):  # read: json would recurse too deep
        assert _codes(_rewrite(model, huge, "huge.safetensors")) == ["weights-spec"]


def test_inspect_never_builds_the_model(model: Path, monkeypatch: Any, capsys: Any) -> None:
    import flowspec.nn.compile

    def refuse(*args: Any) -> None:
        raise AssertionError("inspect built the model")

    total = sum(p.numel() for p in flowspec.compile(SPEC).parameters())  # buffers excluded
    monkeypatch.setattr(flowspec.nn.compile, "compile_graph", refuse)
    assert main(["inspect", str(model)]) == 0
    out = capsys.readouterr().out
    assert "parameters per layer" in out and f"total{total:>14,}".replace(" ", "") in out.replace(
        " ", ""
    )
    assert "tensors: " in out and "(verified)" in out


def test_load_returns_eval_mode(model: Path) -> None:
    flow = flowspec.load(model)
    assert not flow.training and not any(m.training for m in flow.modules())
    x = torch.randn(32, 2)
    before = flow.layers["4"].running_mean.clone()
    first, second = flow.log_prob(x), flow.log_prob(x)
    assert torch.equal(first, second) and torch.equal(flow.layers["4"].running_mean, before)


# ---------------------------------------------------------------- non-finite outputs


def _nan_model(model: Path) -> Path:
    return _rewrite(model, _nan_edit, "nan.safetensors")


def _nan_edit(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Finite weights that pass every check but give no finite numbers: a coupling whose
    log-scale is -1e30 (its logdet is -inf forwards, its inverse multiplies by inf)."""
    tensors["layers.1.scale"] = tensors["layers.1.scale"] * 0 - 1e30
    tensors["layers.1.net.trunk.2.bias"] = tensors["layers.1.net.trunk.2.bias"] + 1.0
    _resealed(tensors, metadata)


def test_eval_json_never_prints_nan(model: Path, capsys: Any) -> None:
    """A finite actnorm scale of exp(100) overflows float32: inf, then NaN downstream."""
    path = _rewrite(model, _set("layers.0.log_scale", lambda t: t * 0 + 100), "big.safetensors")
    assert main(["eval", str(path), "--json"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "error[nonfinite-output]" in err and "the NLL is nan" in err
    assert "first non-finite output is at layer 'layers.0' (actnorm)" in err


def test_sample_writes_nothing_when_samples_are_not_finite(
    model: Path, tmp_path: Path, capsys: Any
) -> None:
    path, out = _nan_model(model), tmp_path / "s.npy"
    assert main(["sample", str(path), "-n", "100", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "error[nonfinite-output]" in err and "inverse pass" in err and "layers.1" in err
    assert not out.exists()


def test_sample_streams_and_bounds_n(model: Path, tmp_path: Path, capsys: Any) -> None:
    from flowspec.cli.sample import BATCH

    out = tmp_path / "s.npy"
    assert main(["sample", str(model), "-n", str(2 * BATCH + 3), "-o", str(out)]) == 0
    samples = np.load(out)
    assert samples.shape == (2 * BATCH + 3, 2) and np.isfinite(samples).all()
    assert samples.dtype == np.float32
    assert main(["sample", str(model), "-n", "1000000000", "-o", str(out)]) == 2
    assert "above the samples limit" in capsys.readouterr().err
    small = tmp_path / "small.npy"
    assert main(["sample", str(model), "-n", "7", "-o", str(small), "--seed", "3"]) == 0
    torch.manual_seed(3)
    expected = flowspec.load(model).sample(7).detach()
    assert np.array_equal(np.load(small), expected.numpy())  # batching keeps the stream


def test_sample_and_log_prob_check_their_arguments(model: Path) -> None:
    flow = flowspec.load(model)
    for n in (-1, 2.5, True):
        with pytest.raises(ValueError, match="n must be an integer >= 0"):
            flow.sample(n)  # type: ignore[arg-type]
    for temperature in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature must be a finite number >= 0"):
            flow.sample(4, temperature=temperature)
    assert flow.sample(0).shape == (0, 2) and flow.sample(3, temperature=0).shape == (3, 2)
    with pytest.raises(ValueError, match=r"torch\.Tensor"):
        flow.log_prob(np.zeros((3, 2)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="per-example shape"):
        flow.log_prob(torch.zeros(3, 3))


# ---------------------------------------------------------------- data files and flags


def test_npy_header_claiming_more_than_the_file_holds(tmp_path: Path) -> None:
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000, 2), }"
    header += " " * (63 - len(header) % 64) + "\n"
    path = tmp_path / "bomb.npy"
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
    with pytest.raises(DataError) as info:
        load_splits(str(path))
    assert info.value.codes == ["data-unreadable"] and "claims an array" in info.value.format()
    truncated = tmp_path / "cut.npy"
    np.save(truncated, np.zeros((100, 2), dtype=np.float32))
    truncated.write_bytes(truncated.read_bytes()[:-8])
    with pytest.raises(DataError, match="truncated"):
        load_splits(str(truncated))


def test_threads_are_bounded(capsys: Any) -> None:
    spec = "specs/nice_moons.yaml"
    assert main(["train", spec, "--steps", "1", "--threads", "1000000", "--out", "/nowhere"]) == 2
    assert "above the threads limit" in capsys.readouterr().err
    config = flowspec.TrainSpec(steps=1, threads=10**6)
    with pytest.raises(flowspec.SpecError, match="limit threads"):
        flowspec.train(spec, config=config)


def test_limit_flag_and_diagnostic_cap(tmp_path: Path, capsys: Any) -> None:
    many = tmp_path / "many.yaml"
    many.write_text(
        "flowspec: 1\ninput: {shape: [2]}\nlayers: [" + "{type: scale, x: 1}, " * 50 + "]\n"
    )
    assert main(["validate", str(many)]) == 1
    err = capsys.readouterr().err
    assert err.count("error[unknown-key]") == 20 and "... and 30 more diagnostics" in err
    assert main(["validate", str(many), "--limit", "diagnostics=100"]) == 1
    assert capsys.readouterr().err.count("error[unknown-key]") == 50
    with pytest.raises(SystemExit):
        main(["validate", str(many), "--limit", "bogus=3"])
    assert flowspec.limits.limit("diagnostics") == 20  # the flag lasts one command


def test_parameter_limit_refuses_before_allocating() -> None:
    wide = example_spec(
        [2], [{"type": "affine_coupling", "net": {"type": "mlp", "hidden": [16384] * 200}}]
    )
    start = time.perf_counter()
    with pytest.raises(flowspec.SpecError) as info:
        flowspec.compile(wide)
    assert time.perf_counter() - start < 60  # 53 G parameters were never allocated
    (diag,) = info.value.diagnostics
    assert diag.code == "limit-exceeded" and "limit parameters" in diag.message
    assert diag.path == "layers.0"
    with flowspec.limits.raised(parameters=10**12):
        assert flowspec.limits.limit("parameters") == 10**12


# ---------------------------------------------------------------- checks that cannot pass falsely


def test_an_infinite_or_nan_error_never_passes() -> None:
    from flowspec.nn.oracles import OracleResult

    assert not OracleResult("x", float("inf"), float("inf")).ok
    assert not OracleResult("x", float("nan"), 1.0).ok
    assert not OracleResult("x", 0.0, float("nan")).ok
    assert OracleResult("x", 0.0, 0.0).ok


def test_check_round_trips_integer_data_through_dequantized_flows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two dequantize layers (what validated before the preprocessing grammar): the inverse
    does not undo them, which only the round trip on integer data can see (the deterministic
    round trips switch noise and rounding off)."""
    from flowspec.graph import build as graph_build
    from flowspec.nn.oracles import run_oracles

    good = example_spec(
        [4], [{"type": "dequantize", "levels": 4}, {"type": "affine_coupling", "mask": "even"}]
    )
    results = run_oracles(flowspec.compile(good), n=4)
    assert results[-1].name == "round trip on integer data" and all(r.ok for r in results)
    twice = {**good, "preprocess": [{"type": "dequantize", "levels": 4}] * 2}
    monkeypatch.setattr(graph_build._Builder, "preprocessing", lambda self, kind, path: None)
    results = run_oracles(flowspec.compile(twice), n=4)
    assert [r.ok for r in results] == [True, True, True, False]


def test_check_refuses_preprocessing_out_of_order(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "twice.yaml"
    path.write_text(
        "flowspec: 1\ninput: {shape: [2]}\n"
        "preprocess: [{type: dequantize, levels: 4}, {type: dequantize, levels: 4}]\n"
        "layers: [{type: affine_coupling}]\n"
    )
    assert main(["check", str(path)]) == 1
    assert "error[preprocess-order]" in capsys.readouterr().err


def test_resume_refuses_data_whose_contents_changed(tmp_path: Path) -> None:
    data = tmp_path / "points.npy"
    np.save(data, np.random.default_rng(0).normal(size=(200, 2)).astype(np.float32))
    config = flowspec.TrainSpec(steps=6, batch_size=32, val_every=3, threads=1)
    out = tmp_path / "run"
    first = flowspec.train(SPEC, data=str(data), config=config, out_dir=out, stop_after=3)
    assert first.status == "stopped"
    np.save(data, np.random.default_rng(1).normal(size=(200, 2)).astype(np.float32))
    with pytest.raises(flowspec.TrainingError) as info:
        flowspec.train(SPEC, data=str(data), config=config, out_dir=out, resume=True)
    assert info.value.codes == ["resume-mismatch"] and "contents" in info.value.format()
    np.save(data, np.random.default_rng(0).normal(size=(200, 2)).astype(np.float32))
    done = flowspec.train(SPEC, data=str(data), config=config, out_dir=out, resume=True)
    assert done.status == "completed" and done.step == 6
