"""`taskalign advise --task TASK [--data DIR] --encoders NAME[=WEIGHTS] ... [--json]`: rank
candidate encoders or checkpoints for a task from frozen features of the target data only."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

PRESETS = ("smoke", "quick", "standard", "paper")


def add_advise_parser(subparsers) -> argparse.ArgumentParser:
    from taskalign.data.real.cli import add_folder_options

    p = subparsers.add_parser("advise", help="rank encoders / checkpoints for a task before fine-tuning",
                              description=__doc__)
    p.add_argument("--task", required=True, help="registered task name, e.g. segmentation")
    p.add_argument("--encoders", required=True, nargs="+", metavar="NAME[=WEIGHTS]",
                   help="candidates: NAME (shipped foundation weights), NAME=FILE (a local checkpoint; provicnet "
                        "also FILE,FILE,FILE) or NAME=random (random initialisation)")
    p.add_argument("--data", type=Path, help="real folder (manifest CSV, PI-CAI or MSD); default: the phantom")
    p.add_argument("--layout", choices=["manifest", "picai", "msd"], help="layout of --data (default: detected)")
    p.add_argument("--dwi", choices=["zero", "drop"], help="--layout msd only (no DWI): zero-fill or drop it")
    add_folder_options(p)
    p.add_argument("--preset", default="quick", choices=PRESETS,
                   help="grid and phantom split of a study preset (default quick: its 48 training cases)")
    p.add_argument("--size", help="encoder size (default: the preset's)")
    p.add_argument("--cases", type=int, help="use only the first N target cases")
    p.add_argument("--bootstrap", type=int, default=200, help="resamples of cases for the intervals (default 200)")
    p.add_argument("--seed", type=int, default=0, help="seed of the cell choice and the resamples")
    p.add_argument("--trust", type=Path, metavar="DIR",
                   help="transfer-matrix folder whose measured rank correlations to show (default: the shipped "
                        "quick matrix's)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_advise)
    return p


def _target(args):
    from taskalign.advise.target import folder_target, phantom_target
    from taskalign.data.real.cli import folder_options

    if args.data is None:
        return phantom_target(args.preset, args.cases)
    return folder_target(args.data, args.preset, args.cases, args.layout, dwi=args.dwi, **folder_options(args))


def run_advise(args: argparse.Namespace) -> int:
    from taskalign.advise.advise import advise
    from taskalign.advise.candidates import parse_candidates
    from taskalign.advise.table import format_result
    from taskalign.advise.trust import apply_trust, load_trust
    from taskalign.study.config import preset

    log = (lambda msg: None) if args.json else (lambda msg: print(msg, flush=True))
    try:
        if args.bootstrap < 0:
            raise ValueError(f"--bootstrap must be >= 0, got {args.bootstrap}")
        trust = load_trust(args.trust)
        candidates = parse_candidates(args.encoders, args.size or preset(args.preset).encoder_size)
        target = _target(args)
        log(f"target: {target.description}")
        result = apply_trust(advise(args.task, candidates, target, args.bootstrap, args.seed, log), trust)
    except ValueError as err:
        print(f"taskalign: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result) if args.json else format_result(result))
    return 0
