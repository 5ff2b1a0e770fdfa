"""Argument types and the parser class of every `taskalign` subcommand (kept low, beside
`errors`, so the sub-CLIs of every room use them): numbers are checked when parsed, and a bad
argument is one line, `taskalign: error: …`, with exit status 2."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, NoReturn


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad argument prints one line naming the subcommand and its --help."""

    def error(self, message: str) -> NoReturn:
        print(f"taskalign: error: {self.prog}: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


def _number(kind: Callable[[str], float], test: Callable[[float], bool], what: str) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not test(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value

    parse.__name__ = what   # argparse names the type in its message
    return parse


positive_int = _number(int, lambda v: v >= 1, "an integer >= 1")
nonnegative_int = _number(int, lambda v: v >= 0, "an integer >= 0")
positive_float = _number(float, lambda v: v > 0 and v != float("inf"), "a finite number > 0")


def size_list(text: str) -> tuple[int, ...]:
    """Comma-separated integers >= 2, e.g. "8,16,48" (labelled-set sizes)."""
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers, e.g. 8,16,48") from None
    if not sizes or min(sizes) < 2:
        raise argparse.ArgumentTypeError(f"{text!r}: every labelled-set size must be >= 2")
    return tuple(sorted(set(sizes)))


def output_folder(text: str) -> Path:
    """A folder to create or reuse: refused when the path is an existing file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a file, not a folder; give a new or existing folder")
    return path


def existing_path(text: str) -> Path:
    """A file or folder that must exist."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{path} does not exist")
    return path
