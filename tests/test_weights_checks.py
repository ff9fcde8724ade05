"""Weights files are checked before they are trusted: the tensors' checksum, the buffers'
invariants, the embedded spec through the limits before anything is built; inspect never
builds the model and load returns eval mode."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import flowspec
from flowspec.cli import main
from flowspec.errors import WeightsError
from flowspec.io import read_weights
from tests.fingerprints import record
from tests.helpers import WEIGHTS_SPEC, example_spec, reseal, rewrite_weights, set_tensor

SPEC = WEIGHTS_SPEC


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

    assert _codes(rewrite_weights(model, rename, "dtype.safetensors")) == ["weights-checksum"]


# ---------------------------------------------------------------- invariants


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
    bad = rewrite_weights(model, set_tensor(key, value), "bad.safetensors")
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
        reseal(tensors, metadata)

    with pytest.raises(WeightsError, match="not the permutation the spec defines"):
        flowspec.load(rewrite_weights(path, swap, "swapped.safetensors"))


def test_plain_invconv_must_be_invertible(tmp_path: Path) -> None:
    spec = example_spec([2], [{"type": "invconv", "lu": False}])
    path = flowspec.save(flowspec.compile(spec), tmp_path / "plain.safetensors")
    singular = rewrite_weights(
        path, set_tensor("layers.0.weight", lambda w: w * 0), "singular.safetensors"
    )
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
        reseal(tensors, metadata)

    return rewrite_weights(model, edit, "embedded.safetensors")


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
    with flowspec.spec.limits.raised(nesting=20):
        assert _codes(path) == ["weights-spec"]
        assert main(["inspect", str(path)]) == 1
    assert time.perf_counter() - start < 30  # a hang guard, not a speed target
    assert expected in capsys.readouterr().err


def test_an_oversized_or_unreadable_embedded_spec_is_refused(model: Path) -> None:
    def huge(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
        metadata["spec"] = "[" * 2_000_000 + "]" * 2_000_000
        reseal(tensors, metadata)

    assert _codes(rewrite_weights(model, huge, "huge.safetensors")) == ["weights-spec"]
    with flowspec.spec.limits.raised(spec_bytes=10**7):  # read: json would recurse too deep
        assert _codes(rewrite_weights(model, huge, "huge.safetensors")) == ["weights-spec"]


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
