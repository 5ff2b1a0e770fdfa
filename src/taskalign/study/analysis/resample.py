"""Bootstrap over seeds and cases for the study's correlations (DESIGN.md §6).

A point of a correlation is an (encoder, task) cell: its seed mean of an alignment metric
against its seed mean of an outcome. One bootstrap replicate

  1. draws the seeds with replacement (n_seeds of n_seeds);
  2. for each task and each drawn seed, draws the task's test (probe) cases with replacement;
     the draw is shared by every model of that task and seed (the comparisons stay paired);
  3. recomputes from the stored per-case results and probe features, for each cell and drawn
     seed: the fine-tuned, scratch and specialised test metrics (so RPG and the gain over
     scratch), D2P, D2R, D2S and their energy distances E2P, E2R, E2S, and D2P / E2P of the
     early checkpoints (on the feature alignment.json names, the one the task's head reads);
  4. averages each cell over its drawn seeds and recomputes Spearman ρ and Pearson r.

Convergence epochs and CKA come from the validation curves / whole probe set, so only step 1
moves them. Metrics: a per-case mean (Dice over cases with a lesion, PSNR, ...) under case
weights w is Σ w_i v_i / Σ w_i over the cases with a value; AUROC is
Σ_{i pos, j neg} w_i w_j [s_i > s_j] (ties ½) / (W_pos W_neg). MMD² (paired U-statistic,
h_ij = k(x_i,x_j) + k(y_i,y_j) − k(x_i,y_j) − k(x_j,y_i)) is
Σ_{i≠j} w_i w_j h_ij / Σ_{i≠j} w_i w_j over distinct cases: a case drawn twice is not paired
with itself (that term, 2 − 2k(x_i, y_i), would bias the estimate upwards). With every weight 1
each formula is the study's own estimate (MMD² up to the study's float32 rounding, ~1e-5
relative). The paired energy distance is the same U-statistic with the kernel −‖a − b‖
(`taskalign.align.energy`), so it is resampled by the same formula. A cell whose files lack per-case values or features is resampled over seeds only.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from taskalign.align.drift import REFERENCE_SCALES
from taskalign.align.extract import load_probe_banks
from taskalign.align.features import centred_pool
from taskalign.align.head_features import POOLED
from taskalign.align.kernels import Kernel, squared_distances
from taskalign import io
from taskalign.study.cell import run_dir
from taskalign.study.analysis.outcomes import relative_gain

CASE_METRICS = ("d2p", "d2r", "d2s")
DRIFT_STATES = {"d2p": ("finetuned", "pretrained"), "d2r": ("finetuned", "random"), "d2s": ("finetuned", "scratch"),
                "d2p_epoch1": ("early_epoch1", "pretrained"), "d2p_10pct": ("early_10pct", "pretrained")}
ENERGY_OF = {"e" + name[1:]: name for name in DRIFT_STATES}    # e2p -> d2p, e2p_epoch1 -> d2p_epoch1, ...
EARLY_STATES = ("early_epoch1", "early_10pct")                 # optional: runs written before them lack them


@dataclass
class SeedCell:
    """One (encoder, task, n_train, seed) row with what case resampling needs (None: not available)."""
    row: dict[str, Any]
    case_ids: list[str] | None = None
    per_case: dict[str, np.ndarray] = field(default_factory=dict)   # "ft", "spec", "scratch": values or scores
    labels: np.ndarray | None = None                                  # AUROC tasks
    h: dict[str, np.ndarray] = field(default_factory=dict)           # d2x -> (n, n), zero diagonal

    def value(self, name: str, w: np.ndarray | None) -> np.ndarray | float:
        """The row's `name` (rpg, gain_over_scratch, d2p, d2r, d2s, d2p_d2r_ratio, or any other column) under case
        weights w (B, n); w None (or nothing to resample) gives the row's own value."""
        if w is None or self.case_ids is None:
            return float(self.row[name])
        if name == "rpg" and self.per_case:
            higher = bool(self.row["higher_is_better"])
            ft, spec = self._metric("ft", w), self._metric("spec", w)
            return np.array([relative_gain(a, b, higher) for a, b in zip(ft, spec)])
        if name == "gain_over_scratch" and "scratch" in self.per_case:
            sign = 1.0 if bool(self.row["higher_is_better"]) else -1.0
            return sign * (self._metric("ft", w) - self._metric("scratch", w))
        if name in self.h:
            return weighted_paired_mmd2(self.h[name], w)
        if name == "d2p_d2r_ratio" and {"d2p", "d2r"} <= self.h.keys():
            with np.errstate(invalid="ignore", divide="ignore"):
                return weighted_paired_mmd2(self.h["d2p"], w) / weighted_paired_mmd2(self.h["d2r"], w)
        return np.full(w.shape[0], float(self.row[name]))

    def _metric(self, model: str, w: np.ndarray) -> np.ndarray:
        if self.labels is not None:
            return weighted_auroc(self.labels, self.per_case[model], w)
        return weighted_mean(self.per_case[model], w)


