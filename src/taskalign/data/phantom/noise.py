"""Smooth random fields defined in millimetres, independent of the voxel grid.

A field is cubic B-spline value noise: random values sit on a lattice of `cell_mm` spacing in
patient space, drawn by hashing the integer lattice coordinates with a per-field key, and are
interpolated with separable cubic B-spline weights. Because lattice values depend only on
(key, lattice point), the same field seen on any grid (a 48² crop or a 256² slice) is the same
physical pattern; because the interpolation is separable on an axis-aligned grid, evaluating it
is three small matrix products instead of a per-voxel 64-tap sum.
"""
from __future__ import annotations

import numpy as np

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_PRIMES = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F), np.uint64(0x165667B19E3779F9))

# Std of B-spline-interpolated iid U(-1, 1) lattice values: sqrt(1/3 * c**3), with
# c = integral over one cell of the sum of squared cubic B-spline weights = 151/315.
_FIELD_STD = float(np.sqrt((1.0 / 3.0) * (151.0 / 315.0) ** 3))


def _splitmix64(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint64(30))
    h = h * _M1
    h = h ^ (h >> np.uint64(27))
    h = h * _M2
    return h ^ (h >> np.uint64(31))


def hash_uniform(key: int, iz: np.ndarray, iy: np.ndarray, ix: np.ndarray) -> np.ndarray:
    """U(-1, 1) value for every integer lattice point (broadcast of iz, iy, ix); pure function of key."""
    with np.errstate(over="ignore"):
        h = (iz.astype(np.int64).astype(np.uint64) * _PRIMES[0]) ^ (iy.astype(np.int64).astype(np.uint64) * _PRIMES[1])
        h = _splitmix64(h ^ (ix.astype(np.int64).astype(np.uint64) * _PRIMES[2]) ^ np.uint64(key & 0xFFFFFFFFFFFFFFFF))
        h = _splitmix64(h)
    return ((h >> np.uint64(11)).astype(np.float64) * 2.0**-52 - 1.0).astype(np.float32)


def bspline_weights(coords_mm: np.ndarray, cell_mm: float) -> tuple[np.ndarray, int]:
    """(n, L) cubic B-spline weight matrix from n coordinates to L lattice points, and the index of
    lattice column 0. Rows sum to 1."""
    u = np.asarray(coords_mm, dtype=np.float64) / cell_mm
    i0 = np.floor(u).astype(np.int64)
    f = u - i0
    taps = np.stack([(1 - f) ** 3, 3 * f**3 - 6 * f**2 + 4, -3 * f**3 + 3 * f**2 + 3 * f + 1, f**3], axis=1) / 6.0
    first = int(i0.min()) - 1
    cols = (i0 - first)[:, None] + np.arange(4)[None, :]  # (n, 4)
    weights = np.zeros((u.size, int(i0.max()) - first + 4), dtype=np.float32)
    np.put_along_axis(weights, cols, taps.astype(np.float32), axis=1)
    return weights, first


def smooth_field(key: int, z_mm: np.ndarray, y_mm: np.ndarray, x_mm: np.ndarray,
                 cell_mm: tuple[float, float, float]) -> np.ndarray:
    """(nz, ny, nx) float32 zero-mean, unit-std smooth noise on the grid z_mm × y_mm × x_mm.

    `cell_mm` = (cz, cy, cx) lattice spacing: the correlation length of the pattern per axis.
    """
    wz, fz = bspline_weights(z_mm, cell_mm[0])
    wy, fy = bspline_weights(y_mm, cell_mm[1])
    wx, fx = bspline_weights(x_mm, cell_mm[2])
    iz = np.arange(wz.shape[1])[:, None, None] + fz
    iy = np.arange(wy.shape[1])[None, :, None] + fy
    ix = np.arange(wx.shape[1])[None, None, :] + fx
    lattice = hash_uniform(key, iz, iy, ix)        # (Lz, Ly, Lx)
    field = lattice @ wx.T                         # (Lz, Ly, nx)
    field = wy @ field                             # (Lz, ny, nx)
    field = np.tensordot(wz, field, axes=(1, 0))   # (nz, ny, nx)
    return field * np.float32(1.0 / _FIELD_STD)


def power_law_field(key: int, z_mm: np.ndarray, y_mm: np.ndarray, x_mm: np.ndarray, coarsest_mm: float,
                    finest_mm: float, hurst: float, z_cell_mm: float = 3.0) -> np.ndarray:
    """(nz, ny, nx) zero-mean, unit-std noise with a power-law in-plane spectrum (fractional
    Brownian motion as a sum of octaves): octave k has cell coarsest_mm / 2**k and amplitude
    2**(-k * hurst), down to `finest_mm`. The radially averaged 2D power spectrum then falls about
    as f**-(2 * hurst + 2) between 1 / coarsest_mm and 1 / finest_mm, the form measured on
    tissue textures in MRI and CT (power-law "anatomical noise", slope about -2.5 to -3.5).
    """
    total, weight2, cell, k = None, 0.0, float(coarsest_mm), 0
    while cell >= finest_mm * 0.999 or k == 0:
        amp = 2.0 ** (-k * hurst)
        f = smooth_field(key + 7919 * k, z_mm, y_mm, x_mm, (max(z_cell_mm, min(cell, 3 * z_cell_mm)), cell, cell))
        total = f * np.float32(amp) if total is None else total + f * np.float32(amp)
        weight2 += amp * amp
        cell, k = cell / 2.0, k + 1
    return total * np.float32(1.0 / np.sqrt(weight2))
