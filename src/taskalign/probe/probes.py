"""The frozen probes: each turns probe-grid features and the probe cohort's ground truth into a
table (rows, targets, case of each row), fits a linear model with cross-validation grouped by
case, and returns out-of-fold predictions, so that two encoder states can be compared on the
same rows with a paired bootstrap over cases (`taskalign.probe.evaluate`).

Semantic probes (what contrastive, label-aware pretraining should teach):
    cspca_case       case csPCa from [mean, max] over gland cells             AUROC
    lesion_vs_mimic  csPCa focus vs benign mimic (BPH nodule, prostatitis),
                     from the cell at the finding's centre                    AUROC
    slice_cspca      csPCa in a slab of slices, [mean, max] over its gland    AUROC
    zone_cell        PZ vs TZ for gland cells                                 balanced accuracy
Restoration probes (what masked reconstruction should teach), ridge regression of a task's
residual (target − the task's base; the target itself for synthesis) averaged per cell, from
the frozen features of the task's own degraded input:
    super_resolution, distortion_correction, synthesis                       R²
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from taskalign.data.case import Case
from taskalign.probe.features import pool_to_grid

SEMANTIC = ("cspca_case", "lesion_vs_mimic", "slice_cspca", "zone_cell")
RESTORATION = ("super_resolution", "distortion_correction", "synthesis")
METRIC = {"cspca_case": "auroc", "lesion_vs_mimic": "auroc", "slice_cspca": "auroc", "zone_cell": "balanced_accuracy",
          **{t: "r2" for t in RESTORATION}}
GLAND_CELL = 0.5          # a cell is "in the gland" when at least half its voxels are
MAX_ZONE_CELLS = 24       # per case, so large glands do not dominate
RESTORATION_CELLS = 48    # body cells per case for the ridge probes
LOGISTIC_C = 0.1          # one fixed, strong-ish regularisation for every state (no tuning per state)
RIDGE_ALPHA = 10.0


@dataclass
class Table:
    x: np.ndarray        # (n, f)
    y: np.ndarray        # (n,) int labels or (n, k) regression targets
    groups: np.ndarray   # (n,) case index of each row


@dataclass
class Truth:
    """Ground truth of the probe cohort on the probe grid (independent of the encoder state)."""
    gland: np.ndarray    # (N, gd, gh, gw) fraction of gland voxels
    tz: np.ndarray       # (N, gd, gh, gw) fraction of TZ voxels
    cspca: np.ndarray    # (N, gd, gh, gw) fraction of csPCa voxels (lesion grade >= 2)
    labels: np.ndarray   # (N,) case csPCa
    findings: list[tuple[int, tuple[int, int, int], int]]  # (case, cell, 1 csPCa / 0 mimic)


def finding_cell(case: Case, center_mm, grid: tuple[int, int, int]) -> tuple[int, int, int] | None:
    """A finding's centre (mm, patient space) -> its probe cell, or None outside the volume."""
    shape, spacing = np.array(case.shape), np.array(case.spacing_mm)
    voxel = (np.array(center_mm) - np.array(case.meta["grid_center_mm"])) / spacing + (shape - 1) / 2
    cell = np.floor((voxel + 0.5) * np.array(grid) / shape).astype(int)
    return tuple(int(c) for c in cell) if ((cell >= 0) & (cell < np.array(grid))).all() else None


def ground_truth(cases: list[Case], grid: tuple[int, int, int]) -> Truth:
    gland = np.stack([pool_to_grid(c.gland, grid) for c in cases])
    tz = np.stack([pool_to_grid(c.zones == 2, grid) for c in cases])
    cspca = np.stack([pool_to_grid(c.lesion >= 2, grid) for c in cases])
    findings = []
    for i, c in enumerate(cases):
        for f in c.meta.get("lesions", []) + c.meta.get("mimics", []):
            cancer = f["kind"] == "cancer"
            if not f.get("in_grid") or (cancer and not f["significant"]):
                continue
            cell = finding_cell(c, f["center"], grid)
            if cell is not None:
                findings.append((i, cell, int(cancer)))
    return Truth(gland, tz, cspca, np.array([int(c.label) for c in cases]), findings)


