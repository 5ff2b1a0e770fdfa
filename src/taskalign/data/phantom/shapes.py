"""Implicit shapes: a normalised radius r per point (r < 1 inside, r = 1 on the surface).

Functions take broadcastable z, y, x arrays in patient mm: window coordinates from
`RenderGrid.coords` ((nz,1,1), (1,ny,1), (1,1,nx)) when rendering, or flat (N,) arrays when
sampling points (e.g. where to put a lesion), so one definition serves both.
"""
from __future__ import annotations

import numpy as np

from taskalign.data.phantom.anatomy import Gland


def rotate(dy: np.ndarray, dx: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """In-plane offsets -> (u, v) along the rotated x and y axes."""
    c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    return c * dx + s * dy, c * dy - s * dx


def taper(t: np.ndarray, q_base: float, q_apex: float) -> np.ndarray:
    """Gland cross-section scale along its axis, t in [-1 apex, 1 base]; 0 outside."""
    q = np.where(t >= 0, np.float32(q_base), np.float32(q_apex))
    return np.clip(1.0 - np.abs(t) ** q, 0.0, None) ** (1.0 / q)


def gland_radius(g: Gland, z, y, x) -> tuple[np.ndarray, np.ndarray]:
    """(r, mm_per_r): the gland's normalised radius and, in-plane, the mm per unit of r along the
    ray from its axis (so (1 - r) * mm_per_r approximates the depth below the capsule).
    Anterior half is an ellipse; the posterior half a superellipse (exponent 3), flattened
    against the rectum."""
    f = np.maximum(taper((z - g.center[0]) / g.half_height, g.q_base, g.q_apex), 1e-3)
    u, v = rotate(y - g.center[1], x - g.center[2], g.angle)
    uu = np.abs(u) / (g.half_width * f)
    front = v < 0
    vv = np.abs(v) / (np.where(front, g.half_anterior, g.half_posterior) * f)
    r = np.where(front, np.sqrt(uu * uu + vv * vv), np.cbrt(uu**3 + vv**3))
    mm_per_r = np.sqrt(u * u + v * v) / np.maximum(r, 1e-6)
    return r.astype(np.float32), mm_per_r.astype(np.float32)


def ellipsoid_radius(center: tuple[float, float, float], radii: tuple[float, float, float], angle: float,
                     z, y, x) -> np.ndarray:
    """Normalised radius of an ellipsoid with semi-axes (rz, ry, rx), rotated in-plane by `angle`."""
    u, v = rotate(y - center[1], x - center[2], angle)
    w = (z - center[0]) / radii[0]
    return np.sqrt(w * w + (v / radii[1]) ** 2 + (u / radii[2]) ** 2).astype(np.float32)


def ellipse_radius(center_yx: tuple[float, float], half_yx: tuple[float, float], angle: float, y, x) -> np.ndarray:
    """Normalised radius of an in-plane ellipse (a prism along z)."""
    u, v = rotate(y - center_yx[0], x - center_yx[1], angle)
    return np.sqrt((v / half_yx[0]) ** 2 + (u / half_yx[1]) ** 2).astype(np.float32)


def occupancy(r: np.ndarray, mm_per_r: float | np.ndarray, edge_mm: float) -> np.ndarray:
    """Soft inside-ness in [0, 1]: 0.5 on the surface, ramping over `edge_mm` across it."""
    return np.clip(0.5 + (1.0 - r) * (mm_per_r / edge_mm), 0.0, 1.0).astype(np.float32)


def in_gland_zone(g: Gland, z, y, x, zone: str, margin: float = 0.0) -> np.ndarray:
    """Bool: points well inside the "pz" or "tz" of the nominal (unlobulated) gland, `margin` in r units."""
    r, _ = gland_radius(g, z, y, x)
    r_tz = ellipsoid_radius(g.tz_center, g.tz_radii, g.angle, z, y, x)
    t = (z - g.center[0]) / g.half_height
    inside = (r < 1.0 - margin) & (np.abs(t) < 0.7)  # lesions stay off the apex and base tips
    if zone == "tz":
        return inside & (r_tz < 1.0 - margin)
    if zone == "pz":
        return inside & (r_tz > 1.0 + margin)
    raise ValueError(f"zone must be 'pz' or 'tz', got {zone!r}")
