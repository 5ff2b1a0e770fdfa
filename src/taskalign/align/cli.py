"""`taskalign mmd A B`: MMD² between two feature files, a thin layer over `taskalign.align.mmd2`.

    taskalign mmd feats_a.npy feats_b.npy --permutations 1000 --seed 0
    taskalign mmd a.pt b.pt --paired --kernel rbf --bandwidth 2.5 --json

Files hold one (n, d) matrix: `.pt` (a tensor, or a dict of tensors with --key; loaded with
weights_only=True), `.npy` (allow_pickle=False), `.npz` (one array, or --key). Bad inputs
(mismatched feature dimensions, NaN/Inf rows, empty matrices, unreadable files) raise `InputError`:
through `taskalign.cli.main`, one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from taskalign.align.features import as_feature_pair
from taskalign.align.kernels import KERNEL_NAMES
from taskalign.align.mmd import P_VALUE_METHODS, MMDResult, mmd2
from taskalign.cli_args import nonnegative_int, positive_float
from taskalign.errors import InputError

SUFFIXES = (".pt", ".npy", ".npz")


def add_mmd_parser(subparsers) -> argparse.ArgumentParser:
    """Register the `mmd` subcommand on an argparse subparsers object; returns its parser."""
    p = subparsers.add_parser("mmd", help="MMD² between two feature files, with bandwidth and p-value",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("a", type=Path, help="first sample: (n_x, d) matrix in .pt, .npy or .npz")
    p.add_argument("b", type=Path, help="second sample: (n_y, d) matrix in .pt, .npy or .npz")
    p.add_argument("--kernel", choices=KERNEL_NAMES, default="rbf")
    p.add_argument("--bandwidth", type=positive_float, nargs="+", metavar="S",
                   help="kernel bandwidth σ (several: kernels averaged); default: median heuristic")
    p.add_argument("--permutations", type=nonnegative_int, default=1000, metavar="B",
                   help="permutations for the p-value (0: none)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--paired", action="store_true",
                       help="row i of A and B are the same item: paired U-statistic, swaps within pairs")
    group.add_argument("--biased", action="store_true", help="biased V-statistic instead of the unbiased U-statistic")
    p.add_argument("--p-value-method", choices=P_VALUE_METHODS, default="auto",
                   help="auto: full permutation test if the kernel matrix fits in memory, else subsample")
    p.add_argument("--key", help="array name inside a .npz or a dict .pt file")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_mmd)
    return p


def _pick(arrays: dict, key: str | None, path: Path):
    if key is not None:
        if key not in arrays:
            raise InputError(f"{path}: no array named {key!r}; it holds {sorted(arrays)}")
        return arrays[key]
    if len(arrays) != 1:
        raise InputError(f"{path} holds {len(arrays)} arrays {sorted(arrays)}; choose one with --key")
    return next(iter(arrays.values()))


def load_features(path: Path, key: str | None = None) -> "torch.Tensor | np.ndarray":
    """Read one feature matrix from .pt / .npy / .npz (see module docstring)."""
    if path.suffix not in SUFFIXES:
        raise InputError(f"{path}: unsupported file type {path.suffix!r}; use one of {', '.join(SUFFIXES)}")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                return _pick({name: archive[name] for name in archive.files}, key, path)
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, TypeError) as err:
        raise InputError(f"{path}: cannot read it ({err})") from err
    if isinstance(obj, dict):
        obj = _pick(obj, key, path)
    if not isinstance(obj, torch.Tensor):
        raise InputError(f"{path}: expected a tensor, found {type(obj).__name__}")
    return obj


def _format(res: MMDResult, a: Path, b: Path) -> str:
    if res.bandwidths:
        sigma = ", ".join(f"{s:.6g}" for s in res.bandwidths)
        bandwidth = f"bandwidth σ = {sigma} ({res.bandwidth_rule})"
    else:
        bandwidth = "bandwidth: none (linear kernel)"
    p_value = "p-value: not computed (--permutations 0)" if res.p_value is None else \
        f"p-value = {res.p_value:.6g} ({res.p_value_method})"
    return "\n".join([f"MMD² = {res.mmd2:.6g} ({res.estimator}, {res.kernel} kernel, {res.path} path)",
                      f"n_x = {res.n_x} ({a}), n_y = {res.n_y} ({b})", bandwidth, p_value])


def _json(res: MMDResult) -> str:
    out = {"mmd2": res.mmd2, "bandwidth": res.to_dict()["bandwidth"], "p_value": res.p_value,
           "n_x": res.n_x, "n_y": res.n_y, "kernel": res.kernel, "estimator": res.estimator,
           "bandwidth_rule": res.bandwidth_rule, "p_value_method": res.p_value_method,
           "permutations": res.permutations, "seed": res.seed}
    return json.dumps(out)


def run_mmd(args: argparse.Namespace) -> int:
    """Run the `mmd` subcommand; returns 0, raises `InputError` on bad input."""
    raw_a, raw_b = load_features(args.a, args.key), load_features(args.b, args.key)
    a, b = as_feature_pair(raw_a, raw_b, names=(str(args.a), str(args.b)), paired=args.paired)
    estimator = "paired-u" if args.paired else "biased-v" if args.biased else "unbiased-u"
    res = mmd2(a, b, kernel=args.kernel, bandwidth=args.bandwidth, estimator=estimator,
               permutations=args.permutations, seed=args.seed, p_value_method=args.p_value_method)
    print(_json(res) if args.json else _format(res, args.a, args.b))
    return 0
