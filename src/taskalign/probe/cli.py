"""`taskalign probe ENCODER [--size S] [--weights FILE | --random] [--json]`: frozen probes of an
encoder's weights (default: the shipped foundation weights) against its random initialisation,
with the foundation gate."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from taskalign.errors import InputError


def add_probe_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("probe", help="frozen probes of encoder weights vs random init, and the gate",
                              description=__doc__)
    p.add_argument("encoder", help="registered encoder name")
    p.add_argument("--size", default="micro")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--weights", type=Path, help="weights file (default: the shipped foundation weights)")
    which.add_argument("--random", action="store_true",
                       help="probe another random initialisation (seed 1) against seed 0: the null check")
    p.add_argument("--cases", type=int, default=192, help="probe cohort size (default 192)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_probe_command)
    return p


def run_probe_command(args) -> int:
    from taskalign.encoders.base import create_encoder
    from taskalign.pretrain.card import shipped_weights
    from taskalign.pretrain.recipe import sha256_of
    from taskalign.probe import ProbeConfig, probe_encoder, seeded_random

    if args.cases < 10:
        raise InputError(f"--cases must be >= 10 (5-fold probes), got {args.cases}")
    build = lambda s: create_encoder(args.encoder, size=args.size, input_sequences=s)  # noqa: E731
    weights = None
    if args.random:
        trained = seeded_random(build, 1)
    else:
        weights = args.weights or shipped_weights(args.encoder, args.size)
        if weights is None:
            raise InputError(f"no shipped weights for {args.encoder} ({args.size}); give --weights FILE")
        if not Path(weights).exists():
            raise InputError(f"{weights}: no such file")
        trained = _loader(args.encoder, args.size, Path(weights))
    log = (lambda m: None) if args.json else print
    result = probe_encoder(seeded_random(build, 0), trained, ProbeConfig(n_cases=args.cases), log=log)
    out = {"encoder": args.encoder, "size": args.size, "weights": str(weights) if weights else "random (seed 1)",
           "sha256": sha256_of(Path(weights)) if weights else None, **result}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"gate: {'passed' if out['gate']['passed'] else 'FAILED'}: {out['gate']['reason']}")
    return 0


def _loader(encoder: str, size: str, path: Path):
    from taskalign.encoders.base import create_encoder
    from taskalign.encoders.weights import load_file_into

    def make(sequences):
        e = create_encoder(encoder, size=size, input_sequences=sequences)
        load_file_into(e, path, encoder)
        return e
    return make
