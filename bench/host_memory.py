"""CPU training steps with glibc's default malloc settings and with `keep_freed_memory`, side by side.

    python bench/host_memory.py              # quick grid, 2 threads, 6 rounds of 4 steps each
    python bench/host_memory.py --rounds 10 --threads 1

One training step (AdamW, squared error) of the quick grid's specialised DynUNet (batch 4 of
3 × 16 × 48 × 48, `taskalign.baselines.build_specialised`). Rounds alternate between the two
settings inside one process (glibc's `mallopt` can be changed at run time), so load on a shared
machine hits both alike. Printed per setting: median seconds per step, minor page faults per step
(from `getrusage`, close to deterministic), and the ratio of the medians. Linux with glibc only.
"""
from __future__ import annotations

import argparse
import ctypes
import resource
import statistics
import time

import torch

from taskalign.baselines import build_specialised
from taskalign.train import host_memory

GLIBC_DEFAULT_MMAP, GLIBC_DEFAULT_TRIM = 128 * 1024, 128 * 1024


def _glibc_defaults() -> None:
    mallopt = ctypes.CDLL(None).mallopt
    mallopt(host_memory.M_MMAP_THRESHOLD, GLIBC_DEFAULT_MMAP)
    mallopt(host_memory.M_TRIM_THRESHOLD, GLIBC_DEFAULT_TRIM)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=4, help="steps per round")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = build_specialised("image", 3, 1, (16, 48, 48), spacing_mm=(3.0, 1.5, 1.5))
    x, y = torch.randn(4, 3, 16, 48, 48), torch.randn(4, 1, 16, 48, 48)
    optimiser = torch.optim.AdamW(net.parameters(), lr=1e-4)

    def step() -> None:
        loss = ((net(x) - y) ** 2).mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    settings = {"glibc defaults": _glibc_defaults, "keep_freed_memory": host_memory.keep_freed_memory}
    times: dict[str, list[float]] = {name: [] for name in settings}
    faults: dict[str, int] = {name: 0 for name in settings}
    step()
    for _ in range(args.rounds):
        for name, apply in settings.items():
            apply()
            step()   # the first step after a change settles the heap
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            times[name].append((time.perf_counter() - start) / args.steps)
            faults[name] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    n = args.rounds * args.steps
    base = statistics.median(times["glibc defaults"])
    print(f"specialised DynUNet step, batch 4 of 3×16×48×48, {args.threads} thread(s), "
          f"{args.rounds} alternating rounds of {args.steps} steps")
    for name in settings:
        med = statistics.median(times[name])
        print(f"  {name:18s} {med:6.3f} s/step  {faults[name] / n:9.0f} minor faults/step  "
              f"({med / base:4.2f}× glibc defaults)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
