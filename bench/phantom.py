"""Phantom generation speed: cases per second at the smoke, quick and real-like grids.

    python bench/phantom.py            # a few cases per grid
    python bench/phantom.py --n 50
"""
from __future__ import annotations

import argparse
import time

from taskalign.data.phantom import phantom_case

GRIDS = {
    "smoke (8, 32, 32) @ (4.0, 2.5, 2.5) mm": ((8, 32, 32), (4.0, 2.5, 2.5)),
    "quick (16, 48, 48) @ (3.0, 1.5, 1.5) mm": ((16, 48, 48), (3.0, 1.5, 1.5)),
    "real-like (20, 256, 256) @ (3.0, 0.5, 0.5) mm": ((20, 256, 256), (3.0, 0.5, 0.5)),
}


def cases_per_second(shape, spacing_mm, n: int) -> float:
    phantom_case(0, 0, shape=shape, spacing_mm=spacing_mm)  # warm-up (imports, caches)
    start = time.perf_counter()
    for i in range(n):
        phantom_case(i, 0, shape=shape, spacing_mm=spacing_mm)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="cases per small grid (the real-like grid uses n // 4)")
    args = parser.parse_args()
    for name, (shape, spacing) in GRIDS.items():
        n = max(2, args.n // 4) if shape[1] > 100 else args.n
        rate = cases_per_second(shape, spacing, n)
        print(f"{name:48s} {rate:8.1f} cases/s  ({1000 / rate:7.1f} ms/case, n={n})")


if __name__ == "__main__":
    main()
