"""The same study units on this machine's cores two ways, side by side in one run:

    python bench/workers.py                     # provicnet on super-resolution, quick grid
    python bench/workers.py --tasks segmentation synthesis

(a) one process, `--threads-serial` torch threads per run (the old default: 2), units one after
the other; (b) the local backend's worker processes, one thread per run, one worker per core.
Each way is a fresh study folder of the quick preset restricted to the given encoders and tasks
(a specialised model and a cell per task: three training runs each), timed from the call to the
end of the units (results and report skipped). Printed: seconds for each way, the number of
workers, and the ratio (a) / (b): above 1 means the workers finish the same units sooner.
The two ways give the same kind of numbers, not the same numbers: the thread count is part of a
run's configuration.
"""
from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from taskalign.study.backends.local import usable_cpus
from taskalign.study.config import preset
from taskalign.study.runner import run_study


def _timed(cfg, workers: int) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as out:
        start = time.perf_counter()
        run_study(cfg, Path(out), log=lambda s: None, report=False, workers=workers)
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoders", nargs="+", default=["provicnet"])
    parser.add_argument("--tasks", nargs="+", default=["super_resolution"])
    parser.add_argument("--threads-serial", type=int, default=2)
    args = parser.parse_args(argv)
    base = preset("quick", encoders=tuple(args.encoders), tasks=tuple(args.tasks))
    serial_cfg = dataclasses.replace(base, train=dataclasses.replace(base.train, threads=args.threads_serial))
    workers = usable_cpus()
    serial = _timed(serial_cfg, workers=1)
    pooled = _timed(dataclasses.replace(base, train=dataclasses.replace(base.train, threads=1)), workers=workers)
    print(f"units: {len(args.encoders)} cell(s) + 1 specialised model per task, tasks {', '.join(args.tasks)}")
    print(f"(a) one process, {args.threads_serial} threads per run:  {serial:7.1f} s")
    print(f"(b) {workers} worker(s), 1 thread per run:        {pooled:7.1f} s")
    print(f"ratio (a)/(b): {serial / pooled:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
