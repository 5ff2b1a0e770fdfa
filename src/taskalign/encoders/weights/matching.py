"""Comparing a state dict with the module it is meant for, and loading it only when it fits.

The error lists every missing, unexpected and mis-shaped key, so one look says whether the file
is another model, another size, or another naming scheme.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import torch
from torch import nn

from taskalign.errors import InputError

Shape = tuple[int, ...]


@dataclass
class KeyReport:
    """Keys the module expects but the file lacks (`missing`), keys the file has but the module
    does not (`unexpected`), and (key, file shape, module shape) for the rest that differ."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    misshaped: list[tuple[str, Shape, Shape]] = field(default_factory=list)
    optional_missing: list[str] = field(default_factory=list)  # missing but allowed (they keep their init)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.misshaped)

    def problems(self) -> int:
        return len(self.missing) + len(self.unexpected) + len(self.misshaped)


def compare_keys(expected: Mapping[str, Shape], state: Mapping[str, torch.Tensor],
                 optional: set[str] | frozenset[str] = frozenset()) -> KeyReport:
    """Key-for-key comparison of `state` against the `expected` {key: shape} of a module;
    keys in `optional` may be missing (reported separately)."""
    report = KeyReport()
    for key in expected:
        if key not in state:
            (report.optional_missing if key in optional else report.missing).append(key)
        elif tuple(state[key].shape) != tuple(expected[key]):
            report.misshaped.append((key, tuple(state[key].shape), tuple(expected[key])))
    report.unexpected = [k for k in state if k not in expected]
    return report


def _listing(title: str, items: list, limit: int = 12) -> str:
    if not items:
        return ""
    shown = "\n    ".join(str(i) for i in items[:limit])
    more = f"\n    ... and {len(items) - limit} more" if len(items) > limit else ""
    return f"\n  {title} ({len(items)}):\n    {shown}{more}"


class CheckpointMismatch(InputError):
    """A state dict that does not fit its module key for key; `report` holds the lists."""

    def __init__(self, source: str, target: str, report: KeyReport, hint: str = "") -> None:
        self.report = report
        misshaped = [f"{k}: file {tuple(a)} vs model {tuple(b)}" for k, a, b in report.misshaped]
        message = (f"{source} does not fit {target}: {len(report.missing)} missing, {len(report.unexpected)} "
                   f"unexpected, {len(report.misshaped)} mis-shaped keys"
                   + _listing("missing", report.missing) + _listing("unexpected", report.unexpected)
                   + _listing("mis-shaped", misshaped))
        super().__init__(message + (f"\n  {hint}" if hint else ""))


def shapes_of(module: nn.Module) -> dict[str, Shape]:
    """{key: shape} of a module's state dict (parameters and persistent buffers)."""
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def load_exactly(module: nn.Module, state: Mapping[str, torch.Tensor], source: str, target: str,
                 optional: set[str] | frozenset[str] = frozenset(), hint: str = "") -> KeyReport:
    """Copy `state` into `module` if it matches key for key and shape for shape (keys in
    `optional` may be missing and keep the module's current values); raise CheckpointMismatch
    otherwise, before anything is copied."""
    report = compare_keys(shapes_of(module), state, optional)
    if not report.ok:
        raise CheckpointMismatch(source, target, report, hint)
    current = module.state_dict()
    module.load_state_dict({**current, **{k: state[k] for k in current if k in state}}, strict=True)
    return report