def _mean_max(cells: np.ndarray, where: np.ndarray) -> np.ndarray:
    """(k, F) cells and (k,) bool -> [mean, max] over the selected cells (all cells if none)."""
    chosen = cells[where] if where.any() else cells
    return np.concatenate([chosen.mean(0), chosen.max(0)])


def semantic_table(name: str, cells: np.ndarray, truth: Truth) -> Table:
    """Rows of a semantic probe from (N, gd, gh, gw, F) cell features."""
    n, gd = cells.shape[:2]
    gland = truth.gland >= GLAND_CELL
    rows, ys, groups = [], [], []
    if name == "cspca_case":
        for i in range(n):
            rows.append(_mean_max(cells[i].reshape(-1, cells.shape[-1]), gland[i].ravel()))
            ys.append(truth.labels[i]), groups.append(i)
    elif name == "slice_cspca":
        for i in range(n):
            for z in range(gd):
                if gland[i, z].any():
                    rows.append(_mean_max(cells[i, z].reshape(-1, cells.shape[-1]), gland[i, z].ravel()))
                    ys.append(int(truth.cspca[i, z].max() > 0)), groups.append(i)
    elif name == "lesion_vs_mimic":
        for i, cell, label in truth.findings:
            rows.append(cells[(i, *cell)]), ys.append(label), groups.append(i)
    elif name == "zone_cell":
        rng = np.random.default_rng(0)
        for i in range(n):
            idx = np.flatnonzero(gland[i].ravel())
            idx = rng.choice(idx, size=min(len(idx), MAX_ZONE_CELLS), replace=False) if len(idx) else idx
            flat = cells[i].reshape(-1, cells.shape[-1])
            rows += list(flat[idx])
            ys += list((truth.tz[i].ravel()[idx] >= 0.5).astype(int))
            groups += [i] * len(idx)
    else:
        raise ValueError(f"unknown semantic probe {name!r}; choose from {SEMANTIC}")
    return Table(np.asarray(rows, dtype=np.float32), np.asarray(ys), np.asarray(groups))


def restoration_rows(body: np.ndarray, seed: int = 0) -> list[np.ndarray]:
    """(N, gd, gh, gw) body fractions -> per case, the flat indices of up to `RESTORATION_CELLS` body cells (fixed by `seed`)."""
    rng = np.random.default_rng(seed)
    out = []
    for b in body:
        idx = np.flatnonzero(b.ravel() >= 0.5)
        out.append(np.sort(rng.choice(idx, size=min(len(idx), RESTORATION_CELLS), replace=False)))
    return out


def restoration_table(cells: np.ndarray, residual: np.ndarray, rows: list[np.ndarray]) -> Table:
    """(N, gd, gh, gw, F) features, (N, C, gd, gh, gw) residual per cell, chosen rows -> Table."""
    x, y, g = [], [], []
    for i, idx in enumerate(rows):
        x.append(cells[i].reshape(-1, cells.shape[-1])[idx])
        y.append(residual[i].reshape(residual.shape[1], -1)[:, idx].T)
        g.append(np.full(len(idx), i))
    return Table(np.concatenate(x).astype(np.float32), np.concatenate(y), np.concatenate(g))


def out_of_fold(table: Table, regression: bool, folds: int = 5) -> np.ndarray:
    """Out-of-fold predictions: P(class 1) for classification, (n, k) values for regression.
    Folds are grouped by case (stratified for classification), so no case is in train and test."""
    n_groups = len(np.unique(table.groups))
    k = min(folds, n_groups)
    if k < 2:
        raise ValueError(f"a probe needs at least 2 cases, got {n_groups}")
    if regression:
        splitter, pred = GroupKFold(n_splits=k), np.zeros((len(table.y), table.y.reshape(len(table.y), -1).shape[1]))
        model = lambda: make_pipeline(StandardScaler(), Ridge(alpha=RIDGE_ALPHA))  # noqa: E731
    else:
        splitter, pred = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=0), np.zeros(len(table.y))
        model = lambda: make_pipeline(StandardScaler(), LogisticRegression(C=LOGISTIC_C, max_iter=2000))  # noqa: E731
    for train, test in splitter.split(table.x, table.y, table.groups):
        fitted = model().fit(table.x[train], table.y[train])
        if regression:
            pred[test] = np.asarray(fitted.predict(table.x[test])).reshape(len(test), -1)
        else:
            pred[test] = fitted.predict_proba(table.x[test])[:, 1]
    return pred
