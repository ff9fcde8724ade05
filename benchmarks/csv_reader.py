"""Reading a user's CSV: flowspec's reader (numpy's C parser, located errors kept) against a
line-by-line Python parser like the one flowspec 0.1 had, on the same file, interleaved rounds,
median ratio.

Run: ``python benchmarks/csv_reader.py [--rows 500000] [--cols 8] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from flowspec.data import load_examples


def python_reader(path: Path) -> np.ndarray:
    """The baseline: split every line, float() every field (what a hand-written reader does)."""
    lines = [ln.split(",") for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    return np.array([[float(f) for f in fields] for fields in lines[1:]], dtype=np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--cols", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    data = np.random.default_rng(0).standard_normal((args.rows, args.cols)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.csv"
        header = ",".join(f"x{i}" for i in range(args.cols))
        np.savetxt(path, data, delimiter=",", header=header, comments="", fmt="%.7g")
        print(f"{args.rows} x {args.cols} CSV, {path.stat().st_size / 1e6:.1f} MB")
        ours, base = [], []
        for _ in range(args.rounds):
            start = time.perf_counter()
            got, _ = load_examples(str(path))
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            expected = python_reader(path)
            base.append(time.perf_counter() - start)
            np.testing.assert_array_equal(got, expected)  # the same numbers
    print(
        f"flowspec reader {statistics.median(ours):.2f} s, Python baseline "
        f"{statistics.median(base):.2f} s (medians of {args.rounds})"
    )
    print(f"ratio flowspec / baseline: {statistics.median(ours) / statistics.median(base):.3f}")


if __name__ == "__main__":
    main()
