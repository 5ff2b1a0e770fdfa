"""Focal findings in the gland (cancers and benign mimics) and the label rule.

The label rule (documented in docs/phantom.md):
- Every cancer focus has a volume V (cc) and an ADC (10⁻⁶ mm²/s) drawn from its aggressiveness.
- It is clinically significant (csPCa) when ADC < `ADC_CSPCA_MAX` (950) and V >= `VOLUME_CSPCA_MIN_CC`
  (0.5 cc). A significant focus gets an ISUP grade 2-5 from its ADC with noise (lower ADC ->
  higher grade); any other focus is ISUP 1 (insignificant but still drawn in the lesion mask).
- `lesion` voxels carry their focus's grade; the segmentation target is `lesion >= 2`.
- `label` = 1 exactly when the rendered grid holds a voxel with `lesion >= 2`.
- `pirads` is what a reader would score from the images (not from the hidden grade): 5 for
  ADC < 950 and diameter >= 15 mm, 4 for ADC < 950, 3 for ADC < 1100 or a suspicious-looking
  mimic, 2 for benign findings only, 1 for none.
Benign mimics keep the task honest: stromal BPH nodules in the TZ are dark on T2w like cancer but
not restricted on ADC; prostatitis bands in the PZ are dark on T2w with only mildly lowered ADC;
small low-ADC foci under 0.5 cc are bright on DWI yet insignificant.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from taskalign.data.phantom.anatomy import Gland
from taskalign.data.phantom.shapes import in_gland_zone

ADC_CSPCA_MAX = 950.0        # 10⁻⁶ mm²/s
VOLUME_CSPCA_MIN_CC = 0.5
CANCER_COUNT_P = (0.25, 0.40, 0.25, 0.10)  # P(0, 1, 2, 3 cancer foci)
PZ_SHARE = 0.7               # share of cancer foci in the peripheral zone
CANCER_T2_MS = {"pz": 68.0, "tz": 76.0}  # at ADC 600; TZ cancers are less hypointense than PZ cancers


@dataclass(frozen=True)
class Finding:
    kind: str                            # "cancer", "bph_stromal", "bph_glandular", "prostatitis"
    zone: str                            # "pz" or "tz"
    center: tuple[float, float, float]   # (z, y, x) mm
    radii: tuple[float, float, float]    # (z, y, x) semi-axes before rotation
    angle: float
    edge_mm: float                       # width of the soft margin (ill-defined = wide)
    pd: float
    t2_ms: float
    adc: float
    rim: float = 0.0                     # dark pseudocapsule strength (BPH nodules)
    volume_cc: float = 0.0
    grade: int = 0                       # ISUP 1-5 for cancer, 0 for benign findings

    @property
    def significant(self) -> bool:
        return self.grade >= 2

    @property
    def diameter_mm(self) -> float:
        return 2.0 * max(self.radii)


def is_significant(adc: float, volume_cc: float) -> bool:
    """The csPCa rule: restricted diffusion and a large enough focus."""
    return adc < ADC_CSPCA_MAX and volume_cc >= VOLUME_CSPCA_MIN_CC


def grade_from_adc(rng: np.random.Generator, adc: float, volume_cc: float) -> int:
    """ISUP 2-5 for a significant focus (lower ADC -> higher grade, with noise), else 1."""
    if not is_significant(adc, volume_cc):
        return 1
    score = (ADC_CSPCA_MAX - adc) / 350.0 + rng.normal(0.0, 0.12)
    return int(2 + np.clip(np.floor(4.0 * score), 0, 3))


def pirads_of(findings: list[Finding]) -> int:
    """PI-RADS-like 1-5 from what the images show (see module doc)."""
    score = 2 if findings else 1
    for f in findings:
        if f.kind == "cancer" and f.adc < ADC_CSPCA_MAX:
            score = max(score, 5 if f.diameter_mm >= 15.0 else 4)
        elif f.kind == "cancer" and f.adc < 1100.0:
            score = max(score, 3)
        elif f.kind == "bph_stromal" and f.adc < 1100.0:
            score = max(score, 3)
    return score


def sample_point(rng: np.random.Generator, g: Gland, zone: str,
                 margin: float = 0.15) -> tuple[float, float, float] | None:
    """A random point well inside `zone` of the gland, or None when the zone is too small to hold one."""
    n = 256
    z = g.center[0] + rng.uniform(-0.7, 0.7, n) * g.half_height
    y = g.center[1] + rng.uniform(-g.half_anterior, g.half_posterior, n) * 1.1
    x = g.center[2] + rng.uniform(-1.1, 1.1, n) * g.half_width
    ok = np.flatnonzero(in_gland_zone(g, z, y, x, zone, margin))
    return None if ok.size == 0 else (float(z[ok[0]]), float(y[ok[0]]), float(x[ok[0]]))


def _shape(rng: np.random.Generator, g: Gland, zone: str, center, volume_cc: float):
    """Semi-axes and angle: PZ foci lie along the capsule (crescentic), TZ foci are lenticular."""
    r_eq = (3.0 * volume_cc * 1000.0 / (4.0 * np.pi)) ** (1 / 3)
    if zone == "pz":
        polar = np.arctan2(center[1] - g.center[1], center[2] - g.center[2])
        return (r_eq * 0.99, r_eq * 0.75, r_eq * 1.35), float(polar + np.pi / 2)
    return (r_eq * 0.96, r_eq * 0.8, r_eq * 1.3), float(rng.uniform(0, np.pi))


def _ellipsoid_cc(radii) -> float:
    return float(4.0 / 3.0 * np.pi * np.prod(radii) / 1000.0)


def draw_cancer(rng: np.random.Generator, g: Gland) -> Finding | None:
    zone = "pz" if rng.random() < PZ_SHARE else "tz"
    center = sample_point(rng, g, zone)
    if center is None and zone == "tz":  # a TZ too small to hold the focus: put it in the PZ
        zone, center = "pz", sample_point(rng, g, "pz")
    if center is None:
        return None
    volume_cc = float(np.exp(rng.uniform(np.log(0.2), np.log(5.0))))
    aggressiveness = rng.random()
    adc = float(np.clip(1150.0 - 600.0 * aggressiveness + rng.normal(0, 40), 500, 1300))
    t2_ms = float(CANCER_T2_MS[zone] + 0.06 * (adc - 600.0) + rng.normal(0, 4))
    radii, angle = _shape(rng, g, zone, center, volume_cc)
    return Finding("cancer", zone, center, radii, angle, 1.0 if zone == "pz" else 1.6, 0.85, t2_ms, adc,
                   volume_cc=volume_cc, grade=grade_from_adc(rng, adc, volume_cc))


def draw_mimics(rng: np.random.Generator, g: Gland) -> list[Finding]:
    """BPH nodules in the TZ (more in larger glands) and prostatitis bands in the PZ."""
    out = []
    for _ in range(int(min(10, rng.poisson(1.5 + 8.0 * g.tz_fraction)))):
        center = sample_point(rng, g, "tz", margin=0.25)
        if center is None:
            break
        r = rng.uniform(2.5, 4.0 + 6.0 * g.tz_fraction)
        radii = tuple(float(r * s) for s in np.exp(rng.normal(0, 0.12, 3)))
        if rng.random() < 0.35:  # stromal: dark like cancer, but not restricted
            kind, pd, t2_ms, adc, rim = "bph_stromal", 0.8, rng.uniform(55, 75), rng.uniform(1050, 1300), 0.3
        else:
            kind, pd, t2_ms, adc, rim = "bph_glandular", 0.9, rng.uniform(130, 220), rng.uniform(1300, 1650), 0.5
        out.append(Finding(kind, "tz", center, radii, 0.0, 0.8, pd, t2_ms, adc, rim=rim,
                           volume_cc=_ellipsoid_cc(radii)))
    for _ in range(int(rng.choice(3, p=(0.5, 0.35, 0.15)))):
        center = sample_point(rng, g, "pz")
        if center is None:
            break
        polar = np.arctan2(center[1] - g.center[1], center[2] - g.center[2])
        radii = (rng.uniform(5, 10), rng.uniform(2, 3.5), rng.uniform(8, 14))
        out.append(Finding("prostatitis", "pz", center, radii, float(polar + np.pi / 2), 2.0, 0.9,
                           rng.uniform(90, 120), rng.uniform(1150, 1400), volume_cc=_ellipsoid_cc(radii)))
    return out


def draw_findings(rng: np.random.Generator, g: Gland) -> list[Finding]:
    """Mimics first, then cancers, in painting order (cancers on top, low grades under high)."""
    mimics = draw_mimics(rng, g)
    cancers = [c for c in (draw_cancer(rng, g) for _ in range(int(rng.choice(4, p=CANCER_COUNT_P)))) if c is not None]
    return mimics + sorted(cancers, key=lambda c: c.grade)
