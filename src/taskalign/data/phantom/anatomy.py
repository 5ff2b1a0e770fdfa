"""Random anatomy of one patient, as numbers in patient millimetres (no voxels here).

Frame: see `grid.py` (x patient-left, y posterior, z superior; origin = nominal gland centre).
Every structure is placed relative to the gland or to the bony pelvis, so the parts fit together
for any random draw: the rectum lies just behind the gland's posterior surface, the bladder sits
on the base, anterior and cranial, the seminal vesicles between bladder and rectum, the levator
ani slings around gland and rectum, the obturator internus and the bones lie laterally.
Typical sizes follow adult anatomy: gland 20-80 cc (about 50 × 33 × 40 mm at 35 cc), rectum
25-45 mm wide, femoral heads 44-52 mm across, centred about 90 mm from the midline.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

GLAND_VOLUME_CC = (20.0, 80.0)
_POSTERIOR_EXPONENT = 3.0  # superellipse exponent of the flattened posterior gland surface


@dataclass(frozen=True)
class Gland:
    center: tuple[float, float, float]  # (z, y, x) mm
    half_width: float                   # x semi-axis at the widest level
    half_anterior: float                # y semi-axis towards the pubis
    half_posterior: float               # y semi-axis towards the rectum (flattened surface)
    half_height: float                  # z semi-axis, apex to base
    angle: float                        # in-plane rotation, rad
    q_base: float                       # taper exponents: flat base (>2), pointed apex (<2)
    q_apex: float
    volume_cc: float                    # nominal volume the axes were scaled to
    tz_center: tuple[float, float, float]
    tz_radii: tuple[float, float, float]  # (z, y, x) semi-axes of the transition zone
    tz_fraction: float                  # target TZ share of the gland (grows with BPH)
    afms_depth: float                   # anterior fibromuscular stroma, fraction of the anterior semi-axis

    @property
    def apex_z(self) -> float:
        return self.center[0] - self.half_height

    @property
    def base_z(self) -> float:
        return self.center[0] + self.half_height


@dataclass(frozen=True)
class Pelvis:
    body_half_axes: tuple[float, float]     # (y, x) skin ellipse
    body_center_y: float
    obturator_x: float                      # |x| of the obturator internus centre
    obturator: tuple[float, float, float]   # (centre y, half y, half x)
    ischium: tuple[float, float, float, float]  # (|x|, centre y, half y, half x)
    femoral_head: tuple[float, float, float, float]  # (|x|, y, z, radius)
    pubis: tuple[float, float, float]       # (centre y, half y, half x) of each pubic body
    symphysis_z: tuple[float, float]        # z range of the pubic bodies
    coccyx: tuple[float, float]             # (y, z of the tip)
    gluteus: tuple[float, float, float, float, float]  # (|x|, y, half y, half x, angle)
    levator: tuple[float, float, float, float, float]  # (centre y, half y, half x, thickness, front y)


@dataclass(frozen=True)
class Rectum:
    center_x: float
    center_y: float          # at the gland's mid level
    half_axes: tuple[float, float]  # (y, x) outer wall
    wall_mm: float
    mucosa_mm: float
    gas_fraction: float      # share of the lumen's AP depth filled by air (anterior, non-dependent)
    stool_t2_ms: float
    curvature: float         # y shift per mm² of z distance from the gland centre (sacral curve)


@dataclass(frozen=True)
class Bladder:
    center: tuple[float, float, float]
    radii: tuple[float, float, float]
    wall_mm: float


@dataclass(frozen=True)
class Vesicles:
    center: tuple[float, float, float]  # of the pair; lobes at ±offset_x
    offset_x: float
    half_axes: tuple[float, float, float]  # (z, long, short)
    angle: float                           # lobe long axis from the x axis, rad


@dataclass(frozen=True)
class Anatomy:
    gland: Gland
    pelvis: Pelvis
    rectum: Rectum
    bladder: Bladder
    vesicles: Vesicles


def _taper_integral(q_base: float, q_apex: float) -> float:
    """∫_{-1}^{1} f(t)² dt for the gland's taper profile f (see shapes.taper)."""
    t = np.linspace(-1.0, 1.0, 4001)
    q = np.where(t >= 0, q_base, q_apex)
    f = np.clip(1.0 - np.abs(t) ** q, 0.0, None) ** (1.0 / q)
    return float(np.mean(f**2) * 2.0)


def _half_superellipse_area(p: float) -> float:
    """Area of the half superellipse |u|^p + |v|^p <= 1 (unit semi-axes)."""
    return 2.0 * math.gamma(1 + 1 / p) ** 2 / math.gamma(1 + 2 / p)


