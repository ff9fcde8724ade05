"""Contexts in data: built-in labels aligned with their points, .npz files and table columns,
checks against a spec's context, the command line's --context; and the exact densities of the
2-D sets (marginal and per label) against quadrature on a grid and Monte Carlo."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from flowspec.data import DATASETS, load_splits, log_density, moons_log_density
from flowspec.data.context import check_context, parse_context
from flowspec.data.densities import TOY_DENSITIES, circles_log_density, spirals_log_density
from flowspec.errors import DataError
from flowspec.spec.context import ClassContextSpec, VectorContextSpec

TWO = ClassContextSpec(classes=2)
TEN = ClassContextSpec(classes=10)


def _code(info: pytest.ExceptionInfo[DataError]) -> str:
    return info.value.diagnostics[0].code


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_builtin_sets_carry_labels_aligned_with_their_points(name: str) -> None:
    info = DATASETS[name]
    splits = load_splits(name)
    assert splits.contexts is not None and info.classes is not None
    for points, labels in zip((splits.train, splits.val, splits.test), splits.contexts):
        assert labels.shape == (len(points),) and labels.dtype == np.int64
        assert set(np.unique(labels)) == set(range(info.classes))
    # the points are the same with or without labels (generate() is unchanged)
    np.testing.assert_array_equal(info.generate(0)[2], splits.test)
    if name in TOY_DENSITIES:  # each point is likelier under its own label than any other
        test, labels = splits.test[:2000], splits.contexts[2][:2000]
        own = log_density(name, test, labels)
        others = [log_density(name, test, np.full_like(labels, k)) for k in range(info.classes)]
        assert (own >= np.max(others, axis=0) - 1e-9).mean() > 0.97


def test_digit_labels_are_the_images_digits() -> None:
    digits = load_digits()
    splits = load_splits("digits")
    index = {img.astype(np.int64).tobytes(): t for img, t in zip(digits.images, digits.target)}
    for image, label in zip(splits.test, splits.contexts[2]):
        assert index[image[0].astype(np.int64).tobytes()] == label


def test_npz_with_class_labels_and_with_vectors(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 3)).astype(np.float32)
    labels = np.arange(40) % 4
    np.savez(tmp_path / "labels.npz", x=x, context=labels)
    splits = load_splits(str(tmp_path / "labels.npz"), (3,), context=ClassContextSpec(classes=4))
    whole = np.concatenate(splits.contexts)
    assert sorted(whole.tolist()) == sorted(labels.tolist())
    for points, context in zip((splits.train, splits.val, splits.test), splits.contexts):
        for row, label in zip(points, context):  # still paired after the shuffle
            assert labels[np.flatnonzero((x == row).all(1))[0]] == label
    vectors = rng.standard_normal((40, 2))
    np.savez(tmp_path / "vectors.npz", x=x, context=vectors)
    splits = load_splits(str(tmp_path / "vectors.npz"), (3,), context=VectorContextSpec(shape=(2,)))
    assert splits.contexts[0].dtype == np.float32 and splits.contexts[0].shape[1] == 2
    np.savez(tmp_path / "plain.npz", x=x)
    assert load_splits(str(tmp_path / "plain.npz"), (3,)).contexts is None


def test_bad_npz_files_are_located_errors(tmp_path: Path) -> None:
    np.savez(tmp_path / "nox.npz", points=np.zeros((20, 2)))
    with pytest.raises(DataError) as info:
        load_splits(str(tmp_path / "nox.npz"))
    assert _code(info) == "data-unreadable" and "no member 'x'" in str(info.value)
    np.savez(tmp_path / "short.npz", x=np.zeros((20, 2)), context=np.zeros(19, dtype=int))
    with pytest.raises(DataError) as info:
        load_splits(str(tmp_path / "short.npz"))
    assert _code(info) == "context-shape" and "19 contexts for 20 examples" in str(info.value)
    np.savez(tmp_path / "objects.npz", x=np.array([object()] * 20))
    with pytest.raises(DataError) as info:
        load_splits(str(tmp_path / "objects.npz"))
    assert _code(info) == "data-unreadable" and "pickled" in str(info.value)


def test_context_columns_of_a_table(tmp_path: Path) -> None:
    rows = [f"{i * 0.1},{i % 3},{-i * 0.2}" for i in range(30)]
    (tmp_path / "t.csv").write_text("a,label,b\n" + "\n".join(rows) + "\n")
    splits = load_splits(str(tmp_path / "t.csv"), (2,), context=ClassContextSpec(classes=3),
                         context_columns=[1])  # fmt: skip
    assert splits.train.shape[1] == 2 and splits.context_columns == (1,)
    for points, labels in zip((splits.train, splits.val), splits.contexts):
        np.testing.assert_allclose(np.round(points[:, 0] * 10) % 3, labels)
    for columns in ([3], [0, 1, 2], [1, 1]):
        with pytest.raises(DataError) as info:
            load_splits(str(tmp_path / "t.csv"), context_columns=columns)
        assert _code(info) == "context-shape"
    with pytest.raises(DataError) as info:
        load_splits("moons", context_columns=[0])
    assert _code(info) == "context-shape" and "built-in" in str(info.value)


@pytest.mark.parametrize(
    ("context", "spec", "code"),
    [
        (np.array([0, 1, 2]), TWO, "context-range"),
        (np.array([0, -1, 1]), TWO, "context-range"),
        (np.array([0.0, 0.5, 1.0]), TWO, "context-range"),
        (np.array([0.0, np.nan]), TWO, "context-range"),
        (np.zeros((3, 2)), TWO, "context-shape"),
        (np.zeros((3, 3)), VectorContextSpec(shape=(2,)), "context-shape"),
        (np.array([[0.0, np.inf]]), VectorContextSpec(shape=(2,)), "data-nonfinite"),
        (np.array(["a", "b"]), TWO, "context-shape"),
    ],
)
def test_contexts_that_do_not_fit_the_spec(context: np.ndarray, spec: object, code: str) -> None:
    with pytest.raises(DataError) as info:
        check_context(context, spec, "data 'x'")
    assert _code(info) == code
    assert "np." not in str(info.value)  # values as the user wrote them, not numpy reprs


def test_conditional_flows_need_data_with_a_context(tmp_path: Path) -> None:
    np.save(tmp_path / "plain.npy", np.zeros((20, 2), dtype=np.float32))
    with pytest.raises(DataError) as info:
        load_splits(str(tmp_path / "plain.npy"), (2,), context=TWO)
    assert _code(info) == "context-missing" and "--context-columns" in str(info.value)
    with pytest.raises(DataError) as info:
        load_splits("digits", (1, 8, 8), context=ClassContextSpec(classes=5))
    assert _code(info) == "context-range"
    assert load_splits("digits", (1, 8, 8), context=TEN).contexts is not None


def test_parse_context_from_the_command_line() -> None:
    assert parse_context("3", TEN).tolist() == [3]
    assert parse_context("0.5,1.25", VectorContextSpec(shape=(2,))).tolist() == [[0.5, 1.25]]
    for text, spec, code in [
        ("12", TEN, "context-range"),
        ("2.5", TEN, "context-range"),
        ("1,2", TEN, "context-shape"),
        ("0.5", VectorContextSpec(shape=(2,)), "context-shape"),
        ("a,b", VectorContextSpec(shape=(2,)), "context-shape"),
    ]:
        with pytest.raises(DataError) as info:
            parse_context(text, spec)
        assert _code(info) == code, text


@pytest.mark.parametrize("name", sorted(TOY_DENSITIES))
def test_densities_integrate_to_one_marginally_and_per_label(name: str) -> None:
    # midpoints of 0.04-wide cells: the checkerboard's unit cells are unions of whole cells, and
    # for the curved sets (noise 0.05) a Riemann sum at 0.8 x the noise is exact to ~1e-13
    axis = -3.0 + 0.04 * (np.arange(150) + 0.5)
    xx, yy = np.meshgrid(axis, axis, indexing="ij")
    grid, cell = np.stack([xx.ravel(), yy.ravel()], 1), (axis[1] - axis[0]) ** 2
    tolerance = 1e-6
    marginal = np.exp(log_density(name, grid))
    assert abs(marginal.sum() * cell - 1.0) < tolerance
    classes = DATASETS[name].classes
    per_label = [np.exp(log_density(name, grid, np.full(len(grid), k))) for k in range(classes)]
    for density in per_label:
        assert abs(density.sum() * cell - 1.0) < tolerance
    np.testing.assert_allclose(np.mean(per_label, axis=0), marginal, atol=1e-12, rtol=1e-9)


def test_quadrature_has_converged_and_moons_is_unchanged() -> None:
    test = load_splits("moons").test[:300]
    np.testing.assert_allclose(
        moons_log_density(test), moons_log_density(test, n_points=8000), atol=1e-9, rtol=0
    )
    for fn in (circles_log_density, spirals_log_density):
        np.testing.assert_allclose(fn(test), fn(test, n_points=8000), atol=1e-9, rtol=0)
    assert -moons_log_density(load_splits("moons").test).mean() == pytest.approx(0.2780, abs=1e-4)


@pytest.mark.parametrize("name", ["spirals", "circles", "8gaussians"])
def test_densities_agree_with_monte_carlo_of_their_sampler(name: str) -> None:
    """The density's mass per bin against the histogram of the set's 50,000 training points
    (the sampler's own output, not its formula)."""
    test = load_splits(name).train
    box = [[-2.5, 2.5], [-2.5, 2.5]]
    counts = np.histogram2d(test[:, 0], test[:, 1], bins=10, range=box)[0] / len(test)
    edges = np.linspace(-2.5, 2.5, 11)
    centres = (edges[:-1] + edges[1:]) / 2
    fine = np.linspace(-2.5, 2.5, 201)
    fx, fy = np.meshgrid(fine[:-1] + 0.0125, fine[:-1] + 0.0125, indexing="ij")
    dens = np.exp(log_density(name, np.stack([fx.ravel(), fy.ravel()], 1))).reshape(200, 200)
    mass = dens.reshape(10, 20, 10, 20).sum(axis=(1, 3)) * 0.025**2
    assert len(centres) == 10 and math.isclose(mass.sum(), counts.sum(), abs_tol=5e-3)
    assert np.abs(mass - counts).sum() / 2 < 0.015  # total variation; sampling noise ~0.01
