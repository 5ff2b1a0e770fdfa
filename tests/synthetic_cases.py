"""Small synthetic `Case`s for the task and degradation tests (independent of the phantom).

One axial geometry on every slice: an elliptic body, a gland in its middle (posterior crescent
= PZ, the rest TZ), a rectal air pocket behind the gland at the midline, and up to two
spherical lesions with ISUP grades. Contrasts follow DESIGN.md §4 loosely (T2w: PZ bright,
lesion dark; ADC in 10⁻⁶ mm²/s: PZ ~1800, TZ ~1200, lesion ~750; DWI = S0 exp(−b ADC)).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from taskalign.data.case import Case

SMOKE_SHAPE = (8, 32, 32)
SMOKE_SPACING = (4.0, 2.5, 2.5)


def _ellipse(shape: tuple[int, int, int], centre_yx: tuple[float, float], radii_yx: tuple[float, float]) -> np.ndarray:
    _, h, w = shape
    y, x = np.mgrid[:h, :w]
    inside = ((y - centre_yx[0]) / radii_yx[0]) ** 2 + ((x - centre_yx[1]) / radii_yx[1]) ** 2 <= 1.0
    return np.broadcast_to(inside, shape).copy()


def _sphere(shape: tuple[int, int, int], centre: tuple[float, float, float], radius: float) -> np.ndarray:
    z, y, x = np.indices(shape)
    return ((z - centre[0]) / max(radius / 2, 0.6)) ** 2 + ((y - centre[1]) / radius) ** 2 + (
        (x - centre[2]) / radius) ** 2 <= 1.0


def make_case(
    index: int = 0,
    lesion_grades: tuple[int, ...] = (3,),
    shape: tuple[int, int, int] = SMOKE_SHAPE,
    spacing_mm: tuple[float, float, float] = SMOKE_SPACING,
    air_in_meta: bool = True,
    label: int | None = None,
) -> Case:
    """A synthetic case; `index` seeds the texture. Lesion 0 sits in the PZ, lesion 1 in the TZ.
    label defaults to 1 if any lesion has grade >= 2, else 0."""
    rng = np.random.default_rng(index)
    d, h, w = shape
    body = _ellipse(shape, (h / 2, w / 2), (0.45 * h, 0.47 * w))
    gland = _ellipse(shape, (0.45 * h, w / 2), (0.18 * h, 0.2 * w))
    pz = gland & ~_ellipse(shape, (0.40 * h, w / 2), (0.16 * h, 0.2 * w))
    air = _ellipse(shape, (0.72 * h, w / 2), (0.07 * h, 0.1 * w))
    texture = ndimage.gaussian_filter(rng.standard_normal(shape), 1.5)
    t2w = np.where(body, 250.0, 0.0) + 40.0 * texture * body
    adc = np.where(body, 1400.0, 0.0) + 100.0 * ndimage.gaussian_filter(rng.standard_normal(shape), 1.5) * body
    t2w[gland], adc[gland] = 220.0, 1200.0
    t2w[pz], adc[pz] = 330.0, 1800.0
    lesion = np.zeros(shape, dtype=np.uint8)
    centres = [(d / 2, 0.58 * h, 0.42 * w), (d / 2, 0.40 * h, 0.56 * w)]
    for grade, centre in zip(lesion_grades, centres):
        sphere = _sphere(shape, centre, 0.08 * h) & gland
        lesion[sphere] = grade
        t2w[sphere], adc[sphere] = 150.0, 750.0
    t2w[air], adc[air] = 3.0, 0.0
    s0 = np.where(body, 300.0, 0.0)
    dwi = s0 * np.exp(-1.4e-3 * adc) * (adc > 0)
    image = np.stack([t2w, dwi, adc]).clip(min=0).astype(np.float32)
    if label is None:
        label = int(any(g >= 2 for g in lesion_grades))
    return Case(
        case_id=f"synthetic-{index:03d}",
        image=image,
        spacing_mm=spacing_mm,
        gland=gland.astype(np.uint8),
        zones=(gland.astype(np.uint8) + (gland & ~pz)).astype(np.uint8),
        lesion=lesion,
        label=label,
        body=body | air,
        meta={"air": air} if air_in_meta else {},
    )
