"""`taskalign checkpoint inspect FILE [--json]`: what a checkpoint holds and which encoder,
format and size it fits. Exit status 0 when the file loads as it is, 1 when it is recognised but
its keys or shapes do not fit, 2 when it is refused (needs pickle), unreadable or not recognised.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_checkpoint_parser(subparsers) -> argparse.ArgumentParser:
    """Register the `checkpoint` subcommand (with `inspect`) on an argparse subparsers object."""
    p = subparsers.add_parser("checkpoint", help="inspect published or in-house encoder checkpoint files",
                              description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="checkpoint_command", required=True)
    inspect = sub.add_parser("inspect", help="which encoder, format and size a file fits, and what differs")
    inspect.add_argument("file", type=Path)
    inspect.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_checkpoint)
    return p


def run_checkpoint(args) -> int:
    """Handler of `taskalign checkpoint inspect`; returns the exit status."""
    from taskalign.encoders.weights.inspection import describe, inspect_checkpoint
    from taskalign.encoders.weights.reading import CheckpointRefused

    try:
        info = inspect_checkpoint(args.file)
    except (CheckpointRefused, FileNotFoundError) as err:
        if args.json:   # the machine-readable answer on stdout, the one-line error on stderr
            print(json.dumps({"file": str(args.file), "encoder": None, "format": None, "tensors": None,
                              "parameters": None, "missing": [], "unexpected": [], "refused": True,
                              "error": str(err)}))
        raise
    print(json.dumps(info) if args.json else describe(info))
    if info["encoder"] is None:
        return 2
    return 0 if info["loadable"] else 1
