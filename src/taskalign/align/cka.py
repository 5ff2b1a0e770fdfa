"""Centered kernel alignment (Kornblith et al. 2019) between two feature sets of the same n samples.

    CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) · HSIC(L, L)),   K, L: (n, n) Gram matrices

Biased HSIC (Gretton et al. 2005):     HSIC_b(K, L) = tr(K H L H) / (n-1)²,  H = I - 11ᵀ/n.
Unbiased HSIC (Song et al. 2012, Eq. 5), with K̃, L̃ the Gram matrices with zeroed diagonal:

    HSIC_u(K, L) = 1/(n(n-3)) · [ tr(K̃ L̃) + (1ᵀK̃1)(1ᵀL̃1) / ((n-1)(n-2)) - 2/(n-2) · 1ᵀK̃L̃1 ]

"Debiased CKA" is CKA with HSIC_u; it needs n >= 4. Debiased linear CKA is the default.

Linear kernel, feature-space form (no n×n matrix; O(n d_x d_y)): with K = XXᵀ, L = YYᵀ,
a_i = ||x_i||², b_i = ||y_i||², u = X(Xᵀ1) - a = K̃1, v = Y(Yᵀ1) - b = L̃1,

    tr(K̃L̃) = ||XᵀY||_F² - Σ_i a_i b_i,   1ᵀK̃1 = Σ u,   1ᵀL̃1 = Σ v,   1ᵀK̃L̃1 = u·v,

and for the biased form, with centred X_c, Y_c: HSIC_b ∝ ||X_cᵀ Y_c||_F². Features are centred
and the arithmetic is float64 (both estimators are unchanged by a common shift of the rows).
"""
from __future__ import annotations

import math

import torch

from taskalign.align.features import as_features
from taskalign.align.kernels import Kernel, median_distance

CKA_KERNELS = ("linear", "rbf")


def _hsic_u_terms(tr_kl: torch.Tensor, sum_k: torch.Tensor, sum_l: torch.Tensor, k1_l1: torch.Tensor,
                  n: int) -> torch.Tensor:
    return (tr_kl + sum_k * sum_l / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * k1_l1) / (n * (n - 3))


def hsic_unbiased(k: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
    """Song et al. (2012) unbiased HSIC from two (n, n) Gram matrices (module docstring), n >= 4."""
    n = k.shape[0]
    _check_n(n, debiased=True)
    kt, lt = k.clone().fill_diagonal_(0.0), l.clone().fill_diagonal_(0.0)
    k1, l1 = kt.sum(1), lt.sum(1)
    return _hsic_u_terms((kt * lt).sum(), k1.sum(), l1.sum(), k1 @ l1, n)


def hsic_biased(k: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
    """tr(K H L H) / (n-1)² from two (n, n) Gram matrices."""
    n = k.shape[0]
    kc = k - k.mean(0, keepdim=True) - k.mean(1, keepdim=True) + k.mean()
    return (kc * l).sum() / (n - 1) ** 2


def _check_n(n: int, debiased: bool) -> None:
    need = 4 if debiased else 2
    if n < need:
        kind = "debiased (unbiased-HSIC) CKA" if debiased else "CKA"
        raise ValueError(f"{kind} needs at least {need} samples, got n={n}"
                         + ("; use debiased=False for 2 or 3 samples" if debiased and n >= 2 else ""))


def _ratio(hsic_xy: torch.Tensor, hsic_xx: torch.Tensor, hsic_yy: torch.Tensor) -> float:
    denom = float(hsic_xx) * float(hsic_yy)
    if not denom > 0.0:
        raise ValueError(f"CKA is undefined: self-similarity HSIC(X, X)={float(hsic_xx):.3g}, "
                         f"HSIC(Y, Y)={float(hsic_yy):.3g} (constant features, or too few samples "
                         "for the debiased estimator to be positive); check the inputs or use more samples")
    return float(hsic_xy) / math.sqrt(denom)


def _linear_hsic_u(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    n = x.shape[0]
    a, b = x.pow(2).sum(1), y.pow(2).sum(1)
    u, v = x @ x.sum(0) - a, y @ y.sum(0) - b
    tr_kl = (x.T @ y).pow(2).sum() - (a * b).sum()
    return _hsic_u_terms(tr_kl, u.sum(), v.sum(), u @ v, n)


def linear_cka(x, y, debiased: bool = True) -> float:
    """Linear CKA between x (n, d_x) and y (n, d_y), same n samples in the same order.

    Feature-space formulas (module docstring): no n×n matrix is formed."""
    x, y = _prepare(x, y)
    n = x.shape[0]
    _check_n(n, debiased)
    if debiased:
        return _ratio(_linear_hsic_u(x, y), _linear_hsic_u(x, x), _linear_hsic_u(y, y))
    cross = (x.T @ y).pow(2).sum()
    return _ratio(cross, (x.T @ x).pow(2).sum(), (y.T @ y).pow(2).sum())


def rbf_cka(x, y, debiased: bool = True, bandwidth_x: float | None = None, bandwidth_y: float | None = None) -> float:
    """RBF CKA: K_ij = exp(-||x_i - x_j||² / (2σ_x²)), likewise L with σ_y; each σ by the median
    heuristic on its own features (kernels.py convention) unless given. Forms n×n Gram matrices."""
    x, y = _prepare(x, y)
    _check_n(x.shape[0], debiased)
    kx = Kernel("rbf", (bandwidth_x or median_distance(x)[0],))
    ky = Kernel("rbf", (bandwidth_y or median_distance(y)[0],))
    k, l = kx(x), ky(y)
    hsic = hsic_unbiased if debiased else hsic_biased
    return _ratio(hsic(k, l), hsic(k, k), hsic(l, l))


def cka(x, y, kernel: str = "linear", debiased: bool = True) -> float:
    """CKA with kernel in {"linear", "rbf"}; debiased (Song et al. 2012 HSIC_u) by default."""
    if kernel == "linear":
        return linear_cka(x, y, debiased)
    if kernel == "rbf":
        return rbf_cka(x, y, debiased)
    raise ValueError(f"unknown CKA kernel {kernel!r}; choose one of {', '.join(CKA_KERNELS)}")


def _prepare(x, y) -> tuple[torch.Tensor, torch.Tensor]:
    """Two feature matrices of the same n rows (feature dims may differ) -> centred float64."""
    a, b = as_features(x, "x", torch.float64), as_features(y, "y", torch.float64)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"CKA compares two feature sets of the same samples: x has {a.shape[0]} rows, "
                         f"y has {b.shape[0]}")
    if a.device != b.device:
        raise ValueError(f"x is on {a.device} but y is on {b.device}; move both to one device")
    return a - a.mean(0), b - b.mean(0)
