"""The within-task view: does the encoder with the smaller D2P have the larger gain?

Cells cluster by encoder and by task, so a correlation over all cells can be driven by one
encoder or one task. Within one task the two encoders share data, split and metric; the question
per task is binary, and over tasks it is a sign test:

    agree     : D2P_a < D2P_b and gain_a > gain_b (or both reversed)
    disagree  : the smaller D2P goes with the smaller gain
    tie       : equal D2P or equal gain (left out of the test, as in the classical sign test)

    p = exact two-sided binomial test of `agree` successes in agree + disagree trials at 1/2
      = min(1, 2 · Σ_{i ≤ min(k, N-k)} C(N, i) / 2^N)

(for probability 1/2 this is what scipy.stats.binomtest(k, N).pvalue computes). "Gain" is
higher-is-better (e.g. RPG); pass the negated value for lower-is-better outcomes (epochs).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Mapping


@dataclass(frozen=True)
class SignAgreement:
    agree: int
    disagree: int
    ties: int
    n_tasks: int
    p_value: float
    encoders: tuple[str, str]
    per_task: dict[str, str]   # task -> "agree" | "disagree" | "tie"

    def to_dict(self) -> dict:
        return asdict(self)


def sign_test_p_value(successes: int, trials: int) -> float:
    """Exact two-sided binomial (sign) test p-value at probability 1/2 (module docstring)."""
    if not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes} of {trials}")
    if trials == 0:
        return 1.0
    tail = sum(math.comb(trials, i) for i in range(min(successes, trials - successes) + 1))
    return min(1.0, 2.0 * tail / 2**trials)


def _pick_encoders(per_task: Mapping[str, Mapping[str, tuple[float, float]]],
                   encoders: tuple[str, str] | None) -> tuple[str, str]:
    if encoders is not None:
        if len(encoders) != 2 or encoders[0] == encoders[1]:
            raise ValueError(f"encoders must name two different encoders, got {encoders}")
        return tuple(encoders)  # type: ignore[return-value]
    names = {frozenset(cells) for cells in per_task.values()}
    if len(names) != 1 or len(next(iter(names))) != 2:
        raise ValueError("every task must hold the same two encoders, or pass encoders=(a, b) to choose "
                         f"the pair; got {sorted(sorted(n) for n in names)}")
    first, second = sorted(next(iter(names)))
    return first, second


def sign_agreement(per_task: Mapping[str, Mapping[str, tuple[float, float]]],
                   encoders: tuple[str, str] | None = None) -> SignAgreement:
    """per_task: {task: {encoder: (d2p, gain)}} -> agreement counts and the exact sign test.

    With exactly two encoders per task they are compared; otherwise `encoders=(a, b)` names the
    pair (a test over more than two encoders per task would not have success probability 1/2)."""
    if not per_task:
        raise ValueError("sign_agreement needs at least one task")
    a, b = _pick_encoders(per_task, encoders)
    verdicts: dict[str, str] = {}
    for task, cells in per_task.items():
        if a not in cells or b not in cells:
            raise ValueError(f"task {task!r} lacks encoder {a if a not in cells else b!r}; has {sorted(cells)}")
        (d_a, g_a), (d_b, g_b) = cells[a], cells[b]
        if not all(math.isfinite(v) for v in (d_a, g_a, d_b, g_b)):
            raise ValueError(f"task {task!r}: D2P and gain must be finite, got {a}={cells[a]}, {b}={cells[b]}")
        if d_a == d_b or g_a == g_b:
            verdicts[task] = "tie"
        else:
            verdicts[task] = "agree" if (d_a < d_b) == (g_a > g_b) else "disagree"
    agree = sum(v == "agree" for v in verdicts.values())
    disagree = sum(v == "disagree" for v in verdicts.values())
    return SignAgreement(agree, disagree, len(verdicts) - agree - disagree, len(verdicts),
                         sign_test_p_value(agree, agree + disagree), (a, b), verdicts)
