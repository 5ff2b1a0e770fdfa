"""Tissue texture beyond the per-tissue smooth fields: what a radiologist reads as tissue.

Multiplicative T2 (and partly ADC) modulations, each renormalised to mean 1 over its tissue so
the calibrated tissue means (and the lesion contrasts of `calibration.py`) do not move. Amplitudes
were set once against the real sample's GLCM contrast and power-spectrum slope in the gland
(`calibration.texture_stats`), not against any study result:
- fat: lobules with a power-law spectrum (`noise.power_law_field`);
- muscle: fibre striation (a field elongated along the fibres) and fine grain;
- peripheral zone: radial striation (dark lines of ducts and stroma fanning out from the
  urethra towards the capsule), on top of its heterogeneous bright background;
- transition zone: nodularity (BPH): glandular nodules brighter, stromal ones darker, with
  dark stromal bands and pseudocapsules between them.
"""
from __future__ import annotations

import numpy as np

from taskalign.data.phantom.anatomy import Gland
from taskalign.data.phantom.grid import RenderGrid
from taskalign.data.phantom.shapes import rotate
from taskalign.data.phantom.tissues import Tissue as T

FAT_LOBULE_AMP = 0.12     # fractional T2 variation of fat lobules
MUSCLE_STRIATION_AMP = 0.18
PZ_DUCTS = 22             # radial striae around the gland
PZ_STRIA_DEPTH = 0.5      # T2 drop on a stria
TZ_BAND_DEPTH = 0.5       # T2 drop on the stromal bands between nodules
TZ_NODULE_AMP = 0.25      # glandular (+) vs stromal (-) nodules
ADC_SHARE = 0.4           # share of the T2 modulation that the gland's ADC follows (glandular = higher)


def _renormalise(mult: np.ndarray, region: np.ndarray) -> None:
    if region.any():
        mult[region] /= np.float32(max(float(mult[region].mean()), 1e-3))


def pz_striation(g: Gland, z, y, x, wobble: np.ndarray) -> np.ndarray:
    """(…) in [0, 1]: 1 on a radial stria. Angle around the gland axis, bent by `wobble`."""
    u, v = rotate(y - g.center[1], x - g.center[2], g.angle)
    theta = np.arctan2(v, u)
    phase = PZ_DUCTS * theta + 2.5 * wobble
    return np.clip((np.cos(phase) - 0.55) / 0.45, 0.0, 1.0) ** 2


def tz_nodularity(nodule: np.ndarray) -> np.ndarray:
    """T2 multiplier from the nodule field: bands at its zero crossings, nodules either side."""
    band = np.clip(1.0 - np.abs(nodule) / 0.15, 0.0, 1.0)
    return (1.0 + TZ_NODULE_AMP * np.tanh(2.0 * nodule)) * (1.0 - TZ_BAND_DEPTH * band)


def apply_textures(maps: dict[str, np.ndarray], tissue: np.ndarray, g: Gland, grid: RenderGrid,
                   fields: dict[str, np.ndarray]) -> None:
    """Modulate `maps["t2_ms"]` and `maps["adc"]` in place (render grid, (Dr, H, W))."""
    mult = np.ones(tissue.shape, dtype=np.float32)
    fat = tissue == T.FAT
    mult[fat] = 1.0 + FAT_LOBULE_AMP * np.clip(fields["power_law"][fat], -2.5, 2.5)
    muscle = tissue == T.MUSCLE
    mult[muscle] = 1.0 + MUSCLE_STRIATION_AMP * np.clip(0.8 * fields["streak"][muscle]
                                                        + 0.6 * fields["power_law"][muscle], -2.5, 2.5)
    reach = 1.15 * max(g.half_width, g.half_anterior, g.half_posterior)
    win = grid.window((g.apex_z, g.center[1] - reach, g.center[2] - reach),
                      (g.base_z, g.center[1] + reach, g.center[2] + reach))
    if win is not None:
        z, y, x = grid.coords(win)
        t, m = tissue[win], mult[win]
        pz, tz = t == T.PZ, t == T.TZ
        stria = np.broadcast_to(pz_striation(g, z, y, x, fields["shape_fine"][win]), t.shape)
        m[pz] = (1.0 - PZ_STRIA_DEPTH * stria[pz]) * (1.0 + 0.2 * fields["power_law"][win][pz])
        m[tz] = tz_nodularity(fields["nodule"][win][tz]) * (1.0 + 0.15 * fields["power_law"][win][tz])
        _renormalise(m, pz)
        _renormalise(m, tz)
        adc = maps["adc"][win]
        gl = pz | tz
        adc[gl] *= 1.0 + ADC_SHARE * (m[gl] - 1.0)
    _renormalise(mult, fat)
    _renormalise(mult, muscle)
    maps["t2_ms"] *= mult
