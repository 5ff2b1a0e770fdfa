"""Every estimator on one candidate's rows, each with a percentile interval over target cases.

    logme          You et al. 2021 (logme.py)                          larger is better
    h_score        Bao et al. 2019 (hscore.py); class targets only      larger is better
    linear_probe   out-of-fold AUROC or R² (probes.py)                 larger is better
    knn            out-of-fold balanced accuracy or R² (probes.py)     larger is better
    drift_proxy    MMD² to the pretraining cohort (drift_proxy.py)     smaller is better

Intervals (bootstrap.py, half-sampling of cases): LogME, H-score and the drift proxy are
recomputed on each half; the probes' out-of-fold predictions are fitted once and rescored on
each half (refits would multiply the cost by the number of resamples). An estimator that the target data cannot
support (one case, one class, a continuous target for H-score) gets a reason instead of a value.
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from taskalign.advise.bootstrap import Interval, case_bootstrap
from taskalign.advise.drift_proxy import drift_proxy
from taskalign.advise.features import TaskRows
from taskalign.advise.hscore import h_score
from taskalign.advise.logme import logme
from taskalign.advise.probes import knn_probe, linear_probe

ESTIMATORS = ("logme", "h_score", "linear_probe", "knn", "drift_proxy")
HIGHER_IS_BETTER = {"logme": True, "h_score": True, "linear_probe": True, "knn": True, "drift_proxy": False}
CORRELATION_NOT_MEASURED = "not measured (no transfer matrix given: --trust DIR)"


@dataclass(frozen=True)
class Score:
    value: float | None
    interval: Interval | None
    n_rows: int
    n_cases: int
    metric: str = ""
    not_estimable: str | None = None     # why there is no value
    caution: str | None = None           # why the value says little

    def to_dict(self) -> dict:
        return asdict(self)


def _measure(statistic: Callable[[np.ndarray], float], groups: np.ndarray, metric: str, resamples: int,
             seed: int) -> Score:
    n_cases = len(np.unique(groups))
    try:
        value = float(statistic(np.arange(len(groups))))
    except ValueError as err:
        return Score(None, None, len(groups), n_cases, metric, str(err))
    return Score(value, case_bootstrap(statistic, groups, resamples, seed), len(groups), n_cases, metric)


def _probe(fit: Callable[[], object], groups: np.ndarray, resamples: int, seed: int) -> Score:
    """A probe's score; its interval clipped to the metric's range (AUROC and balanced accuracy
    in [0, 1], R² at most 1), which the interval of a small target can overshoot."""
    try:
        oof = fit()
    except ValueError as err:
        return Score(None, None, len(groups), len(np.unique(groups)), "", str(err))
    score = _measure(oof.score_rows, groups, oof.metric, resamples, seed)
    if score.interval is None:
        return score
    low = score.interval.low if oof.metric == "r2" else max(score.interval.low, 0.0)
    interval = dataclasses.replace(score.interval, low=low, high=min(score.interval.high, 1.0))
    return dataclasses.replace(score, interval=interval)


def score_candidate(rows: TaskRows, reference: np.ndarray, resamples: int = 200, seed: int = 0) -> dict[str, Score]:
    """{estimator: Score} of one candidate (module docstring)."""
    x, y, g, reg = rows.x, rows.y, rows.groups, rows.regression
    cases = np.arange(len(rows.case_features))
    out = {"logme": _measure(lambda r: logme(x[r], y[r], regression=reg), g, "evidence per sample", resamples, seed)}
    if reg:
        out["h_score"] = Score(None, None, len(g), len(np.unique(g)), "",
                               "H-score needs class labels; this task's target is continuous")
    else:
        out["h_score"] = _measure(lambda r: h_score(x[r], y[r]), g, "trace", resamples, seed)
        if len(y) <= x.shape[1]:
            out["h_score"] = dataclasses.replace(out["h_score"], caution=(
                f"{len(y)} rows <= {x.shape[1]} features: the pseudo-inverse separates any labelling, so the "
                "H-score sits at its ceiling (classes − 1) and does not rank"))
    out["linear_probe"] = _probe(lambda: linear_probe(x, y, g, reg), g, resamples, seed)
    out["knn"] = _probe(lambda: knn_probe(x, y, g, reg), g, resamples, seed)
    out["drift_proxy"] = _measure(lambda r: drift_proxy(rows.case_features[r], reference), cases,
                                  "MMD² (reference kernel)", resamples, seed)
    return out


def ranking(scores: dict[str, dict[str, Score]]) -> dict[str, dict[str, int]]:
    """{estimator: {candidate label: rank}}, rank 1 = best, over the candidates with a value;
    equal values share a rank (1 + the number of candidates strictly better)."""
    out = {}
    for name in ESTIMATORS:
        sign = 1.0 if HIGHER_IS_BETTER[name] else -1.0
        valued = {label: sign * s[name].value for label, s in scores.items() if s[name].value is not None}
        out[name] = {label: 1 + sum(other > v for other in valued.values())
                     for label, v in sorted(valued.items(), key=lambda lv: -lv[1])}
    return out


def mean_rank(ranks: dict[str, dict[str, int]], scores: dict[str, dict[str, Score]]) -> dict[str, float]:
    """Each candidate's mean rank (1 = best) over the estimators that ranked every candidate
    without a caution (an H-score at its ceiling does not rank)."""
    labels = list(scores)
    full = [r for name, r in ranks.items() if len(r) == len(labels) and r
            and not any(scores[label][name].caution for label in labels)]
    if not full:
        return {}
    return {label: float(np.mean([r[label] for r in full])) for label in labels}
