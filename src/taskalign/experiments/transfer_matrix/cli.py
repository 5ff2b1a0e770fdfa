"""`taskalign experiment transfer-matrix --preset {smoke,quick,standard} --out DIR`."""
from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_experiment_parser(subparsers) -> argparse.ArgumentParser:
    from taskalign.cli_args import output_folder, positive_int
    from taskalign.experiments.transfer_matrix.config import MATRIX_PRESETS

    p = subparsers.add_parser("experiment", help="experiments beyond the study grid (transfer-matrix)")
    sub = p.add_subparsers(dest="experiment", required=True)
    m = sub.add_parser("transfer-matrix", help="pretrain one architecture in several ways, fine-tune each on every "
                                               "task: does D2P follow the gain when only the pretraining changes?")
    m.add_argument("--preset", default="quick", choices=list(MATRIX_PRESETS))
    m.add_argument("--out", required=True, type=output_folder, help="matrix folder (created; resumed if it exists)")
    m.add_argument("--encoders", nargs="+", help="architectures (default from the preset)")
    m.add_argument("--seeds", type=positive_int, help="number of seeds (0..N-1)")
    m.add_argument("--workers", type=positive_int,
                   help="worker processes (default: one per train.threads CPU cores, one on a GPU)")
    m.add_argument("--backend", default="local", choices=["local", "ray"],
                   help="local: this machine, in worker processes (default); ray: each unit a Ray task")
    m.add_argument("--address", help="Ray cluster address for --backend ray (default: a local Ray instance)")
    m.add_argument("--force", action="store_true", help="reuse a folder whose config differs")
    m.set_defaults(func=run_transfer_matrix)
    return p


def run_transfer_matrix(args: argparse.Namespace) -> int:
    from taskalign.experiments.transfer_matrix import matrix_preset, run_matrix
    from taskalign.study.backends import default_workers

    mcfg = matrix_preset(args.preset, encoders=tuple(args.encoders) if args.encoders else None,
                         seeds=tuple(range(args.seeds)) if args.seeds else None)
    workers = 1 if args.backend == "ray" else args.workers or default_workers(mcfg.study())
    start = time.perf_counter()
    print(f"transfer matrix ({mcfg.preset}): {len(mcfg.encoders)} encoder(s) × {len(mcfg.sources)} sources × "
          f"{len(mcfg.targets)} targets × {len(mcfg.seeds)} seed(s), {workers} worker(s) -> {args.out}", flush=True)
    run_matrix(Path(args.out), mcfg, workers=workers, force=args.force, log=lambda m: print(m, flush=True),
               backend=args.backend, address=args.address)
    print(f"transfer matrix finished in {time.perf_counter() - start:.0f} s: {Path(args.out) / 'matrix.md'}")
    return 0
