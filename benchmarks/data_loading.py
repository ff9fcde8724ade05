"""Is data loading ever the bottleneck? Step time with and without reading the data.

A 61 MB uint8 ``.npy`` (20,000 CIFAR-sized 3x32x32 images) and a folder of PNG files are
trained on by a scaled-down glow_cifar10 (K = 4, 64 channels). Three ways of feeding the same
steps are interleaved in rounds: batches already in memory (the baseline: no loading at all),
batches read by the training process (``workers: 0``), and batches read ahead by DataLoader
workers (``workers: 2``). The median step times and their ratios to the baseline are printed,
and the memory the splits hold (memory-mapped) against the int64-plus-float32 copies that
flowspec 0.1 made of the same file.

Run: ``python benchmarks/data_loading.py [--rounds 5] [--steps 20] [--pngs 2000]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from gpu_check import glow_spec
from PIL import Image

import flowspec
from flowspec.data import load_splits
from flowspec.training.batches import BatchPlan, TrainBatches


def rss_anon_mib() -> float:
    """Anonymous resident memory of this process (Linux), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make_data(folder: Path, n: int, pngs: int) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    np.save(folder / "images.npy", x)
    (folder / "png").mkdir()
    for i in range(pngs):
        Image.fromarray(x[i].transpose(1, 2, 0)).save(folder / "png" / f"{i:05d}.png")
    return folder / "images.npy", folder / "png"


def timed_steps(
    flow: flowspec.Flow, opt: torch.optim.Optimizer, batches: list
) -> tuple[float, float]:
    """Median seconds per step and per wait for the batch; ``batches`` gives each step's
    batch (read, waited for, or ready)."""
    times, waits = [], []
    for get in batches:
        start = time.perf_counter()
        x = get()
        got = time.perf_counter()
        loss = -flow.log_prob(x).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
        waits.append(got - start)
    return statistics.median(times), statistics.median(waits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--pngs", type=int, default=2_000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = glow_spec(tiny=False)
    for level in spec["levels"]:
        level["steps"][0]["repeat"] = 4
        for layer in level["steps"][0]["body"]:
            if "net" in layer:
                layer["net"] = {**layer["net"], "channels": 64}
    flow = flowspec.compile(spec, seed=0)
    opt = torch.optim.Adam(flow.parameters(), lr=1e-5)
    with tempfile.TemporaryDirectory() as tmp:
        npy, png = make_data(Path(tmp), args.images, args.pngs)
        before = rss_anon_mib()
        splits = load_splits(str(npy), (3, 32, 32))
        held = rss_anon_mib() - before
        old = args.images * 3 * 32 * 32 * (8 + 4 * 0.8)  # int64 copy + float32 train tensor
        print(f"{npy.stat().st_size / 2**20:.0f} MB uint8 .npy: the splits hold {held:.2f} MiB "
              f"of anonymous memory (flowspec 0.1: {old / 2**20:,.0f} MiB)")  # fmt: skip
        sources = {"npy": splits.train, "png": load_splits(str(png), (3, 32, 32)).train}
        n = min(len(s) for s in sources.values())
        plan = BatchPlan(args.batch_size, n // args.batch_size)
        with torch.no_grad():
            flow(torch.as_tensor(np.asarray(sources["npy"][: args.batch_size])))
        ready = torch.as_tensor(np.asarray(sources["npy"][: args.batch_size]))
        feeds = {"in memory (no loading)": None}
        for name in sources:
            feeds[f"{name}, workers 0"] = (name, 0)
            feeds[f"{name}, workers 2"] = (name, 2)
        loaders = {
            key: TrainBatches(sources[v[0]], plan, workers=v[1])
            for key, v in feeds.items()
            if v is not None
        }
        times: dict[str, list[float]] = {key: [] for key in feeds}
        waits: dict[str, list[float]] = {key: [] for key in feeds}
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
        for _ in range(args.rounds):
            for key in feeds:
                if key in loaders:
                    it = loaders[key].epoch(perm, 0)
                    steps = [lambda it=it: next(it)[0] for _ in range(args.steps)]  # no context
                else:
                    steps = [lambda: ready for _ in range(args.steps)]
                step, wait = timed_steps(flow, opt, steps)
                times[key].append(step)
                waits[key].append(wait)
        for loader in loaders.values():
            loader.close()
    base = statistics.median(times["in memory (no loading)"])
    print(f"threads {args.threads}, batch {args.batch_size}, {flow.num_parameters():,} params; "
          f"median of {args.rounds} rounds x {args.steps} steps")  # fmt: skip
    for key, values in times.items():
        t = statistics.median(values)
        wait = statistics.median(waits[key]) * 1e3
        print(f"{key:>24}: {t * 1e3:8.1f} ms/step   ratio {t / base:.3f}   "
              f"waiting for the batch {wait:7.3f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
