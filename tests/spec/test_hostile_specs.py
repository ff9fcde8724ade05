"""Hostile and broken spec files: bounded before anything grows, one meaning per file, every
problem a located diagnostic (never a traceback, never a silent reading)."""

from __future__ import annotations

import resource
import time
from pathlib import Path
from typing import Any

import pytest

import flowspec
from flowspec.errors import FlowspecError, SpecError
from flowspec.spec import limits
from flowspec.spec.source import source_from_text
from tests.helpers import ROOT, example_spec

GOOD = "flowspec: 1\ninput: {shape: [2]}\nlayers: [{type: affine_coupling}]\n"
# Not a speed target (benchmarks/ measure those): a bound on CPU seconds that only a hang or an
# expansion of the input can break (before these checks such inputs ran into MemoryError).
HANG = 30.0


def _codes(spec: Any) -> list[str]:
    with pytest.raises(FlowspecError) as info:
        flowspec.build_graph(spec)
    return info.value.codes


def _error(spec: Any) -> FlowspecError:
    with pytest.raises(FlowspecError) as info:
        flowspec.build_graph(spec)
    return info.value


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------- resources


def _alias_bomb(levels: int = 9) -> str:
    rows = [GOOD.strip(), 'a0: &a0 ["x"]']
    rows += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "\n".join([*rows, f"description: *a{levels}"]) + "\n"


