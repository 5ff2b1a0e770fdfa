"""Input checks shared by the transferability estimators: one place that turns bad arrays into
errors a person can act on (which argument, which shape, which row)."""
from __future__ import annotations

import numpy as np
import torch

from taskalign.align.features import as_features as align_features


def as_features(features, name: str = "features") -> np.ndarray:
    """(n >= 2, d) finite float64 features (the checks of `taskalign.align.features`), or ValueError."""
    x = align_features(features, name, dtype=torch.float64).cpu().numpy()
    if x.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 samples, got shape {x.shape}")
    return x


def as_classes(labels, n: int) -> np.ndarray:
    """(n,) class ids -> (n,) ints 0..C-1 (C >= 2), or ValueError (length, NaN, one class)."""
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be a 1-D array of class ids, got shape {y.shape}")
    if len(y) != n:
        raise ValueError(f"features have {n} rows but labels have {len(y)}; give one label per row")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError(f"labels have NaN or Inf at row {int(np.flatnonzero(~np.isfinite(y))[0])}")
    classes, ids = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"labels hold one class only ({classes[0]!r}); a transferability score needs >= 2 classes")
    return ids


def as_targets(targets, n: int) -> np.ndarray:
    """(n,) or (n, k) regression targets -> (n, k) finite float64, or ValueError."""
    y = np.asarray(targets, dtype=np.float64)
    y = y[:, None] if y.ndim == 1 else y
    if y.ndim != 2:
        raise ValueError(f"regression targets must be (n,) or (n, k), got shape {np.shape(targets)}")
    if len(y) != n:
        raise ValueError(f"features have {n} rows but targets have {len(y)}; give one target row per feature row")
    bad = ~np.isfinite(y).all(axis=1)
    if bad.any():
        raise ValueError(f"targets have NaN or Inf values in {int(bad.sum())} row(s), "
                         f"first row {int(np.flatnonzero(bad)[0])}")
    return y


def one_hot(ids: np.ndarray) -> np.ndarray:
    """(n,) ids 0..C-1 -> (n, C) float64 one-hot columns."""
    return np.eye(int(ids.max()) + 1)[ids]