def draw_gland(rng: np.random.Generator) -> Gland:
    volume_cc = float(np.exp(rng.uniform(*np.log(GLAND_VOLUME_CC))))
    jitter = np.exp(rng.normal(0.0, 0.08, size=3))
    width, depth, height = 50.0 * jitter[0], 33.0 * jitter[1], 40.0 * jitter[2]
    split = rng.uniform(-0.08, 0.08)
    a, b_ant, b_post, h = width / 2, depth / 2 * (1 + split), depth / 2 * (1 - split), height / 2
    q_base, q_apex = rng.uniform(2.2, 3.0), rng.uniform(1.6, 2.0)
    area = a * (math.pi / 2 * b_ant + _half_superellipse_area(_POSTERIOR_EXPONENT) * b_post)
    shape_mm3 = h * _taper_integral(q_base, q_apex) * area
    s = (volume_cc * 1000.0 / shape_mm3) ** (1 / 3)
    a, b_ant, b_post, h = a * s, b_ant * s, b_post * s, h * s
    center = tuple(float(v) for v in np.clip(rng.normal(0.0, 2.5, size=3), -6, 6))
    grow = (math.log(volume_cc) - math.log(GLAND_VOLUME_CC[0])) / math.log(GLAND_VOLUME_CC[1] / GLAND_VOLUME_CC[0])
    tz_fraction = float(np.clip(0.25 + 0.45 * grow + rng.normal(0, 0.06), 0.15, 0.75))
    k = 1.18 * tz_fraction ** (1 / 3)
    tz_center = (center[0] + 0.25 * h, center[1] - 0.35 * b_ant, center[2])
    tz_radii = (h * k * 0.85, (b_ant + b_post) / 2 * k * 0.9, a * k * 0.92)
    return Gland(center, a, b_ant, b_post, h, float(rng.normal(0, 0.06)), q_base, q_apex, volume_cc,
                 tz_center, tz_radii, tz_fraction, float(rng.uniform(0.25, 0.4)))


def draw_pelvis(rng: np.random.Generator, gland: Gland, rectum: Rectum) -> Pelvis:
    cz, cy, cx = gland.center
    ox = max(rng.uniform(37, 43), gland.half_width + 13)
    ob = (rng.uniform(0, 10), rng.uniform(38, 46), rng.uniform(6, 8))
    isch_half_x = rng.uniform(9, 12)
    ischium = (ox + ob[2] + 1.5 + isch_half_x, rng.uniform(0, 10), rng.uniform(30, 38), isch_half_x)
    head = (ox + rng.uniform(50, 60), rng.uniform(-15, -5), rng.uniform(5, 20), rng.uniform(22, 26))
    pubis = (cy - gland.half_anterior - rng.uniform(30, 38), rng.uniform(8, 11), rng.uniform(10, 14))
    rect_back = rectum.center_y + rectum.half_axes[0]
    lev_front = cy - 0.6 * gland.half_anterior          # the sling is cut open in front of this line
    lev_back = rect_back + rng.uniform(2, 4)
    lev_cy = lev_front + 0.3 * (lev_back - lev_front)
    lev_thick = rng.uniform(5.0, 8.0)
    # the sling's inner surface lies against the gland's and the rectum's lateral surfaces
    lev_half_x = max(gland.half_width, rectum.half_axes[1]) + rng.uniform(0.0, 1.5) + lev_thick
    levator = (lev_cy, lev_back - lev_cy, lev_half_x, lev_thick, lev_front)
    body = (rng.uniform(100, 125), rng.uniform(150, 185))
    body_y = rng.uniform(5, 18)
    gluteus = (rng.uniform(70, 85), body_y + body[0] - rng.uniform(40, 50), rng.uniform(30, 38), rng.uniform(60, 75),
               rng.uniform(0.35, 0.6))
    return Pelvis(body, body_y, ox, ob, ischium, head, pubis,
                  (gland.apex_z - rng.uniform(15, 25), cz + rng.uniform(0, 8)),
                  (rect_back + rng.uniform(22, 32), cz - rng.uniform(5, 15)), gluteus, levator)


def draw_rectum(rng: np.random.Generator, gland: Gland) -> Rectum:
    half_y = rng.uniform(10, 16)
    half_x = half_y * rng.uniform(1.3, 1.9)
    front = gland.center[1] + gland.half_posterior * 1.05 + rng.uniform(0.5, 1.5)
    gas = 0.0 if rng.random() < 0.2 else rng.uniform(0.2, 0.95)
    return Rectum(gland.center[2] + rng.normal(0, 2), front + half_y, (half_y, half_x),
                  rng.uniform(2.5, 4.0), rng.uniform(1.0, 2.0), gas, rng.uniform(50, 150), rng.uniform(0.002, 0.006))


def draw_bladder(rng: np.random.Generator, gland: Gland, rectum: Rectum) -> Bladder:
    rx = rng.uniform(28, 50)
    ry, rz = rx * rng.uniform(0.65, 0.85), rx * rng.uniform(0.7, 0.9)
    cy = gland.center[1] - 0.3 * gland.half_anterior - ry * rng.uniform(0.35, 0.6)
    rect_front = rectum.center_y - rectum.half_axes[0]
    ry = min(ry, rect_front - 6 - cy)  # keep the bladder in front of the rectum
    # the flat floor rests on the base
    center = (gland.base_z + rz * rng.uniform(0.85, 1.0), cy, gland.center[2] + rng.normal(0, 3))
    return Bladder(center, (rz, ry, rx), rng.uniform(1.5, 3.0))


def draw_vesicles(rng: np.random.Generator, gland: Gland, rectum: Rectum) -> Vesicles:
    short = rng.uniform(4, 6)
    y = min(gland.center[1] + gland.half_posterior * rng.uniform(0.2, 0.5),
            rectum.center_y - rectum.half_axes[0] - short - 1)
    center = (gland.base_z + rng.uniform(3, 8), y, gland.center[2])
    half_axes = (rng.uniform(7, 10), rng.uniform(15, 22), short)
    return Vesicles(center, rng.uniform(12, 20), half_axes, rng.uniform(0.2, 0.5))


def draw_anatomy(rng: np.random.Generator) -> Anatomy:
    """One patient's anatomy; consumes a fixed sequence of draws from `rng`."""
    gland = draw_gland(rng)
    rectum = draw_rectum(rng, gland)
    pelvis = draw_pelvis(rng, gland, rectum)
    return Anatomy(gland, pelvis, rectum, draw_bladder(rng, gland, rectum), draw_vesicles(rng, gland, rectum))
