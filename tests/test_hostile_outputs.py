"""Non-finite results are errors, requests are bounded, data files are checked before they are
read, and the numerical checks cannot pass falsely."""

from __future__ import annotations

import struct
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import flowspec
from flowspec.cli import main
from flowspec.data import load_splits
from flowspec.errors import DataError
from tests.helpers import WEIGHTS_SPEC, example_spec, reseal, rewrite_weights, set_tensor

SPEC = WEIGHTS_SPEC


# ---------------------------------------------------------------- non-finite outputs


def _nan_model(model: Path) -> Path:
    return rewrite_weights(model, _nan_edit, "nan.safetensors")


def _nan_edit(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Finite weights that pass every check but give no finite numbers: a coupling whose
    log-scale is -1e30 (its logdet is -inf forwards, its inverse multiplies by inf)."""
    tensors["layers.1.scale"] = tensors["layers.1.scale"] * 0 - 1e30
    tensors["layers.1.net.trunk.2.bias"] = tensors["layers.1.net.trunk.2.bias"] + 1.0
    reseal(tensors, metadata)


def test_eval_json_never_prints_nan(model: Path, capsys: Any) -> None:
    """A finite actnorm scale of exp(100) overflows float32: inf, then NaN downstream."""
    path = rewrite_weights(
        model, set_tensor("layers.0.log_scale", lambda t: t * 0 + 100), "big.safetensors"
    )
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
    assert flowspec.spec.limits.limit("diagnostics") == 20  # the flag lasts one command


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
    with flowspec.spec.limits.raised(parameters=10**12):
        assert flowspec.spec.limits.limit("parameters") == 10**12


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
    assert [r.name for r in results if not r.ok] == ["round trip on integer data"]


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
