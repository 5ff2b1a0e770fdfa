"""H-score of frozen features for a classification target (Bao et al. 2019, "An
Information-Theoretic Approach to Transferability in Task Transfer Learning", ICIP, Def. 2):

    H(f) = tr( cov(f)⁺ cov(E[f | y]) ),

cov(f) the (d, d) covariance of the features over all samples, E[f | y] the mean feature of each
sample's class (so cov(E[f | y]) = Σ_c p_c (μ_c − μ)(μ_c − μ)ᵀ, the between-class covariance),
and ⁺ the Moore-Penrose pseudo-inverse (cov(f) is singular when n ≤ d or features are
collinear). Both covariances use 1/n. Larger is better; unchanged by adding a constant vector to
every feature and by renaming the classes. For n ≤ d the score grows with d (the pseudo-inverse
whitens directions seen by a handful of samples), so compare candidates at similar n / d.
"""
from __future__ import annotations

import numpy as np

from taskalign.advise.checks import as_classes, as_features

PINV_RCOND = 1e-10     # singular values below this fraction of the largest count as zero


def h_score(features, labels, rcond: float = PINV_RCOND) -> float:
    """H-score of features (n, d) for class ids labels (n,) (module docstring)."""
    f = as_features(features)
    ids = as_classes(labels, len(f))
    f = f - f.mean(axis=0)                                            # (n, d)
    counts = np.bincount(ids)
    means = np.zeros((len(counts), f.shape[1]))
    np.add.at(means, ids, f)
    g = (means / counts[:, None])[ids]                                # (n, d): E[f | y] per sample
    cov_f = f.T @ f / len(f)
    cov_g = g.T @ g / len(f)
    return float(np.trace(np.linalg.pinv(cov_f, rcond=rcond, hermitian=True) @ cov_g))
