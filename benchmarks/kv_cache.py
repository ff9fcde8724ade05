"""Sequential TarFlow inverse: KV-cached steps against recomputing the prefix at every token.

``TarFlowBlock.inverse`` runs the causal transformer on ONE new token per step, reading the
cached keys and values of the earlier ones (a cache of fixed shape; a compiled step is one graph
for every position); ``inverse_recompute`` reruns the full causal pass on the growing prefix, so
its work grows quadratically with the sequence length. Both are timed on the same block and the
same latents, in interleaved repetitions so machine noise hits both alike; the median time of
each and the ratio of medians (recompute / cached) are printed per length, with the largest
difference between the two results.

Run: ``python benchmarks/kv_cache.py [--tokens 16 64] [--reps 7] [--batch-size 16]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor

from flowspec.nn.tarflow import TarFlowBlock


def timed(fn: Callable[..., Tensor], *args: Tensor) -> tuple[float, Tensor]:
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def bench(tokens: int, args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    block = TarFlowBlock(
        tokens, args.token_width, width=args.width, depth=args.depth, heads=args.heads
    ).eval()
    torch.nn.init.normal_(block.net.proj_out.weight, std=0.02)  # a non-identity block
    torch.nn.init.normal_(block.net.proj_out.bias, std=0.02)
    z = torch.randn(args.batch_size, tokens, args.token_width)
    cached, recompute = [], []
    with torch.inference_mode():
        block.inverse(z)  # warm-up
        block.inverse_recompute(z)
        for _ in range(args.reps):
            t_cached, x_cached = timed(block.inverse, z)
            t_recompute, x_recompute = timed(block.inverse_recompute, z)
            cached.append(t_cached)
            recompute.append(t_recompute)
    gap = (x_cached - x_recompute).abs().max().item()
    c, r = statistics.median(cached), statistics.median(recompute)
    print(
        f"T={tokens:3d}  cached {1e3 * c:8.1f} ms  recompute {1e3 * r:8.1f} ms  "
        f"ratio {r / c:5.2f}x  max|diff| {gap:.1e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--token-width", type=int, default=12)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    args = parser.parse_args()
    print(
        f"TarFlowBlock width={args.width} depth={args.depth} heads={args.heads} "
        f"D={args.token_width} batch={args.batch_size}, float32, "
        f"{torch.get_num_threads()} thread(s), median of {args.reps}"
    )
    for tokens in args.tokens:
        bench(tokens, args)


if __name__ == "__main__":
    main()
