"""Data a flow cannot model is refused before training, whole files load unsplit, the CSV reader
keeps its located errors, and the digits need their optional extra."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import flowspec
from flowspec.data import check_levels, load_examples, load_splits
from flowspec.errors import DataError, FlowspecError
from flowspec.spec.training import TrainSpec
from flowspec.training import train

DEQUANTIZED = {
    "flowspec": 1,
    "name": "levels8",
    "input": {"shape": [4]},
    "preprocess": [{"type": "dequantize", "levels": 8}, {"type": "logit"}],
    "layers": [{"type": "affine_coupling", "mask": "alternating",
                "net": {"type": "mlp", "hidden": [8]}}],
}  # fmt: skip


def _expect(code: str, *args: object, **kwargs: object) -> DataError:
    with pytest.raises(DataError) as exc:
        train(*args, **kwargs)  # type: ignore[arg-type]
    assert exc.value.codes == [code], exc.value.format()
    return exc.value


def test_float_data_into_dequantize_is_refused_before_training(tmp_path: Path) -> None:
    x = np.random.default_rng(0).uniform(0, 7, size=(100, 4)).astype(np.float32)
    np.save(tmp_path / "floats.npy", x)
    err = _expect("data-not-integer", DEQUANTIZED, data=str(tmp_path / "floats.npy"),
                  steps=2, out_dir=tmp_path / "run")  # fmt: skip
    low, high = float(x.min()), float(x.max())
    assert f"{low:.6g} .. {high:.6g}" in err.format() and "integers 0 .. 7" in err.format()
    assert not (tmp_path / "run").exists()  # nothing written: refused before the first step


def test_integers_above_levels_are_refused_with_the_levels_to_use(tmp_path: Path) -> None:
    x = np.random.default_rng(0).integers(0, 12, size=(100, 4))
    np.save(tmp_path / "ints.npy", x)
    err = _expect("data-levels", DEQUANTIZED, data=str(tmp_path / "ints.npy"), steps=2)
    assert f"0 .. {x.max()}" in err.format() and "levels: 8" in err.format()
    assert f"levels: {x.max() + 1}" in (err.diagnostics[0].hint or "")
    np.save(tmp_path / "neg.npy", x - 3)
    assert "start at 0" in (_expect("data-levels", DEQUANTIZED, data=str(tmp_path / "neg.npy"),
                                    steps=2).diagnostics[0].hint or "")  # fmt: skip


def test_integral_floats_and_integers_in_range_train() -> None:
    x = np.random.default_rng(0).integers(0, 8, size=(100, 4))
    check_levels([x, x.astype(np.float32)], 8, "ints")  # integer values stored as floats pass
    check_levels([np.full((3, 2), 0.5)], None, "no dequantize")  # nothing to check
    with pytest.raises(DataError):
        check_levels([x, x + 0.25], 8, "one split with fractions")


def test_load_examples_reads_every_row_of_a_small_file(tmp_path: Path) -> None:
    x = np.arange(10, dtype=np.float32).reshape(5, 2)
    np.save(tmp_path / "five.npy", x)
    got, levels = load_examples(str(tmp_path / "five.npy"), (2,))
    np.testing.assert_array_equal(got, x)  # all five rows, in file order, not shuffled
    assert levels is None
    with pytest.raises(DataError) as exc:  # the same file cannot be split 80/10/10
        load_splits(str(tmp_path / "five.npy"))
    assert exc.value.codes == ["data-too-small"]
    assert "flowspec eval --data FILE" in (exc.value.diagnostics[0].hint or "")
    np.save(tmp_path / "empty.npy", np.zeros((0, 2), dtype=np.float32))
    with pytest.raises(DataError) as exc:
        load_examples(str(tmp_path / "empty.npy"))
    assert exc.value.codes == ["data-too-small"]
    with pytest.raises(DataError) as exc:
        load_examples("moons")
    assert exc.value.codes == ["unknown-dataset"] and "--split" in str(exc.value)


def test_csv_reader_matches_python_parsing_and_keeps_located_errors(tmp_path: Path) -> None:
    data = np.random.default_rng(3).standard_normal((40, 3))
    lines = ["a,b,c"] + [",".join(repr(float(v)) for v in row) for row in data]
    path = tmp_path / "d.csv"
    path.write_text("\n" + "\n".join(lines[:20]) + "\n\n" + "\n".join(lines[20:]) + "\n")
    got, _ = load_examples(str(path), (3,))
    oracle = np.array([[float(f) for f in line.split(",")] for line in lines[1:]])
    np.testing.assert_array_equal(got, oracle.astype(np.float32))  # every digit parsed alike
    bad = list(lines)
    bad[30] = bad[30].replace(",", ",x", 1)
    path.write_text("\n".join(bad) + "\n")
    with pytest.raises(DataError) as exc:
        load_examples(str(path))
    assert exc.value.codes == ["data-unreadable"] and "line 31, column 2" in str(exc.value)
    bad[30] = lines[30] + ",1.0"
    path.write_text("\n".join(bad) + "\n")
    with pytest.raises(DataError) as exc:
        load_examples(str(path))
    assert "line 31: 4 values, but the first row has 3" in str(exc.value)
    (tmp_path / "latin1.csv").write_bytes("x\xe9,y\n1,2\n".encode("latin-1"))
    with pytest.raises(DataError) as exc:
        load_examples(str(tmp_path / "latin1.csv"))
    assert exc.value.codes == ["data-unreadable"]


def test_digits_without_scikit_learn_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # import fails as if absent
    with pytest.raises(FlowspecError) as exc:
        load_splits("digits")
    assert exc.value.codes == ["missing-extra"]
    assert "flowspec[digits]" in (exc.value.diagnostics[0].hint or "")


def test_unknown_data_name_is_a_located_error_when_the_spec_is_read(tmp_path: Path) -> None:
    path = tmp_path / "moon.yaml"
    path.write_text("flowspec: 1\ninput: {shape: [2]}\nlayers: [{type: scale}]\n"
                    "data: {name: moon}\n")  # fmt: skip
    with pytest.raises(DataError) as exc:
        flowspec.load_spec(path)
    diag = exc.value.diagnostics[0]
    assert diag.code == "unknown-dataset" and diag.path == "data.name"
    assert str(diag.location) == f"{path}:4:8" and "did you mean 'moons'?" in (diag.hint or "")
    spec = flowspec.load_spec({**DEQUANTIZED, "data": {"name": "some/file.npy"}})
    assert spec.data is not None  # a path is not checked until the data is read
    assert TrainSpec().threads is None
