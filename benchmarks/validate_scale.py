"""``flowspec validate`` (and ``flowspec graph --cost`` where it exists) on Glow specs of growing
size: wall time and peak memory of the whole command, each in its own process.

The largest is the Glow paper's CelebA-HQ size, 3x256x256 with L=6 levels of K=32 steps (587
ops, 196,608 inputs); the target is under 2 s and 300 MB. The baseline is the same command on
the CIFAR-10 size (3x32x32, L=3), run in the same session, interleaved: the ratios show how the
cost grows with the number of inputs (64x more inputs from 32x32 to 256x256). Run from the
repository root (the machine may be shared: medians of interleaved rounds)::

    python benchmarks/validate_scale.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from measure import glow_spec, measure

ROOT = Path(__file__).resolve().parent.parent
SIZES = [(32, 3), (64, 4), (128, 5), (256, 6)]  # (height = width, levels); K = 32 steps
TARGET_SECONDS, TARGET_MB = 2.0, 300.0


def _commands(path: Path) -> dict[str, list[str]]:
    commands = {"validate": ["-m", "flowspec", "validate", str(path)]}
    help_text = subprocess.run(
        [sys.executable, "-m", "flowspec", "graph", "--help"], capture_output=True, text=True
    ).stdout
    if "--cost" in help_text:
        commands["graph --cost"] = ["-m", "flowspec", "graph", str(path), "--cost"]
    return commands


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    args = parser.parse_args()
    results: dict[tuple[str, int], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for size, levels in SIZES:
            paths[size] = Path(tmp) / f"glow_{size}.yaml"
            paths[size].write_text(glow_spec(3, size, levels, 32))
        for _ in range(args.rounds):
            for size, _levels in SIZES:
                for name, argv in _commands(paths[size]).items():
                    result = measure(argv, ROOT, memory_gb=8.0, timeout=300.0)
                    if result["rc"] != 0:
                        raise SystemExit(f"{name} 3x{size}x{size} failed: {result['last']}")
                    results.setdefault((name, size), []).append(result)
    print(
        f"{'command':14s} {'input':>13s} {'seconds':>8s} {'x base':>7s} {'peak MB':>8s} "
        f"{'x base':>7s}"
    )
    for (name, size), runs in results.items():
        seconds = statistics.median(r["seconds"] for r in runs)
        peak = max(r["peak_mb"] for r in runs)
        base = results[(name, SIZES[0][0])]
        base_s = statistics.median(r["seconds"] for r in base)
        base_mb = max(r["peak_mb"] for r in base)
        print(
            f"{name:14s} {f'3x{size}x{size}':>13s} {seconds:8.2f} {seconds / base_s:7.2f} "
            f"{peak:8.0f} {peak / base_mb:7.2f}"
        )
    for name in {n for n, _ in results}:
        runs = results[(name, SIZES[-1][0])]
        seconds = statistics.median(r["seconds"] for r in runs)
        peak = max(r["peak_mb"] for r in runs)
        ok = seconds < TARGET_SECONDS and peak < TARGET_MB
        print(
            f"target {name} 3x256x256 (L=6, K=32): {seconds:.2f} s, {peak:.0f} MB -> "
            f"{'met' if ok else 'MISSED'} (< {TARGET_SECONDS:g} s, < {TARGET_MB:g} MB)"
        )


if __name__ == "__main__":
    main()
