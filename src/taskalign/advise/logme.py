"""LogME: the maximum evidence of a Bayesian linear model on frozen features (You et al. 2021,
"LogME: Practical Assessment of Pre-trained Models for Transfer Learning", ICML).

For features F (n, d) and one target column y (n,), the model is y = F w + ε with prior
w ~ N(0, α⁻¹ I_d) and noise ε ~ N(0, β⁻¹ I_n). Its log evidence (the paper's Eq. 2) is

    L(α, β) = n/2 log β + d/2 log α − n/2 log 2π − β/2 ||F m − y||² − α/2 mᵀm − 1/2 log |A|,
    A = α I_d + β FᵀF,   m = β A⁻¹ Fᵀ y.

With the thin SVD F = U diag(s) Vᵀ (k = min(n, d) singular values, zeros included), z = Uᵀ y:
    log |A|     = Σ_i log(α + β s_i²) + (d − k) log α
    mᵀm         = Σ_i (β s_i z_i / (α + β s_i²))²
    ||F m − y||² = Σ_i (α z_i / (α + β s_i²))² + ||y||² − ||z||²,
so n < d and d < n cost one SVD each. α, β are maximised by the paper's fixed point (its Alg. 1):
    γ = Σ_i β s_i² / (α + β s_i²),   α ← γ / mᵀm,   β ← (n − γ) / ||F m − y||².
LogME = max L / n, averaged over target columns (one-hot columns of the classes for
classification; the target columns for regression). Larger is better.
"""
from __future__ import annotations

import math

import numpy as np

from taskalign.advise.checks import as_classes, as_features, as_targets, one_hot

MAX_ITERATIONS = 100
TOLERANCE = 1e-5       # relative change of α and β that ends the fixed point


def _terms(s2: np.ndarray, z: np.ndarray, resid0: float, alpha: float, beta: float) -> tuple[float, float]:
    """(mᵀm, ||F m − y||²) at (α, β) from squared singular values s2 and z = Uᵀ y."""
    denom = alpha + beta * s2
    mtm = float(np.sum((beta * np.sqrt(s2) * z / denom) ** 2))
    err = float(np.sum((alpha * z / denom) ** 2)) + resid0
    return mtm, err


def _evidence(s2: np.ndarray, z: np.ndarray, resid0: float, n: int, d: int, alpha: float, beta: float) -> float:
    mtm, err = _terms(s2, z, resid0, alpha, beta)
    logdet = float(np.sum(np.log(alpha + beta * s2))) + (d - len(s2)) * math.log(alpha)
    return (n / 2 * math.log(beta) + d / 2 * math.log(alpha) - n / 2 * math.log(2 * math.pi)
            - beta / 2 * err - alpha / 2 * mtm - logdet / 2)


def _spectrum(features: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(s², Z = Uᵀ Y (k, c), ||y||² − ||z||² per column (c,)) from one thin SVD of F (n, d)."""
    u, s, _ = np.linalg.svd(features, full_matrices=False)     # (n, k), (k,)
    z = u.T @ targets                                            # (k, c)
    resid0 = np.maximum(np.sum(targets ** 2, axis=0) - np.sum(z ** 2, axis=0), 0.0)
    return s ** 2, z, resid0


def _fixed_point(s2: np.ndarray, z: np.ndarray, resid0: float, n: int, d: int) -> tuple[float, float, float]:
    """(max L / n, α, β) of one column by the fixed point of the module docstring."""
    alpha, beta = 1.0, 1.0
    for _ in range(MAX_ITERATIONS):
        gamma = float(np.sum(beta * s2 / (alpha + beta * s2)))
        mtm, err = _terms(s2, z, resid0, alpha, beta)
        # bounds keep a column that the features fit exactly (err → 0) or ignore (m → 0) finite
        new_alpha = min(max(gamma / max(mtm, 1e-300), 1e-12), 1e12)
        new_beta = min(max(max(n - gamma, 1e-12) / max(err, 1e-300), 1e-12), 1e12)
        done = abs(new_alpha - alpha) <= TOLERANCE * alpha and abs(new_beta - beta) <= TOLERANCE * beta
        alpha, beta = new_alpha, new_beta
        if done:
            break
    return _evidence(s2, z, resid0, n, d, alpha, beta) / n, alpha, beta


def _one_column(y, n: int) -> np.ndarray:
    y2 = as_targets(y, n)
    if y2.shape[1] != 1:
        raise ValueError(f"one target column (n,) expected, got shape {np.shape(y)}; `logme` averages over columns")
    return y2


def log_evidence(features, y, alpha: float, beta: float) -> float:
    """L(α, β) of one target column y (n,) on features (n, d): the total, not per sample."""
    f = as_features(features)
    s2, z, resid0 = _spectrum(f, _one_column(y, len(f)))
    return _evidence(s2, z[:, 0], float(resid0[0]), len(f), f.shape[1], alpha, beta)


def max_evidence(features, y) -> tuple[float, float, float]:
    """(max L / n, α, β) of one target column y (n,) on features (n, d)."""
    f = as_features(features)
    s2, z, resid0 = _spectrum(f, _one_column(y, len(f)))
    return _fixed_point(s2, z[:, 0], float(resid0[0]), len(f), f.shape[1])


def logme(features, labels, regression: bool = False) -> float:
    """LogME of features (n, d) for labels: class ids (n,) or, with `regression`, targets (n,) or
    (n, k). The mean over target columns of the maximum evidence per sample (module docstring)."""
    f = as_features(features)
    columns = as_targets(labels, len(f)) if regression else one_hot(as_classes(labels, len(f)))
    s2, z, resid0 = _spectrum(f, columns)
    n, d = f.shape
    return float(np.mean([_fixed_point(s2, z[:, j], float(resid0[j]), n, d)[0] for j in range(columns.shape[1])]))
