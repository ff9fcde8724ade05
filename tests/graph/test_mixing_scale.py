"""The mixing analysis at scale: the sampled analysis of large flows agrees with the exact one
on everything it reports, and a paper-size Glow validates within a small memory cap."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import flowspec
from flowspec.graph import mixing
from tests.helpers import ROOT, example_spec

sys.path.insert(0, str(ROOT / "benchmarks"))
from measure import glow_spec

CASES = {
    "images": example_spec(
        [2, 16, 16],
        [
            {
                "type": "affine_coupling",
                "mask": "checkerboard",
                "net_input": "masked",
                "net": {"type": "glow_conv", "channels": 4},
            },
            {"type": "squeeze"},
            {"type": "permute", "order": "random"},
            {
                "type": "affine_coupling",
                "mask": "channel",
                "net": {"type": "resnet", "channels": 4, "blocks": 1},
            },
            {"type": "split"},
            {"type": "invconv"},
            {
                "type": "affine_coupling",
                "mask": "channel_second",
                "net": {"type": "glow_conv", "channels": 4},
            },
        ],
    ),
    "unmixed": example_spec(
        [4, 12, 12],
        [{"type": "affine_coupling", "mask": "channel", "net": {"type": "glow_conv"}}],
    ),
    "vectors": example_spec(
        [600],
        [
            {"type": "affine_coupling", "mask": "even"},
            {"type": "permute", "order": "random"},
            {"type": "split"},
            {"type": "affine_coupling", "mask": "first_half"},
        ],
    ),
}


def _sampled(spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    with monkeypatch.context() as patch:
        patch.setattr(mixing, "EXACT_INPUTS", 0)
        return flowspec.build_graph(spec)


@pytest.mark.parametrize("case", CASES)
def test_sampled_analysis_agrees_with_the_exact_one(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    exact_graph = flowspec.build_graph(CASES[case])
    sampled_graph = _sampled(CASES[case], monkeypatch)
    exact, sampled = exact_graph.mixing, sampled_graph.mixing
    assert exact.exact and not sampled.exact and len(sampled.inputs) == mixing.SAMPLED_INPUTS
    matrix = np.array(exact.matrix(), dtype=bool)
    # the tracked inputs' columns are exact ...
    columns = np.array(
        [[sampled.depends(i, j) for j in sampled.inputs] for i in range(exact.input_size)]
    )
    assert np.array_equal(columns, matrix[:, sampled.inputs])
    assert np.array_equal(sampled.reach(), matrix[:, sampled.inputs].sum(axis=0))
    # ... and so is the never-mixed warning, through the digit words
    assert sampled.unmixed() == exact.unmixed() == np.flatnonzero(matrix.sum(1) == 1).tolist()
    assert [w.message for w in sampled_graph.warnings] == [w.message for w in exact_graph.warnings]
    with pytest.raises(ValueError, match="not tracked"):
        sampled.depends(0, next(j for j in range(exact.input_size) if j not in sampled.inputs))
    with pytest.raises(ValueError):
        sampled.matrix()


def test_exact_counts_and_summaries() -> None:
    report = flowspec.build_graph(CASES["unmixed"]).mixing
    counts = report.counts()
    assert min(counts) == 1 and len(report.unmixed()) == 288  # the kept channels never mix
    assert report.summary().startswith("latent elements depend on 1 to ")


def test_summary_of_a_sampled_report_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    summary = _sampled(CASES["images"], monkeypatch).mixing.summary()
    assert "measured on 256 sampled inputs of 512" in summary


def test_digit_words_detect_every_pair() -> None:
    """A set of indices is a single index exactly when each base-64 digit word has one bit."""
    tracked, rows, exact = mixing.initial_rows(70_000)
    assert not exact and rows.shape == (70_000, 4 + 3)
    for a, b in [(0, 64), (0, 4096), (5, 5 + 64 * 64 * 3), (69_999, 1)]:
        merged = (rows[a] | rows[b])[None]
        report = mixing.MixingReport(70_000, tracked, merged, None, exact=False)
        assert report.unmixed() == []
    single = mixing.MixingReport(70_000, tracked, rows[[12_345]], None, exact=False)
    assert single.unmixed() == [0]


@pytest.mark.parametrize(("size", "levels"), [(256, 6)])
def test_a_paper_size_glow_validates_within_a_memory_cap(
    tmp_path: Path, size: int, levels: int
) -> None:
    """3x256x256, L=6, K=32 (the Glow paper's CelebA-HQ size): the D-bit-per-element analysis
    needed 4.8 GB; capped at 1 GB of address space it now validates (benchmarks/validate_scale.py
    measures time and peak memory)."""
    path = tmp_path / "glow.yaml"
    path.write_text(glow_spec(3, size, levels, 32))
    cap = 2**30

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    out = subprocess.run(
        [sys.executable, "-m", "flowspec", "validate", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        preexec_fn=limit,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ok (587 ops, input (3, 256, 256), 6 latent(s), 0 warning(s))" in out.stdout
