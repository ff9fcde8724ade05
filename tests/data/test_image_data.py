"""Image data on disk: PNG/JPEG folders, CIFAR-10 binary batches, ImageNet-style .npz and
memory-mapped .npy, each written by the test from known arrays (the oracle), and one located
DataError per malformed file."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flowspec.data import Rows, load_splits
from flowspec.data.base import MappedArray, carve
from flowspec.data.npz import npz_member
from flowspec.errors import DataError

RNG = np.random.default_rng(0)


def _code(exc: pytest.ExceptionInfo[DataError]) -> str:
    return exc.value.diagnostics[0].code


def _rows(*arrays: np.ndarray | Rows) -> list[bytes]:
    return sorted(np.asarray(a)[i].tobytes() for a in arrays for i in range(len(a)))


def write_png(path: Path, pixels: np.ndarray) -> None:
    """``pixels`` (C, H, W) uint8 as a PNG (grey for C = 1)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)
    Image.fromarray(image).save(path)


def images(n: int, shape: tuple[int, ...]) -> np.ndarray:
    return RNG.integers(0, 256, size=(n, *shape), dtype=np.uint8)


# ---------------------------------------------------------------------- folders of images


def test_unlabelled_png_folder_round_trips(tmp_path: Path) -> None:
    pixels = images(12, (3, 5, 6))
    for i, p in enumerate(pixels):
        write_png(tmp_path / f"img{i:02d}.png", p)
    (tmp_path / "README.txt").write_text("ignored")
    s = load_splits(str(tmp_path), (3, 5, 6))
    assert isinstance(s.train, Rows) and s.train.dtype == np.uint8 and s.shape == (3, 5, 6)
    assert (len(s.train), len(s.val), len(s.test)) == (9, 1, 2)
    assert s.discrete_levels == 256 and s.contexts is None
    assert _rows(s.train, s.val, s.test) == _rows(pixels)


def test_class_folders_give_labels(tmp_path: Path) -> None:
    pixels = {"cat": images(5, (1, 4, 4)), "dog": images(7, (1, 4, 4))}
    for name, group in pixels.items():
        for i, p in enumerate(group):
            write_png(tmp_path / name / ("deep" if i % 2 else "") / f"{i}.png", p)
    s = load_splits(str(tmp_path), (1, 4, 4), seed=3)
    assert s.contexts is not None
    for split, labels in zip((s.train, s.val, s.test), s.contexts):
        assert labels.dtype == np.int64 and len(labels) == len(split)
        for row, label in zip(np.asarray(split), labels):
            source = pixels[("cat", "dog")[label]]
            assert any(np.array_equal(row, p) for p in source)
    assert sorted(np.concatenate(s.contexts).tolist()) == [0] * 5 + [1] * 7


def test_center_crop_resize_and_grey_against_pillow(tmp_path: Path) -> None:
    wide = images(10, (3, 8, 12))
    for i, p in enumerate(wide):
        write_png(tmp_path / "a" / f"{i}.png", p)
    s = load_splits(str(tmp_path / "a"), (1, 4, 4), size=(4, 4), crop="center")
    got = np.asarray(s.train)[0]
    # oracle: Pillow itself, on the image the first training row came from
    candidates = []
    for p in wide:
        image = Image.fromarray(p.transpose(1, 2, 0)).convert("L").crop((2, 0, 10, 8))
        candidates.append(np.asarray(image.resize((4, 4), Image.Resampling.BOX))[None])
    assert any(np.array_equal(got, c) for c in candidates)
    assert s.shape == (1, 4, 4)
    square = load_splits(str(tmp_path / "a"), crop="center")  # no size: the 8x8 centre
    assert square.shape == (3, 8, 8)
    assert _rows(square.train, square.val, square.test) == _rows(wide[:, :, :, 2:10])


