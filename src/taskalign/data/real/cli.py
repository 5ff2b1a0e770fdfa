"""Registration of the real-data subcommands (`taskalign data check`, `taskalign gap`) and the
options every command that reads a real folder takes (`--columns`, `--label-rule`, `--series`)."""
from __future__ import annotations

import argparse

from taskalign.data.case import SEQUENCES
from taskalign.data.real.columns import CANONICAL, parse_assignments
from taskalign.data.real.io import MASK_NAMES
from taskalign.data.real.labels import EXAMPLES


def add_parsers(subparsers) -> None:
    from taskalign.data.real.check import add_data_parser
    from taskalign.study.gap_cli import add_gap_parser

    add_data_parser(subparsers)
    add_gap_parser(subparsers)


def add_folder_options(parser: argparse.ArgumentParser) -> None:
    """`--columns`, `--label-rule` and `--series` (see `folder_options`)."""
    parser.add_argument("--columns", metavar="NAME=COLUMN,...",
                        help=f"manifest: which CSV column is which ({', '.join(CANONICAL)}), e.g. "
                             "case_id=pid,dwi=highb; known aliases are found without it")
    parser.add_argument("--label-rule", metavar="RULE",
                        help=f"csPCa label from a score column: {', '.join(EXAMPLES)} or COLUMN>=N")
    parser.add_argument("--series", metavar="NAME=SERIES,...",
                        help="manifest cells that are DICOM folders with several series: the series per "
                             "sequence, by description or SeriesInstanceUID, e.g. t2w=t2_tse_tra,adc=ADC")


def folder_options(args: argparse.Namespace) -> dict:
    """{columns, label_rule, series} from parsed arguments (dicts parsed, None when not given);
    ValueError naming the bad part."""
    columns = parse_assignments(getattr(args, "columns", None), "--columns", CANONICAL)
    series = parse_assignments(getattr(args, "series", None), "--series", SEQUENCES + MASK_NAMES)
    return {"columns": columns or None, "label_rule": getattr(args, "label_rule", None), "series": series or None}
