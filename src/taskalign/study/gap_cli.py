"""`taskalign gap --data PATH --out DIR`: the phantom-to-real gap per encoder (see study/gap.py).

    taskalign gap --data ../shared/data/real/picai_sample/cases.csv --out runs/gap
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from taskalign.data.real.cli import add_folder_options, folder_options
from taskalign.cli_args import nonnegative_int, output_folder, positive_int
from taskalign.data.real.folder import LAYOUTS
from taskalign.data.real.msd import DWI_OPTIONS
from taskalign import io
from taskalign.study.config import PRESETS


def add_gap_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("gap", help="MMD² between phantom and a real folder, per in-house pretrained encoder")
    p.add_argument("--data", required=True, type=Path, help="manifest CSV, PI-CAI or MSD folder")
    p.add_argument("--layout", choices=LAYOUTS, help="default: detected from --data")
    p.add_argument("--dwi", choices=DWI_OPTIONS, help="--layout msd only (no DWI)")
    p.add_argument("--out", required=True, type=output_folder, help="folder for the pretrained weights and gap.json")
    p.add_argument("--preset", default="quick", choices=list(PRESETS),
                   help="grid and data seed of the phantom side (default quick)")
    p.add_argument("--encoders", nargs="+", default=["profound_conv", "provicnet"])
    p.add_argument("--phantom-cases", type=positive_int, default=16)
    p.add_argument("--crops-per-case", type=positive_int, default=8, help="sub-volume crops per case for 3D encoders")
    p.add_argument("--permutations", type=positive_int, default=500, help="permutations for the p-values (>= 1)")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    add_folder_options(p)
    p.set_defaults(func=run_gap)
    return p


def format_gap(report: dict) -> str:
    lines = [f"phantom-to-real gap: {report['data']} ({report['layout']}, {report['n_real_cases']} real case(s)) vs "
             f"{report['n_phantom_cases']} phantom cases; preset {report['preset']} grid {report['grid']} at "
             f"{report['spacing_mm']} mm, in-house weights: {report.get('pretrain', 'n/a')}",
             f"{'what':<16} {'samples':<13} {'n phantom':>9} {'n real':>7} {'MMD²':>9} {'p':>7}   "
             f"{'baseline MMD²':>13} {'p':>7}"]
    names = list(report["encoders"]) + (["region stats"] if "region_stats" in report else [])
    for name in names:
        key = ("encoders", name) if name in report["encoders"] else ("region_stats",)
        r, b = _get(report, key), _get(report.get("baseline", {}), key)
        base = f"{b['mmd2']:>13.4f} {b['p_value']:>7.4f}" if b else f"{'n/a':>13} {'':>7}"
        lines.append(f"{name:<16} {r['samples']:<13} {r['n_phantom']:>9} {r['n_real']:>7} {r['mmd2']:>9.4f} "
                     f"{r['p_value']:>7.4f}   {base}")
    lines.append("baseline: the same test against as many held-out phantom cases as the folder has usable cases")
    lines.append("(samples of one case are correlated: with few real cases the p-value is optimistic)")
    return "\n".join(lines)


def _get(report: dict, key: tuple):
    for k in key:
        report = report.get(k, {}) if isinstance(report, dict) else {}
    return report or None


def run_gap(args: argparse.Namespace) -> int:
    from taskalign.study.gap import phantom_real_gap

    report = phantom_real_gap(args.data, args.out, args.layout, args.preset, tuple(args.encoders),
                              args.phantom_cases, args.crops_per_case, args.permutations, args.seed, args.dwi,
                              log=lambda s: None if args.json else print(s), **folder_options(args))
    io.write_json(Path(args.out) / "gap.json", report)
    print(json.dumps(report, indent=1) if args.json else format_gap(report))
    return 0
