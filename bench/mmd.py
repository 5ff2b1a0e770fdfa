"""MMD² permutation test speed: ours vs a naive per-permutation loop vs the single kernel matmul.

    python bench/mmd.py --quick          # a small subset, under a minute on one CPU thread
    python bench/mmd.py                  # n ∈ {500, 2000, 8000} per side, d ∈ {384, 768}, B ∈ {100, 1000}
    python bench/mmd.py --device cuda    # the same on a GPU

Columns: `matmul` is the floor, one (N, d) @ (d, N) float32 product for the pooled sample
(N = 2n); `ours` is `taskalign.align.mmd2(x, y, permutations=B)` end to end (median heuristic,
kernel, statistic, B permutations as batched quadratic forms); `naive` computes the same kernel
once, then for each permutation re-indexes the kernel matrix and sums its blocks (values marked
~ are extrapolated from the permutations that fit in the time budget). Target (DESIGN §6 issue):
at n = 2000, d = 768, ours <= 3x matmul for B = 100 and <= 15x for B = 1000.
The last line is the peak memory of the blocked path (statistic on all rows, p-value from a
stated subsample) at N = 100,000 pooled rows, measured in a fresh process.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from taskalign.align import mmd2
from taskalign.align.kernels import Kernel, median_distance

FULL = dict(ns=(500, 2000, 8000), ds=(384, 768), bs=(100, 1000), blocked=(100_000, 768))
QUICK = dict(ns=(500, 2000), ds=(768,), bs=(100, 1000), blocked=(20_000, 384))


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def best_time(fn, device: str, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def naive_test(x: torch.Tensor, y: torch.Tensor, permutations: int, budget_s: float, device: str) -> tuple[float, int]:
    """Per-permutation loop over a re-indexed kernel matrix; returns (seconds for all B, B run)."""
    sync(device)
    start = time.perf_counter()
    z = torch.cat([x, y])
    m, n_total = x.shape[0], z.shape[0]
    sigma, _ = median_distance(z)
    k = Kernel("rbf", (sigma,))(z - z.mean(0))
    setup = time.perf_counter() - start
    gen = torch.Generator().manual_seed(0)
    done, loop_start = 0, time.perf_counter()
    for _ in range(permutations):
        perm = torch.randperm(n_total, generator=gen).to(z.device)
        kp = k[perm][:, perm]
        kxx, kyy, kxy = kp[:m, :m], kp[m:, m:], kp[:m, m:]
        _ = ((kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1)) + (kyy.sum() - kyy.diagonal().sum())
             / ((n_total - m) * (n_total - m - 1)) - 2 * kxy.sum() / (m * (n_total - m))).item()
        done += 1
        if time.perf_counter() - loop_start > budget_s:
            break
    loop = time.perf_counter() - loop_start
    return setup + loop * permutations / done, done


def run_grid(grid: dict, device: str, budget_s: float) -> None:
    print(f"{'n/side':>7} {'d':>4} {'B':>5} | {'matmul':>8} | {'ours':>8} {'x floor':>7} | "
          f"{'naive':>9} {'x floor':>7} | {'p-value':>7}")
    for n in grid["ns"]:
        for d in grid["ds"]:
            gen = torch.Generator().manual_seed(n + d)
            x = torch.randn(n, d, generator=gen).to(device)
            y = (torch.randn(n, d, generator=gen) + 0.02).to(device)
            z = torch.cat([x, y])
            repeats = 3 if n <= 2000 else 1
            floor = best_time(lambda: z @ z.T, device, repeats)
            for b in grid["bs"]:
                result = {}
                ours = best_time(lambda: result.setdefault("r", mmd2(x, y, permutations=b, seed=0)), device, repeats)
                naive, done = naive_test(x, y, b, budget_s, device)
                mark = " " if done == b else "~"
                print(f"{n:7d} {d:4d} {b:5d} | {floor:8.3f} | {ours:8.3f} {ours / floor:6.1f}x | "
                      f"{mark}{naive:8.2f} {naive / floor:6.0f}x | {result['r'].p_value:7.4f}", flush=True)


def memory_gib(field: str) -> float:
    """VmRSS / VmHWM of this process from /proc (the peak resets at exec, unlike ru_maxrss)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def blocked_child(n_pooled: int, d: int, device: str) -> None:
    """Runs in a fresh process: prints peak memory of one blocked MMD² (+ subsample p-value)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n_pooled // 2, d, generator=gen).to(device)
    y = (torch.randn(n_pooled // 2, d, generator=gen) + 0.02).to(device)
    before = memory_gib("VmRSS")
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base_gpu = torch.cuda.memory_allocated() / 2**30
    start = time.perf_counter()
    res = mmd2(x, y, permutations=100, seed=0)
    sync(device)
    out = dict(seconds=time.perf_counter() - start, rss_before_gib=before,
               rss_peak_gib=memory_gib("VmHWM"),
               path=res.path, mmd2=res.mmd2, p_value=res.p_value, p_value_method=res.p_value_method)
    if device == "cuda":
        out.update(gpu_inputs_gib=base_gpu, gpu_peak_gib=torch.cuda.max_memory_allocated() / 2**30)
    print(json.dumps(out))


def run_blocked(n_pooled: int, d: int, device: str, threads: int) -> None:
    cmd = [sys.executable, __file__, "--blocked-child", str(n_pooled), str(d), "--device", device,
           "--threads", str(threads)]
    line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    r = json.loads(line)
    print(f"\nblocked path, N = {n_pooled:,} pooled rows ({n_pooled // 2:,} per side), d = {d}, float32, "
          f"default max_kernel_entries: {r['seconds']:.1f} s, path={r['path']}")
    print(f"  peak RSS {r['rss_peak_gib']:.2f} GiB (process after imports and inputs: {r['rss_before_gib']:.2f} GiB)")
    if "gpu_peak_gib" in r:
        print(f"  peak GPU memory {r['gpu_peak_gib']:.2f} GiB (inputs: {r['gpu_inputs_gib']:.2f} GiB)")
    print(f"  MMD² = {r['mmd2']:.3g}, p = {r['p_value']:.4f}: {r['p_value_method']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small subset (under a minute)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (the build machine is shared)")
    parser.add_argument("--naive-budget", type=float, default=None, help="seconds per naive loop before extrapolating")
    parser.add_argument("--blocked-child", nargs=2, type=int, metavar=("N", "D"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.blocked_child:
        blocked_child(*args.blocked_child, args.device)
        return
    grid = QUICK if args.quick else FULL
    budget = args.naive_budget or (1.0 if args.quick else 4.0)
    name = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {args.threads} thread(s)"
    print(f"MMD² permutation test, float32, RBF median heuristic, unbiased U-statistic; {name}\n")
    run_grid(grid, args.device, budget)
    run_blocked(*grid["blocked"], args.device, args.threads)


if __name__ == "__main__":
    main()
