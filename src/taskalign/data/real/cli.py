"""Registration of the real-data subcommands: `taskalign data check` and `taskalign gap`."""
from __future__ import annotations


def add_parsers(subparsers) -> None:
    from taskalign.data.real.check import add_data_parser
    from taskalign.study.gap_cli import add_gap_parser

    add_data_parser(subparsers)
    add_gap_parser(subparsers)
