"""The scanner: sequence timing, gains, resolution, bias field, Rician noise and the ADC fit.

Order of operations follows the physics: signals are averaged over the slice profile (thick
slices), blurred by the in-plane point-spread function (the DWI's coarser EPI matrix blurs more),
multiplied by the receive-coil bias field (the same field for every sequence, so ADC, a ratio of
DWIs, does not see it), scaled by the scanner's gain and given complex Gaussian noise whose
magnitude is Rician. DWI noise is spatially correlated by the same PSF. The ADC map is fitted
from the noisy low- and mid-b images as the scanner does, ln(S_low / S_mid) / (b_mid - b_low),
and set to 0 where the low-b signal is below the scanner's threshold (fat, air, muscle), as on
PI-CAI maps; most scanners blank the high-b DWI with the same mask. The high-b DWI is its own
noisy acquisition.

Cohorts see different scanners: the downstream cohort two 3 T systems, the pretraining cohort a
1.5 T system and a third 3 T system with other timing, gain, noise and resolution.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy.ndimage import gaussian_filter

from taskalign.data.phantom.contrast import dwi_s0, dwi_signal, t2w_signal
from taskalign.data.phantom.grid import RenderGrid

FWHM_TO_SIGMA = 1.0 / 2.3548
ADC_MAX = 4000.0


@dataclass(frozen=True)
class Scanner:
    name: str
    field_t: float
    te_t2_ms: float
    tr_t2_ms: float
    te_dwi_ms: float
    tr_dwi_ms: float
    gain_t2: float
    gain_dwi: float
    noise_t2: float      # std of each complex noise component, in output units
    noise_dwi: float
    bias: float          # strength of the multiplicative coil bias (log scale)
    psf_t2_mm: float     # in-plane FWHM
    psf_dwi_mm: float
    fat_sat: float
    mask_level: float    # ADC (and DWI when mask_dwi) set to 0 where low-b signal < mask_level · gain_dwi
    mask_dwi: bool
    b_low: float = 50.0
    b_mid: float = 800.0
    b_high: float = 1400.0

    @property
    def t1_scale(self) -> float:  # T1 is shorter at lower field
        return 1.0 if self.field_t >= 3.0 else 0.8


SCANNERS: dict[str, tuple[Scanner, ...]] = {
    "downstream": (
        Scanner("3T-A", 3.0, 104, 4000, 66, 4500, 670, 250, 15.0, 1.0, 0.15, 0.6, 2.8, 0.985, 0.145, True),
        Scanner("3T-B", 3.0, 118, 5200, 60, 5000, 790, 205, 18.0, 0.9, 0.20, 0.7, 3.2, 0.98, 0.16, True),
    ),
    "pretrain": (
        Scanner("1.5T-C", 1.5, 96, 3600, 82, 4000, 520, 240, 16.0, 1.6, 0.30, 0.8, 4.0, 0.96, 0.12, False),
        Scanner("3T-D", 3.0, 125, 6000, 62, 4200, 1100, 420, 20.0, 1.4, 0.25, 0.6, 3.0, 0.985, 0.16, True),
    ),
}
SCANNERS["probe"] = SCANNERS["downstream"]  # frozen-probe cohort: new patients, the downstream scanners


def draw_scanner(rng: np.random.Generator, cohort: str) -> Scanner:
    """One of the cohort's scanners with per-exam jitter of gain and noise (coil loading, shimming)."""
    if cohort not in SCANNERS:
        raise ValueError(f"cohort must be one of {sorted(SCANNERS)}, got {cohort!r}")
    pool = SCANNERS[cohort]
    s = pool[int(rng.integers(len(pool)))]
    j = rng.uniform(0.85, 1.15, size=4)
    return replace(s, gain_t2=s.gain_t2 * j[0], gain_dwi=s.gain_dwi * j[1],
                   noise_t2=s.noise_t2 * j[2], noise_dwi=s.noise_dwi * j[3])


def scanner_meta(s: Scanner) -> dict:
    return asdict(s)


def _psf(volume: np.ndarray, fwhm_mm: float, spacing_mm) -> np.ndarray:
    sigma = (0.0, fwhm_mm * FWHM_TO_SIGMA / spacing_mm[1], fwhm_mm * FWHM_TO_SIGMA / spacing_mm[2])
    return gaussian_filter(volume, sigma, mode="nearest", truncate=3.0)


def _rician(rng: np.random.Generator, signal: np.ndarray, sigma: float, fwhm_mm: float | None,
            spacing_mm) -> np.ndarray:
    """|signal + n_re + i·n_im|, noise std `sigma` per voxel, correlated by the PSF when given."""
    noise = rng.standard_normal((2, *signal.shape), dtype=np.float32)
    if fwhm_mm is not None:
        noise = np.stack([_psf(n, fwhm_mm, spacing_mm) for n in noise])
        noise /= max(float(noise.std()), 1e-6)
    noise *= np.float32(sigma)
    return np.sqrt((signal + noise[0]) ** 2 + noise[1] ** 2)


def acquire(maps: dict[str, np.ndarray], grid: RenderGrid, s: Scanner, bias_field: np.ndarray,
            rng: np.random.Generator) -> np.ndarray:
    """(3, D, H, W) float32 T2w, DWI (b_high), ADC (10⁻⁶ mm²/s) from render-grid property maps.

    `bias_field` is (D, H, W), unit mean log-scale smooth noise; it enters as exp(bias · field).
    """
    spacing = grid.spacing_mm
    te_t2, tr_t2 = s.te_t2_ms, s.tr_t2_ms / s.t1_scale
    coil = np.exp(np.float32(s.bias) * bias_field)
    t2w = _psf(grid.to_slices(t2w_signal(maps, te_t2, tr_t2)), s.psf_t2_mm, spacing) * coil * s.gain_t2
    s0 = dwi_s0(maps, s.te_dwi_ms, s.tr_dwi_ms / s.t1_scale, s.fat_sat)
    dwis = []
    for b in (s.b_low, s.b_mid, s.b_high):
        clean = _psf(grid.to_slices(dwi_signal(s0, maps["adc"], b)), s.psf_dwi_mm, spacing) * coil * s.gain_dwi
        dwis.append(_rician(rng, clean, s.noise_dwi, s.psf_dwi_mm, spacing))
    t2w = _rician(rng, t2w, s.noise_t2, None, spacing)
    low, mid, high = dwis
    adc = np.log(np.maximum(low, 1e-3) / np.maximum(mid, 1e-3)) / ((s.b_mid - s.b_low) * 1e-6)
    signal = low >= s.mask_level * s.gain_dwi
    adc = np.where(signal, np.clip(adc, 0.0, ADC_MAX), 0.0)
    if s.mask_dwi:
        high = np.where(signal, high, 0.0)
    return np.stack([t2w, high, adc]).astype(np.float32)