def test_alias_bomb_is_refused_at_once_with_a_location() -> None:
    """9^9 values from 500 bytes: refused before indexing or constructing anything."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.process_time()
    error = _error(_alias_bomb())
    assert time.process_time() - start < HANG
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KB
    (diag,) = error.diagnostics
    assert diag.code == "limit-exceeded" and "(limit aliases)" in diag.message
    assert diag.location is not None and diag.location.line == 14  # the *a9 of 'description'
    assert "--limit aliases=N" in (diag.hint or "")


def test_anchors_within_the_budget_still_work() -> None:
    """The shipped Glow specs reuse their step through an anchor; so may small bombs."""
    assert flowspec.build_graph("specs/glow_cifar10.yaml").latents
    source = source_from_text(_alias_bomb(levels=2))  # 81 values: fine
    assert len(source.data["description"]) == 9
    with limits.raised(aliases=10**9, nodes=10**9):  # raised on purpose: read as written
        assert len(source_from_text(_alias_bomb(levels=5)).data["a5"]) == 9


def test_recursive_alias_is_refused() -> None:
    assert _codes(GOOD + "x: &a [1, *a]\n") == ["limit-exceeded"]


def test_python_data_with_shared_references_is_bounded() -> None:
    """A dict built in Python can nest shared lists like aliases; it is counted as expanded."""
    bomb: Any = ["x"]
    for _ in range(9):
        bomb = [bomb] * 9
    spec = example_spec([2], [{"type": "scale"}], description=bomb)
    start = time.process_time()
    assert _codes(spec) == ["limit-exceeded"]
    assert time.process_time() - start < HANG
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    assert _codes(example_spec([2], [{"type": "scale"}], description=cyclic)) == ["limit-exceeded"]


def _nested_lists(depth: int) -> str:
    return GOOD.replace("[{type: affine_coupling}]", "[" * depth + "]" * depth)


def _nested_repeats(depth: int) -> str:
    text = "{type: scale}"
    for _ in range(depth):
        text = f"{{repeat: 1, body: [{text}]}}"
    return GOOD.replace("[{type: affine_coupling}]", f"[{text}]")


@pytest.mark.parametrize(
    "text", [_nested_lists(1000), _nested_repeats(300)], ids=["lists-1000", "repeats-300"]
)
def test_deep_nesting_is_a_located_error_not_a_recursion_error(text: str) -> None:
    (diag,) = _error(text).diagnostics
    assert diag.code == "limit-exceeded" and "(limit nesting)" in diag.message
    assert diag.location is not None and diag.location.line == 3
    with limits.raised(nesting=5000):  # past what Python's recursion limit can hold
        (diag,) = _error(text).diagnostics
    assert diag.code == "limit-exceeded" and "recursion limit" in diag.message


def test_nesting_within_the_limit_is_fine() -> None:
    assert flowspec.build_graph(_nested_repeats(10)).latents == ("z",)


def test_spec_file_size_is_bounded(tmp_path: Path) -> None:
    big = _write(tmp_path, (GOOD + "description: " + "x" * 1_100_000 + "\n").encode())
    (diag,) = _error(big).diagnostics
    assert diag.code == "limit-exceeded" and "spec_bytes" in diag.message
    assert diag.location is not None and (diag.location.line, diag.location.column) == (1, 1)
    with limits.raised(spec_bytes=2_000_000):
        assert flowspec.build_graph(big).latents == ("z",)


@pytest.mark.parametrize(
    ("shape", "layers", "name", "path"),
    [
        ([2], [{"repeat": 100_000_000, "body": [{"type": "scale"}]}], "ops", "layers.0.repeat"),
        ([1_000_000_000], [{"type": "scale"}], "elements", "input.shape"),
        ([3, 100_000, 100_000], [{"type": "actnorm"}], "elements", "input.shape"),
        (
            [2],
            [{"type": "affine_coupling", "net": {"type": "mlp", "hidden": [10**9]}}],
            "width",
            "layers.0.net.hidden.0",
        ),
        (
            [2],
            [{"type": "affine_coupling", "net": {"type": "mlp", "hidden": [8] * 1000}}],
            "blocks",
            "layers.0.net.hidden",
        ),
        (
            [1, 4, 4],
            [
                {
                    "type": "affine_coupling",
                    "mask": "checkerboard",
                    "net_input": "masked",
                    "net": {"type": "resnet", "blocks": 10**6, "channels": 10**6},
                }
            ],
            "blocks",
            "layers.0.net.blocks",
        ),
    ],
    ids=["repeat-1e8", "input-1e9", "input-3x1e5x1e5", "hidden-1e9", "mlp-depth", "resnet"],
)
def test_sizes_beyond_the_limits_are_refused_before_building(
    shape: list[int], layers: list[dict[str, Any]], name: str, path: str
) -> None:
    start = time.process_time()
    error = _error(example_spec(shape, layers))
    assert time.process_time() - start < HANG
    assert isinstance(error, SpecError)
    found = {d.path: d for d in error.diagnostics}
    assert found[path].code == "limit-exceeded" and f"(limit {name}:" in found[path].message
    assert f"--limit {name}=N" in (found[path].hint or "")


def test_a_raised_limit_lets_a_large_spec_through() -> None:
    spec = example_spec([2], [{"repeat": 150_000, "body": [{"type": "scale"}]}])
    assert _codes(spec) == ["limit-exceeded"]
    with limits.raised(ops=200_000):
        assert flowspec.load_spec(spec).layers[0].repeat == 150_000


def test_limits_in_other_sections_are_located() -> None:
    text = GOOD + "base: {type: mixture, components: 100000000}\ntrain: {threads: 100000}\n"
    error = _error(text)
    paths = {d.path: d.location.line for d in error.diagnostics if d.location}
    assert paths == {"base.components": 4, "train.threads": 5}


def test_limits_api_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="unknown limit"):
        limits.set_limits(opps=3)
    with pytest.raises(ValueError, match="positive integer"):
        limits.set_limits(ops=True)
    assert limits.parse_assignment("elements=1e8") == ("elements", 100_000_000)
    with pytest.raises(ValueError):
        limits.parse_assignment("ops=-1")


# ---------------------------------------------------------------- encodings


@pytest.mark.parametrize(
    ("data", "line", "what"),
    [
        (GOOD.replace("layers", "description: café\nlayers").encode("utf-16"), 1, "UTF-16"),
        (GOOD.replace("layers", "description: café\nlayers").encode("latin-1"), 3, "0xe9"),
        (bytes(range(128, 256)) * 8, 1, "0x80"),
    ],
    ids=["utf-16", "latin-1", "binary"],
)
def test_files_that_are_not_utf8_get_a_located_error(
    tmp_path: Path, data: bytes, line: int, what: str
) -> None:
    path = _write(tmp_path, data)
    (diag,) = _error(path).diagnostics
    assert diag.code == "spec-encoding" and what in diag.message
    assert diag.location is not None and diag.location.line == line
    assert diag.location.filename == str(path)


def test_control_characters_get_a_located_yaml_error(tmp_path: Path) -> None:
    path = _write(tmp_path, (GOOD + "description: a\x00b\n").encode())
    (diag,) = _error(path).diagnostics
    assert diag.code == "yaml-syntax" and diag.location is not None and diag.location.line == 4


def test_utf8_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = _write(tmp_path, b"\xef\xbb\xbf" + GOOD.replace("layers", "name: café\nlayers").encode())
    assert flowspec.load_spec(path).name == "café"


# ---------------------------------------------------------------- one meaning


def test_duplicate_keys_are_errors_at_the_second_key() -> None:
    twice = GOOD + "layers: [{type: scale}]\n"
    (diag,) = _error(twice).diagnostics
    assert diag.code == "duplicate-key" and "'layers'" in diag.message and "line 3" in diag.message
    assert diag.location is not None and diag.location.line == 4
    (diag,) = _error(GOOD.replace("affine_coupling", "affine_coupling, type: scale")).diagnostics
    assert diag.code == "duplicate-key" and "'type'" in diag.message
    assert diag.location is not None and diag.location.column == 34


def test_merge_keys_may_override_merged_values() -> None:
    text = (
        "flowspec: 1\ninput: {shape: [2]}\nnet: &net {type: mlp, hidden: [8]}\n"
        "layers: [{type: affine_coupling, net: {<<: *net, hidden: [4]}}]\n"
    )
    error = _error(text)  # 'net' at the top level is unknown, but nothing is a duplicate
    assert error.codes == ["unknown-key"]
    ok = text.replace("net: &net {type: mlp, hidden: [8]}\n", "description: &net {a: 1}\n")
    assert "duplicate-key" not in _codes(ok.replace("<<: *net, ", ""))


@pytest.mark.parametrize(
    ("value", "yaml11"),
    [("010", "the number 8"), ("1:30", "the number 90"), ("0b11", "the number 3")],
)
def test_yaml11_numbers_are_not_numbers(value: str, yaml11: str) -> None:
    (diag,) = _error(GOOD.replace("[2]", f"[{value}]")).diagnostics
    assert (diag.code, diag.path) == ("bad-value", "input.shape.0")
    assert f"expected an integer > 0, got the string '{value}'" in diag.message
    assert yaml11 in (diag.hint or "")


@pytest.mark.parametrize(
    ("train", "path", "expected"),
    [
        ("{threads: yes}", "train.threads", "the boolean True"),
        ("{threads: true}", "train.threads", "a boolean is not a number"),
        ('{epochs: "5"}', "train.epochs", "quoted"),
        ("{steps: 1e3}", "train.steps", "write 1000"),
        ("{steps: 100.0}", "train.steps", "write 100"),
        ("{lr: .inf}", "train.lr", "infinite"),
        ("{lr: .nan}", "train.lr", "infinite"),
        ("{clip_grad_norm: -.inf}", "train.clip_grad_norm", "infinite"),
        ("{lr: yes}", "train.lr", "the boolean True"),
        ("{seed: -1}", "train.seed", ""),
    ],
)
def test_values_are_never_coerced(train: str, path: str, expected: str) -> None:
    (diag,) = _error(GOOD + f"train: {train}\n").diagnostics
    assert (diag.code, diag.path) == ("bad-value", path)
    assert diag.location is not None and diag.location.line == 4
    assert expected in diag.message + (diag.hint or "")


def test_booleans_are_not_mask_bits_and_strings_are_not_booleans() -> None:
    mask = GOOD.replace("affine_coupling", "affine_coupling, mask: [true, 0]")
    assert "layers.0.mask.0" in {d.path for d in _error(mask).diagnostics}
    squeeze = GOOD.replace("[2]", "[1, 2, 2]").replace(
        "layers: [{type: affine_coupling}]", "levels: [{squeeze: yes}]"
    )
    found = {d.path: d for d in _error(squeeze).diagnostics}
    assert "the boolean True" in (found["levels.0.squeeze"].hint or "")


def test_what_stays_valid() -> None:
    """Ints where floats are expected, ``1e-3`` as a float, quoted YAML-1.1 words as names."""
    spec = flowspec.load_spec(
        GOOD + 'name: "no"\ntrain: {lr: 1, min_lr: 1e-3, clip_grad_norm: 5, steps: 1_000}\n'
    )
    assert spec.name == "no" and spec.train is not None
    assert (spec.train.lr, spec.train.min_lr, spec.train.steps) == (1.0, 1e-3, 1000)
    assert isinstance(spec.train.lr, float)
    assert flowspec.load_spec(GOOD + "name: yes\n").name == "yes"  # a string where one is wanted
    assert flowspec.load_spec(GOOD + "description: 2024-01-01\n").description == "2024-01-01"


def test_min_lr_above_lr_is_located_at_min_lr() -> None:
    (diag,) = _error(GOOD + "train: {lr: 1.0e-3,\n        min_lr: 0.1}\n").diagnostics
    assert (diag.code, diag.path) == ("bad-value", "train.min_lr")
    assert diag.location is not None and diag.location.line == 5
    assert "min_lr 0.1 is above lr 0.001" in diag.message


@pytest.mark.parametrize("name", ["../../..", "a/b", "..", ".hidden", "", "x" * 101, "a b"])
def test_the_name_is_not_a_path(name: str) -> None:
    (diag,) = _error(GOOD + f"name: {name!r}\n").diagnostics
    assert (diag.code, diag.path) == ("bad-value", "name") and "runs/<name>" in diag.message


def test_shipped_specs_read_unchanged() -> None:
    for path in sorted((ROOT / "specs").glob("*.yaml")):
        assert flowspec.build_graph(path).latents


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("layers: [{type: coupling, transform: {type: spline, bins: 100000}}]",
         "layers.0.transform.bins"),
        ("context: {classes: 1000000000, embedding: 4}\nlayers: [{type: coupling}]",
         "context.classes"),
        ("context: {classes: 10, embedding: 1000000}\nlayers: [{type: coupling}]",
         "context.embedding"),
        ("layers: [{type: autoregressive, net: {hidden: [1000000]}}]", "layers.0.net.hidden.0"),
        ("base: {type: conditional_normal, hidden: [1000000]}\ncontext: {classes: 2}\n"
         "layers: [{type: coupling}]", "base.hidden.0"),
    ],
)  # fmt: skip
def test_new_sizes_are_bounded_before_anything_is_built(text: str, path: str) -> None:
    """Spline bins, class counts, embeddings and MADE / conditional-base widths are widths: a
    located limit error from validate, long before a tensor is allocated."""
    spec = "flowspec: 1\ninput: {shape: [4]}\n" + text + "\n"
    error = _error(spec)
    assert [d.code for d in error.diagnostics] == ["limit-exceeded"]
    assert error.diagnostics[0].path == path and "(limit width:" in error.diagnostics[0].message
