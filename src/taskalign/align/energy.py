"""Energy distance: a two-sample distance with no bandwidth, so it cannot saturate (DESIGN.md §6).

Population form (Székely & Rizzo 2013), X ~ P, Y ~ Q independent, X′ an independent copy of X:

    E(P, Q) = 2 E‖X − Y‖ − E‖X − X′‖ − E‖Y − Y′‖  ≥ 0, = 0 iff P = Q.

It is MMD² with the distance-induced kernel k(a, b) = −‖a − b‖ (Sejdinovic et al. 2013), so the
estimators mirror `taskalign.align.estimators`:

  paired (x_i, y_i the same probe image i in two states, n ≥ 2): every expectation is taken
  over distinct images i ≠ j only, since ‖x_i − y_i‖ pairs an image with itself and is not a
  draw of independent X, Y:

    Ê = 1 / (n(n−1)) Σ_{i≠j} h_ij,
    h_ij = ‖x_i − y_j‖ + ‖x_j − y_i‖ − ‖x_i − x_j‖ − ‖y_i − y_j‖,

  an unbiased U-statistic of E; Ê = 0 exactly when x = y.

  unpaired (m, n ≥ 2):

    Ê = 2/(mn) Σ_{i,j} ‖x_i − y_j‖ − 1/(m(m−1)) Σ_{i≠j} ‖x_i − x_j‖ − 1/(n(n−1)) Σ_{i≠j} ‖y_i − y_j‖.

Both are in the features' units (a distance), invariant to a common translation and rotation of
the two samples, and grow without bound as the samples move apart.
"""
from __future__ import annotations

import torch

from taskalign.align.features import as_feature_pair, centred_pool
from taskalign.align.kernels import squared_distances
from taskalign.errors import InputError


def _distances(a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """(m, d), (n, d) -> (m, n) Euclidean distances in float64 (diagonal 0 when b is None)."""
    return squared_distances(a, b).sqrt_()


def energy_distance(x, y, paired: bool = True) -> float:
    """Energy distance between features x (m, d) and y (n, d), estimator by the module docstring.

    paired=True: row i of x and of y are one image in two states (m = n ≥ 2); cross terms only
    for i ≠ j. paired=False: two independent samples (m, n ≥ 2). Computed in float64 on the
    pooled sample centred at its mean (a common shift leaves every distance unchanged)."""
    a, b = as_feature_pair(x, y, ("x", "y"), dtype=torch.float64, paired=paired)
    m, n = a.shape[0], b.shape[0]
    if m < 2 or n < 2:
        raise InputError(f"energy distance needs at least 2 rows per sample, got {m} and {n}")
    z = centred_pool(a, b)
    a, b = z[:m], z[m:]
    daa, dbb, dab = _distances(a), _distances(b), _distances(a, b)   # (m, m), (n, n), (m, n)
    within = daa.sum().item() / (m * (m - 1)) + dbb.sum().item() / (n * (n - 1))
    if paired:
        across = 2.0 * (dab.sum() - dab.diagonal().sum()).item() / (n * (n - 1))
    else:
        across = 2.0 * dab.sum().item() / (m * n)
    return across - within