def test_jpeg_folder_decodes_like_pillow(tmp_path: Path) -> None:
    smooth = np.repeat(np.repeat(images(10, (3, 4, 4)), 4, axis=2), 4, axis=3)
    for i, p in enumerate(smooth):
        Image.fromarray(p.transpose(1, 2, 0)).save(tmp_path / f"{i}.jpg", quality=95)
    s = load_splits(str(tmp_path), (3, 16, 16))
    decoded = [np.asarray(Image.open(tmp_path / f"{i}.jpg")).transpose(2, 0, 1) for i in range(10)]
    assert _rows(s.train, s.val, s.test) == _rows(np.stack(decoded))


def test_malformed_image_folders(tmp_path: Path) -> None:
    for i in range(10):
        write_png(tmp_path / "sizes" / f"{i}.png", images(1, (3, 4, 4 + (i == 7)))[0])
    with pytest.raises(DataError) as exc:
        load_splits(str(tmp_path / "sizes"))
    assert _code(exc) == "data-shape" and "7.png is 4x5" in str(exc.value)
    assert "size" in (exc.value.diagnostics[0].hint or "")
    for i in range(10):
        write_png(tmp_path / "bad" / f"{i}.png", images(1, (3, 4, 4))[0])
    (tmp_path / "bad" / "5.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError) as exc:
        load_splits(str(tmp_path / "bad"))
    assert _code(exc) == "data-unreadable" and "5.png" in str(exc.value)
    write_png(tmp_path / "few" / "0.png", images(1, (3, 4, 4))[0])
    with pytest.raises(DataError) as exc:
        load_splits(str(tmp_path / "few"))
    assert _code(exc) == "data-too-small" and "1 PNG/JPEG images" in str(exc.value)
    write_png(tmp_path / "mixed" / "loose.png", images(1, (3, 4, 4))[0])
    write_png(tmp_path / "mixed" / "cls" / "0.png", images(1, (3, 4, 4))[0])
    with pytest.raises(DataError) as exc:
        load_splits(str(tmp_path / "mixed"))
    assert _code(exc) == "data-labels" and "loose.png" in str(exc.value)
    (tmp_path / "deep").mkdir()
    for i in range(10):
        Image.fromarray(np.full((4, 4), 300 * i, np.uint16)).save(tmp_path / "deep" / f"{i}.png")
    with pytest.raises(DataError) as exc:
        load_splits(str(tmp_path / "deep"), (1, 4, 4))
    assert _code(exc) == "data-format" and "8-bit" in str(exc.value)
    with pytest.raises(DataError) as exc:
        load_splits(str(tmp_path / "sizes"), (2, 4, 4))
    assert _code(exc) == "data-shape" and "has 2" in str(exc.value)


def test_truncated_image_is_found_when_read(tmp_path: Path) -> None:
    for i in range(10):
        write_png(tmp_path / f"{i}.png", images(1, (3, 16, 16))[0])
    data = (tmp_path / "3.png").read_bytes()
    (tmp_path / "3.png").write_bytes(data[: len(data) // 2])  # the header survives
    s = load_splits(str(tmp_path))
    with pytest.raises(DataError) as exc:
        np.asarray(s.train), np.asarray(s.val), np.asarray(s.test)
    assert _code(exc) == "data-unreadable" and "3.png could not be decoded" in str(exc.value)


# ---------------------------------------------------------------------- CIFAR-10 binary


def write_cifar(path: Path, pixels: np.ndarray, labels: np.ndarray) -> None:
    records = np.concatenate([labels[:, None].astype(np.uint8), pixels.reshape(len(pixels), -1)], 1)
    path.write_bytes(records.tobytes())


def test_cifar_folder_uses_the_official_test_batch(tmp_path: Path) -> None:
    train = [images(20, (3, 32, 32)) for _ in range(2)]
    labels = [RNG.integers(0, 10, 20) for _ in range(2)]
    for k in range(2):
        write_cifar(tmp_path / f"data_batch_{k + 1}.bin", train[k], labels[k])
    test, test_labels = images(6, (3, 32, 32)), RNG.integers(0, 10, 6)
    write_cifar(tmp_path / "test_batch.bin", test, test_labels)
    s = load_splits(str(tmp_path), (3, 32, 32), seed=1)
    assert (len(s.train), len(s.val), len(s.test)) == (36, 4, 6)
    np.testing.assert_array_equal(np.asarray(s.test), test)  # in file order, R plane first
    assert s.contexts is not None
    np.testing.assert_array_equal(s.contexts[2], test_labels)
    pool, pool_labels = np.concatenate(train), np.concatenate(labels)
    assert _rows(s.train, s.val) == _rows(pool)
    for split, lab in zip((s.train, s.val), s.contexts[:2]):
        for row, label in zip(np.asarray(split), lab):
            assert label == pool_labels[[np.array_equal(row, p) for p in pool].index(True)]
    single = load_splits(str(tmp_path / "data_batch_1.bin"), (3, 32, 32))
    assert (len(single.train), len(single.val), len(single.test)) == (16, 2, 2)


def test_malformed_cifar_batches(tmp_path: Path) -> None:
    (tmp_path / "short.bin").write_bytes(bytes(3073 * 12 - 5))
    with pytest.raises(DataError) as exc:
        load_splits(str(tmp_path / "short.bin"))
    assert _code(exc) == "data-unreadable" and "3073-byte records" in str(exc.value)
    (tmp_path / "c100.bin").write_bytes(bytes(3074 * 5))
    with pytest.raises(DataError) as exc:
        load_splits(str(tmp_path / "c100.bin"))
    assert "CIFAR-100" in str(exc.value)
    labels = np.zeros(12, np.int64)
    labels[9] = 11
    write_cifar(tmp_path / "labels.bin", images(12, (3, 32, 32)), labels)
    with pytest.raises(DataError) as exc:
        load_splits(str(tmp_path / "labels.bin"))
    assert _code(exc) == "data-labels" and "record 9 (byte 27657)" in str(exc.value)


# ---------------------------------------------------------------------- ImageNet-style .npz


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_imagenet_npz_planes_and_labels(tmp_path: Path, save: object) -> None:
    pixels, labels = images(15, (3, 8, 8)), RNG.integers(1, 1001, 15)
    save(tmp_path / "in.npz", data=pixels.reshape(15, -1), labels=labels, mean=np.zeros(3))  # type: ignore[operator]
    s = load_splits(str(tmp_path / "in.npz"), (3, 8, 8))
    assert _rows(s.train, s.val, s.test) == _rows(pixels)
    assert s.contexts is not None and s.discrete_levels == 256
    for split, lab in zip((s.train, s.val, s.test), s.contexts):
        for row, label in zip(np.asarray(split), lab):
            assert label == labels[[np.array_equal(row, p) for p in pixels].index(True)] - 1
    mapped = isinstance(npz_member(tmp_path / "in.npz", "data"), np.memmap)
    assert mapped == (save is np.savez)  # stored members are memory-mapped, not read


def test_imagenet_npz_folder(tmp_path: Path) -> None:
    batches = [images(8, (3, 4, 4)) for _ in range(2)]
    for k, b in enumerate(batches):
        np.savez(tmp_path / f"train_data_batch_{k + 1}.npz", data=b.reshape(8, -1))
    val = images(5, (3, 4, 4))
    np.savez(tmp_path / "val_data.npz", data=val)  # (N, C, H, W) works too
    s = load_splits(str(tmp_path), (3, 4, 4))
    assert (len(s.train), len(s.val)) == (15, 1) and s.contexts is None
    np.testing.assert_array_equal(np.asarray(s.test), val)
    assert _rows(s.train, s.val) == _rows(*batches)


class _Booby:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("unpickled!",))


def test_malformed_npz(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.savez(tmp_path / "nodata.npz", images=images(12, (3, 4, 4)))
    with pytest.raises(DataError) as exc:
        load_splits(str(tmp_path / "nodata.npz"))
    assert _code(exc) == "data-unreadable" and "no member 'data'" in str(exc.value)
    np.savez(tmp_path / "zero.npz", data=images(12, (3, 4, 4)), labels=np.arange(12))
    with pytest.raises(DataError) as exc:
        load_splits(str(tmp_path / "zero.npz"))
    assert _code(exc) == "data-labels" and "starting at 1" in str(exc.value)
    np.savez(tmp_path / "evil.npz", data=np.array([_Booby()] * 12, dtype=object))
    with pytest.raises(DataError) as exc:
        load_splits(str(tmp_path / "evil.npz"))
    assert _code(exc) == "data-unreadable" and "pickled" in str(exc.value)
    assert "unpickled!" not in capsys.readouterr().out
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError) as exc:
        load_splits(str(tmp_path / "junk.npz"))
    assert _code(exc) == "data-unreadable" and "junk.npz" in str(exc.value)
    np.savez(tmp_path / "float.npz", data=np.zeros((12, 48), np.float32))
    with pytest.raises(DataError) as exc:
        load_splits(str(tmp_path / "float.npz"))
    assert _code(exc) == "data-unreadable" and "uint8" in str(exc.value)


# ---------------------------------------------------------------------- memory-mapped .npy


def test_npy_is_memory_mapped_and_split_like_in_memory(tmp_path: Path) -> None:
    pixels = images(40, (1, 4, 4))
    np.save(tmp_path / "u8.npy", pixels)
    s = load_splits(str(tmp_path / "u8.npy"), (1, 4, 4), seed=5)
    assert isinstance(s.train, Rows) and isinstance(s.train.source, MappedArray)
    assert isinstance(s.train.source.array, np.memmap)
    for got, expected in zip((s.train, s.val, s.test), carve(pixels, 5)):
        np.testing.assert_array_equal(np.asarray(got), expected)  # the same rows, same order
    np.save(tmp_path / "i64.npy", pixels.astype(np.int64) + 1000)
    wide = load_splits(str(tmp_path / "i64.npy"), (1, 4, 4), seed=5)
    assert isinstance(wide.train, np.ndarray) and wide.train.dtype == np.uint16
    np.testing.assert_array_equal(wide.train, carve(pixels, 5)[0].astype(np.uint16) + 1000)


def test_rows_behave_like_a_read_only_array(tmp_path: Path) -> None:
    base = np.arange(30, dtype=np.float32).reshape(10, 3)
    np.save(tmp_path / "a.npy", base)
    rows = Rows(MappedArray(np.load(tmp_path / "a.npy", mmap_mode="r")), np.array([7, 2, 5]))
    assert rows.shape == (3, 3) and len(rows) == 3 and rows.ndim == 2
    np.testing.assert_array_equal(rows[1], base[2])
    np.testing.assert_array_equal(rows[np.array([2, 0])], base[[5, 7]])
    np.testing.assert_array_equal(rows[1:], base[[2, 5]])
    assert (rows > 20).sum() == 3 and rows.max() == 23.0
    np.testing.assert_array_equal(np.asarray(rows.subset(slice(0, 2))), base[[7, 2]])
    again = pickle.loads(pickle.dumps(rows))  # to DataLoader workers: by file name
    assert len(pickle.dumps(rows.source)) < base.nbytes + 200
    np.testing.assert_array_equal(np.asarray(again), base[[7, 2, 5]])
    assert isinstance(again.source.array, np.memmap)


def test_npz_member_offsets_are_those_of_the_zip(tmp_path: Path) -> None:
    """The memory map starts where zipfile's own reader finds the member's bytes."""
    x = images(9, (2, 3, 3))
    np.savez(tmp_path / "z.npz", pad=np.zeros(7, np.uint8), data=x)
    with zipfile.ZipFile(tmp_path / "z.npz") as archive:
        expected = np.lib.format.read_array(archive.open("data.npy"))
    np.testing.assert_array_equal(npz_member(tmp_path / "z.npz", "data"), expected)


def test_docs_example_runs(tmp_path: Path) -> None:
    """docs/data.md's Python example, as written (its folder in the test's own directory)."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "data.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    assert "tempfile.mkdtemp()" in code
    namespace: dict[str, object] = {}
    exec(code.replace("tempfile.mkdtemp()", repr(str(tmp_path))), namespace)
    splits, result = namespace["splits"], namespace["result"]
    assert splits.train.shape == (64, 1, 8, 8) and splits.train.dtype == np.uint8  # type: ignore[attr-defined]
    assert result.status == "completed" and result.step == 20  # type: ignore[attr-defined]
