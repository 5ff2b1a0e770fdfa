"""`taskalign data check PATH`: read every case of a real folder, show what is there and every
problem found, one line each. Exit status 0 when every case is usable, 1 when some case has a problem, 2 when the folder
cannot be read at all (one line on stderr; with --json also a JSON object with "error").

    taskalign data check ../shared/data/real/picai_sample/cases.csv
    taskalign data check my_msd_folder --layout msd --dwi zero --json
    taskalign data check profound_cls.csv --label-rule pirads>=4

The check inflates every `.gz` file whole (CRC checked), so a truncated or corrupted file is a
problem of its case; the notes say which column was read as what and how masks were read.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from taskalign.data.case import Case
from taskalign.data.real.cli import add_folder_options, folder_options
from taskalign.data.real.folder import LAYOUTS, FolderRead, read_folder, reader_options
from taskalign.data.real.msd import DWI_OPTIONS
from taskalign.errors import InputError


def case_summary(case: Case) -> dict:
    """{id, shape, spacing, labels}: labels = the masks and labels the case has."""
    labels = [m for m in ("gland", "zones", "lesion") if getattr(case, m) is not None]
    labels += ["label"] if case.label is not None else []
    return {"id": case.case_id, "shape": list(case.shape), "spacing": [round(s, 4) for s in case.spacing_mm],
            "labels": labels}


def report_json(result: FolderRead) -> dict:
    return {"layout": result.layout, "path": result.path, "entries": result.entries,
            "cases": [case_summary(c) for c in result.cases], "problems": [p.to_dict() for p in result.problems],
            "notes": result.notes}


def print_report(result: FolderRead, file=None) -> None:
    """A rich table of the usable cases, then notes, then one line per problem."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=file or sys.stdout, width=160, highlight=False)
    table = Table(title=f"{result.path} ({result.layout}): {len(result.cases)} of {result.entries} cases usable")
    for column in ("case", "shape (D, H, W)", "spacing mm (z, y, x)", "labels"):
        table.add_column(column)
    for case in result.cases:
        s = case_summary(case)
        table.add_row(s["id"], " × ".join(map(str, s["shape"])), " × ".join(f"{v:g}" for v in s["spacing"]),
                      ", ".join(s["labels"]) or "none")
    console.print(table)
    for note in result.notes:
        console.print(f"note: {note}", markup=False)
    for problem in result.problems:
        console.print(f"problem: {problem.line()}", markup=False)
    if not result.problems:
        console.print("no problems found", markup=False)


def add_data_parser(subparsers) -> argparse.ArgumentParser:
    """`taskalign data check PATH [--layout ...] [--json]`."""
    p = subparsers.add_parser("data", help="real-data folders: check them")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    c = data_sub.add_parser("check", help="read every case, list shapes, spacings, labels and every problem")
    c.add_argument("path", type=Path, help="manifest CSV, PI-CAI folder or MSD folder")
    c.add_argument("--layout", choices=LAYOUTS, help="default: .csv = manifest, dataset.json = msd, else picai")
    c.add_argument("--dwi", choices=DWI_OPTIONS, help="MSD only (no DWI): zero-fill or drop the channel")
    c.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    add_folder_options(c)
    c.set_defaults(func=run_data_check)
    return p


def no_usable_case(result: FolderRead) -> str:
    """The one error for a folder where no case can be used."""
    kinds = sorted({p.kind for p in result.problems})
    return (f"no usable case in {result.path}: every one of its {result.entries} entries has a problem "
            f"({', '.join(kinds) or 'none listed'}); fix the files listed above")


def run_data_check(args: argparse.Namespace) -> int:
    try:
        options = reader_options(args.layout, args.path, dwi=args.dwi, **folder_options(args))
        result = read_folder(args.path, args.layout, check_gzip="crc", **options)
    except ValueError as err:
        if args.json:
            print(json.dumps({"error": str(err), "cases": [], "problems": []}))
        raise InputError(str(err)) from err
    if args.json:
        report = report_json(result)
        print(json.dumps({**report, "error": no_usable_case(result)} if not result.cases else report, indent=1))
    else:
        print_report(result)
        if not result.cases:
            print(f"error: {no_usable_case(result)}", file=sys.stderr)
    return 0 if result.cases and not result.problems else 1