def weighted_mean(values: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(B,) Σ w_i v_i / Σ w_i over the finite v_i; values (n,), w (B, n)."""
    ok = np.isfinite(values)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w[:, ok] * values[ok]).sum(1) / w[:, ok].sum(1)


def weighted_auroc(labels: np.ndarray, scores: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(B,) AUROC of each weighted resample (NaN where a class has no weight)."""
    pos, neg = labels == 1, labels == 0
    s_pos, s_neg = scores[pos], scores[neg]
    wins = (s_pos[:, None] > s_neg[None, :]) + 0.5 * (s_pos[:, None] == s_neg[None, :])   # (P, N)
    wp, wn = w[:, pos], w[:, neg]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.einsum("bi,ij,bj->b", wp, wins, wn) / (wp.sum(1) * wn.sum(1))


def negative_distance(a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """k(a, b) = −‖a − b‖: the kernel that makes paired MMD² the paired energy distance."""
    return -squared_distances(a, b).sqrt_()    # the distances of `taskalign.align.energy`


def paired_energy_h(x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """`paired_h` of the paired energy distance, in float64 on the pooled sample centred at its
    mean (as `taskalign.align.energy.energy_distance`: unit weights give its value)."""
    z = centred_pool(x.double(), y.double())
    return paired_h(z[:x.shape[0]], z[x.shape[0]:], negative_distance)


def paired_h(x: torch.Tensor, y: torch.Tensor, kernel) -> np.ndarray:
    """(n, n) h_ij of the paired U-statistic with a zero diagonal (module docstring)."""
    x, y = x.double(), y.double()
    kxx, kyy, kxy = kernel(x).numpy(), kernel(y).numpy(), kernel(x, y).numpy()
    h = kxx + kyy - kxy - kxy.T
    np.fill_diagonal(h, 0.0)
    return h


def weighted_paired_mmd2(h: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(B,) Σ_{i≠j} w_i w_j h_ij / Σ_{i≠j} w_i w_j (h with zero diagonal; w (B, n))."""
    num = np.einsum("bi,ij,bj->b", w, h, w)
    den = w.sum(1) ** 2 - (w * w).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _read_per_case(path: Path) -> dict[str, list[str]] | None:
    if not path.exists():
        return None
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return {k: [r[k] for r in rows] for k in rows[0]} if rows else None


def _floats(col: list[str]) -> np.ndarray:
    return np.array([float(v) if v not in ("", "None") else math.nan for v in col], dtype=np.float64)


def load_seed_cell(study_dir: Path, row: dict[str, Any]) -> SeedCell:
    """A row of results.csv with its per-case values and drift h-matrices from the cell's files."""
    cell = SeedCell(row)
    e, t, n, s = row["encoder"], row["task"], int(row["n_train"]), int(row["seed"])
    ft_dir, sc_dir, sp_dir = (run_dir(study_dir, m, t, n, s) for m in (e, f"{e}-scratch", "specialised"))
    ft, sp = _read_per_case(ft_dir / "per_case.csv"), _read_per_case(sp_dir / "per_case.csv")
    if ft is None or sp is None or ft["case_id"] != sp["case_id"]:
        return cell
    metric = row["metric"]
    sc = _read_per_case(sc_dir / "per_case.csv")
    runs = {"ft": ft, "spec": sp, **({"scratch": sc} if sc is not None and sc["case_id"] == ft["case_id"] else {})}
    column = "logit" if metric == "auroc" else metric
    if all(column in r for r in (ft, sp)):
        cell.per_case = {k: _floats(r[column]) for k, r in runs.items() if column in r}
        if metric == "auroc":
            cell.labels = _floats(ft["label"]).astype(int)
    cell.case_ids = list(ft["case_id"])
    sigma = float(row.get("sigma_ref", math.nan))
    align_path = ft_dir / "alignment.json"
    feature = io.read_json(align_path).get("feature", POOLED) if align_path.exists() else POOLED
    states = ((ft_dir, ("finetuned", "pretrained")), (sc_dir, ("random", "scratch")))
    banks = {state: load_probe_banks(d, state) for d, names in states for state in names}
    if math.isfinite(sigma) and sigma > 0 and all(b is not None and feature in b for b in banks.values()):
        kernel = Kernel("rbf", tuple(sc * sigma for sc in REFERENCE_SCALES), "reference kernel (bootstrap)")
        early = {state: load_probe_banks(ft_dir, state) for state in EARLY_STATES}
        feats = {state: b[feature] for state, b in {**banks, **early}.items()   # the feature D2x was measured on
                 if b is not None and feature in b and b[feature].shape[0] == len(cell.case_ids)}
        if all(state in feats for state in banks):
            cell.h = {name: paired_h(feats[a], feats[b], kernel) for name, (a, b) in DRIFT_STATES.items()
                      if a in feats and b in feats}
            cell.h.update({e: paired_energy_h(feats[a], feats[b])
                           for e, d in ENERGY_OF.items() if d in cell.h for a, b in [DRIFT_STATES[d]]})
    return cell
