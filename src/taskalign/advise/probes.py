"""Cross-validated probes on frozen features: a linear probe and a k-nearest-neighbour probe.

Both return out-of-fold predictions (`OutOfFold`): every row is predicted by a model fitted on
folds that hold none of its case's rows (folds grouped by case, stratified for classes), so an
interval over cases can resample the predictions without refitting (`bootstrap.py`).

    linear probe   standardised features, then L2 logistic regression (C = 0.1) for two classes,
                   scored by AUROC; or ridge (α = 10) for regression targets, scored by R²
                   (the model and fold rule of `taskalign.probe.probes.out_of_fold`, reused)
    kNN probe      standardised features, then the k nearest training rows (Euclidean, k = 5 or
                   fewer when a training fold is smaller), majority class scored by balanced
                   accuracy, or mean target scored by R² = mean over columns of 1 − SSE / SST
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from taskalign.advise.checks import as_classes, as_features, as_targets
from taskalign.probe.evaluate import score as probe_score
from taskalign.probe.probes import Table, out_of_fold

DEFAULT_FOLDS = 5
DEFAULT_K = 5


@dataclass(frozen=True)
class OutOfFold:
    """Out-of-fold predictions of one probe, and how they are scored."""

    metric: str               # "auroc", "balanced_accuracy" or "r2"
    y: np.ndarray             # (n,) class ids or (n, k) targets
    predictions: np.ndarray   # (n,) P(class 1) or class ids, or (n, k) values
    groups: np.ndarray        # (n,) case of each row

    def score_rows(self, rows: np.ndarray | None = None) -> float:
        """The probe's score on `rows` (all rows by default; repeats allowed, for a bootstrap)."""
        rows = np.arange(len(self.y)) if rows is None else rows
        if self.metric == "balanced_accuracy":
            return float(balanced_accuracy_score(self.y[rows], self.predictions[rows]))
        return probe_score(self.metric, self.y[rows], self.predictions[rows])

    @property
    def score(self) -> float:
        return self.score_rows()


def _inputs(features, labels, groups, regression: bool, folds: int):
    x = as_features(features)
    y = as_targets(labels, len(x)) if regression else as_classes(labels, len(x))
    g = np.arange(len(x)) if groups is None else np.asarray(groups)
    if g.shape != (len(x),):
        raise ValueError(f"groups must give one case per row: {len(x)} rows, groups of shape {g.shape}")
    n_cases = len(np.unique(g))
    if n_cases < 2:
        raise ValueError(f"a cross-validated probe needs rows from at least 2 cases, got {n_cases}")
    if folds < 2:
        raise ValueError(f"folds must be >= 2, got {folds}")
    folds = min(folds, n_cases)
    if not regression:     # every training fold must see every class: a class in c cases allows c folds
        cases_with = {int(c): len(np.unique(g[y == c])) for c in np.unique(y)}
        rarest = min(cases_with, key=cases_with.get)
        if cases_with[rarest] < 2:
            raise ValueError(f"class {rarest} occurs in {cases_with[rarest]} case only; folds grouped by case need "
                             "every class in at least 2 cases")
        folds = min(folds, cases_with[rarest])
    return x, y, g, folds


def linear_probe(features, labels, groups=None, regression: bool = False, folds: int = DEFAULT_FOLDS) -> OutOfFold:
    """Out-of-fold linear probe (module docstring) of features (n, d) for two classes or targets."""
    x, y, g, folds = _inputs(features, labels, groups, regression, folds)
    if not regression and y.max() > 1:
        raise ValueError(f"the linear probe scores two classes by AUROC; labels hold {y.max() + 1} classes "
                         "(use logme / h_score / knn_score for more)")
    pred = out_of_fold(Table(x, y, g), regression, folds)
    return OutOfFold("r2" if regression else "auroc", y, pred, g)


def _splits(x: np.ndarray, y: np.ndarray, g: np.ndarray, regression: bool, folds: int):
    k = min(folds, len(np.unique(g)))
    if regression:
        return GroupKFold(n_splits=k).split(x, y, g)
    return StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=0).split(x, y, g)


def knn_probe(features, labels, groups=None, regression: bool = False, k: int = DEFAULT_K,
              folds: int = DEFAULT_FOLDS) -> OutOfFold:
    """Out-of-fold kNN probe (module docstring) of features (n, d) for class ids or targets."""
    x, y, g, folds = _inputs(features, labels, groups, regression, folds)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    pred = np.zeros(y.shape, dtype=np.float64 if regression else np.int64)
    for train, test in _splits(x, y, g, regression, folds):
        neighbours = min(k, len(train))
        model = KNeighborsRegressor(neighbours) if regression else KNeighborsClassifier(neighbours)
        pred[test] = make_pipeline(StandardScaler(), model).fit(x[train], y[train]).predict(x[test])
    return OutOfFold("r2" if regression else "balanced_accuracy", y, pred, g)


def linear_probe_score(features, labels, groups=None, regression: bool = False, folds: int = DEFAULT_FOLDS) -> float:
    """Out-of-fold AUROC (two classes) or R² (regression) of the linear probe."""
    return linear_probe(features, labels, groups, regression, folds).score


def knn_score(features, labels, groups=None, regression: bool = False, k: int = DEFAULT_K,
              folds: int = DEFAULT_FOLDS) -> float:
    """Out-of-fold balanced accuracy (classes) or R² (regression) of the kNN probe."""
    return knn_probe(features, labels, groups, regression, k, folds).score
