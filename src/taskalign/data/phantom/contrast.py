"""From tissue classes to MR signal: property maps with texture, focal findings, signal equations.

Property maps (PD, T1, T2, ADC, fat fraction) come from the tissue table; within a tissue, T2 and
ADC vary by smooth texture fields that are only partly shared (correlation about 0.5), so ADC is
not a function of T2w. Focal findings are blended in with their soft occupancy.

Signals (noise-free, before the scanner's gain):
- T2w fast spin echo: S = PD · exp(-TE/T2) · (1 - exp(-TR/T1)).
- DWI: S(b) = S0 · exp(-b · ADC), with S0 = PD · exp(-TE_dwi/T2) · (1 - exp(-TR_dwi/T1)) · (1 - fs · fat),
  fs the fat-saturation efficiency.
"""
from __future__ import annotations

import numpy as np

from taskalign.data.phantom.grid import RenderGrid
from taskalign.data.phantom.lesions import Finding
from taskalign.data.phantom.shapes import ellipsoid_radius, occupancy
from taskalign.data.phantom.tissues import PROPERTIES, PROPERTY_TABLE, Tissue

ADC_TO_MM2_S = 1e-6
TEX_SHARED = 0.5   # weight of the T2 texture in the ADC texture (the rest is independent)


def property_maps(tissue: np.ndarray, fields: dict[str, np.ndarray],
                  septum_share: float = 1.0) -> dict[str, np.ndarray]:
    """(Dr, H, W) float32 maps pd, t1_ms, t2_ms, adc, fat from the tissue classes, with texture.
    SEPTUM voxels hold `septum_share` septum and the rest fat (thin septa in coarse voxels)."""
    lut = {name: PROPERTY_TABLE[:, k] for k, name in enumerate(PROPERTIES)}
    maps = {name: lut[name][tissue] for name in ("pd", "t1_ms", "t2_ms", "adc", "fat")}
    if septum_share < 1.0:
        septa = tissue == Tissue.SEPTUM
        for name, m in maps.items():
            m[septa] = septum_share * m[septa] + (1.0 - septum_share) * lut[name][Tissue.FAT]
    tex, tex_adc, coarse, fine = fields["tex"], fields["tex_adc"], fields["coarse"], fields["fine"]
    maps["t2_ms"] *= 1.0 + lut["tex_t2"][tissue] * np.clip(0.5 * tex + 0.9 * fine + 0.4 * coarse, -2.2, 2.2)
    own = np.float32(np.sqrt(1.0 - TEX_SHARED**2))
    maps["adc"] *= 1.0 + lut["tex_adc"][tissue] * np.clip(TEX_SHARED * tex + own * tex_adc + 0.3 * coarse, -2.5, 2.5)
    return maps


def blend_findings(maps: dict[str, np.ndarray], findings: list[Finding], grid: RenderGrid, gland: np.ndarray,
                   fields: dict[str, np.ndarray]) -> tuple[np.ndarray, list[Finding]]:
    """Blend each finding's values into `maps` (in place) within the gland; return the render-grid
    lesion grade map (uint8, cancers only, voxels with occupancy >= 0.5) and the findings that
    the grid shows."""
    grade = np.zeros(grid.render_shape, dtype=np.uint8)
    shown = []
    for f in findings:
        reach = 1.3 * max(f.radii) + f.edge_mm
        win = grid.window(tuple(c - reach for c in f.center), tuple(c + reach for c in f.center))
        if win is None:
            continue
        r = ellipsoid_radius(f.center, f.radii, f.angle, *grid.coords(win)) * (1.0 - 0.1 * fields["shape_fine"][win])
        occ = occupancy(r, min(f.radii), f.edge_mm) * gland[win]
        if not (occ >= 0.5).any():
            continue
        shown.append(f)
        keep = 1.0 - occ
        view = {k: m[win] for k, m in maps.items()}
        view["pd"][...] = view["pd"] * keep + f.pd * occ
        view["t1_ms"][...] = view["t1_ms"] * keep + 1600.0 * occ
        view["fat"][...] *= keep
        view["t2_ms"][...] = view["t2_ms"] * keep + f.t2_ms * (1.0 + 0.06 * fields["tex"][win]) * occ
        view["adc"][...] = view["adc"] * keep + f.adc * (1.0 + 0.05 * fields["tex_adc"][win]) * occ
        if f.rim > 0:
            view["t2_ms"][...] *= 1.0 - f.rim * 4.0 * occ * keep  # dark pseudocapsule at the margin
        if f.kind == "cancer":
            g = grade[win]
            np.maximum(g, np.where(occ >= 0.5, np.uint8(f.grade), np.uint8(0)), out=g)
    return grade, shown


def t2w_signal(maps: dict[str, np.ndarray], te_ms: float, tr_ms: float) -> np.ndarray:
    """Fast-spin-echo T2w signal per unit gain, (Dr, H, W) float32."""
    return maps["pd"] * np.exp(-te_ms / maps["t2_ms"]) * (1.0 - np.exp(-tr_ms / maps["t1_ms"]))


def dwi_s0(maps: dict[str, np.ndarray], te_ms: float, tr_ms: float, fat_sat: float) -> np.ndarray:
    """Unweighted (b = 0) signal of the fat-saturated EPI DWI, per unit gain."""
    return t2w_signal(maps, te_ms, tr_ms) * (1.0 - fat_sat * maps["fat"])


def dwi_signal(s0: np.ndarray, adc: np.ndarray, b_s_mm2: float) -> np.ndarray:
    """S(b) = S0 · exp(-b · ADC), ADC in 10⁻⁶ mm²/s."""
    return s0 * np.exp(-(b_s_mm2 * ADC_TO_MM2_S) * adc)
