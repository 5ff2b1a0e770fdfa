"""Phantom generation speed: cases per second at the smoke, quick and real-like grids.

    python bench/phantom.py            # a few cases per grid
    python bench/phantom.py --n 50
    python bench/phantom.py --baseline-src /tmp/before/src   # side by side with another checkout's phantom

With `--baseline-src`, each grid is timed alternately with this checkout's phantom and the
baseline's (each in its own subprocess, the baseline first), so both see the same machine load.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

GRIDS = {
    "smoke (8, 32, 32) @ (4.0, 2.5, 2.5) mm": ((8, 32, 32), (4.0, 2.5, 2.5)),
    "quick (16, 48, 48) @ (3.0, 1.5, 1.5) mm": ((16, 48, 48), (3.0, 1.5, 1.5)),
    "real-like (20, 256, 256) @ (3.0, 0.5, 0.5) mm": ((20, 256, 256), (3.0, 0.5, 0.5)),
}
SRC = Path(__file__).resolve().parents[1] / "src"


def cases_per_second(shape, spacing_mm, n: int) -> float:
    from taskalign.data.phantom import phantom_case

    phantom_case(0, 0, shape=shape, spacing_mm=spacing_mm)  # warm-up (imports, caches)
    start = time.perf_counter()
    for i in range(n):
        phantom_case(i, 0, shape=shape, spacing_mm=spacing_mm)
    return n / (time.perf_counter() - start)


def _rate_in(src: Path, grid: str, n: int) -> float:
    env = dict(os.environ, PYTHONPATH=str(src))
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import phantom as b; "
            f"print(b.cases_per_second(*b.GRIDS[{grid!r}], {n}))")
    return float(subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True,
                                text=True).stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="cases per small grid (the real-like grid uses n // 4)")
    parser.add_argument("--baseline-src", type=Path, help="a `src` folder holding another taskalign to compare")
    args = parser.parse_args()
    if args.baseline_src is None:
        for name, (shape, spacing) in GRIDS.items():
            n = max(2, args.n // 4) if shape[1] > 100 else args.n
            rate = cases_per_second(shape, spacing, n)
            print(f"{name:48s} {rate:8.1f} cases/s  ({1000 / rate:7.1f} ms/case, n={n})")
        return
    print(f"{'grid':48s} {'baseline':>10s} {'this':>10s}  cases/s (baseline: {args.baseline_src})")
    rows = {}
    for name, (shape, _) in GRIDS.items():
        n = max(2, args.n // 4) if shape[1] > 100 else args.n
        before, after = _rate_in(args.baseline_src, name, n), _rate_in(SRC, name, n)
        rows[name] = (before, after)
        print(f"{name:48s} {before:10.1f} {after:10.1f}  (n={n})")
    print(json.dumps({k: {"baseline": round(a, 2), "this": round(b, 2)} for k, (a, b) in rows.items()}))


if __name__ == "__main__":
    main()
