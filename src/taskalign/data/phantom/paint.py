"""Paint the anatomy as tissue classes on the render grid (later structures overwrite earlier).

Order: body outline (air outside, fat inside, fibrous septa in the fat at two scales), muscles,
bones, levator ani, bladder, seminal vesicles, fat streaks in muscle, vessels (venous plexus,
neurovascular bundles, obturator vessels), rectum, then the gland with capsule, zones, AFMS and urethra.
Each structure is evaluated only inside its bounding box, so a small crop around the gland never
pays for the femoral heads.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from taskalign.data.phantom.anatomy import Anatomy, Gland, Pelvis, Rectum
from taskalign.data.phantom.grid import RenderGrid
from taskalign.data.phantom.shapes import ellipse_radius, ellipsoid_radius, gland_radius, rotate
from taskalign.data.phantom.tissues import Tissue as T

BIG = 1e4  # mm; "unbounded" along an axis
CAPSULE_MM = 0.8
CORTEX_MM = 2.0
SEPTUM_MM = 0.5     # thickness of fibrous septa in fat
CUFF_MM = 10.0     # pelvic-floor muscle cuff outside the plexus
PLEXUS_MM = 1.5     # periprostatic venous plexus: within this depth outside the capsule
NVB_MM = 4.5        # radius of a neurovascular bundle
INTRAMUSCULAR_FAT = 1.6  # streak-field level above which a muscle voxel is a fat streak
WOBBLE = 0.06       # outline irregularity of muscles and organs (fraction of their radius)


@dataclass
class Painted:
    tissue: np.ndarray   # (Dr, H, W) uint8 Tissue values
    gland: np.ndarray    # (Dr, H, W) bool
    zones: np.ndarray    # (Dr, H, W) uint8 {0, 1 PZ, 2 TZ}
    gas: np.ndarray      # (Dr, H, W) bool, rectal air
    septum_share: float  # share of a SEPTUM voxel that is septum (the rest is fat): thin septa partial-volume


def septum_band(septa: np.ndarray, patches: np.ndarray, voxel_mm: float) -> tuple[np.ndarray, float]:
    """Septa are the zero crossings of a smooth field, in patches; the band is at least a voxel
    wide so lines do not break up, and a voxel wider than the septum holds only part of it."""
    widen = max(1.0, voxel_mm / SEPTUM_MM)
    return (np.abs(septa) < 0.05 * widen) & (patches > -0.3), 1.0 / widen


def _prism(tissue, grid: RenderGrid, z_range, center_yx, half_yx, angle, value, shell=None, shell_value=None,
           wobble: np.ndarray | None = None):
    """Paint an in-plane ellipse extruded over z_range; optional cortex-like shell of `shell` mm;
    `wobble` (the case's shape field) makes the outline irregular."""
    reach = max(half_yx) * (1.0 + 3 * WOBBLE)
    win = grid.window((z_range[0], center_yx[0] - reach, center_yx[1] - reach),
                      (z_range[1], center_yx[0] + reach, center_yx[1] + reach))
    if win is None:
        return
    _, y, x = grid.coords(win)
    view = tissue[win]
    r = np.broadcast_to(ellipse_radius(center_yx, half_yx, angle, y, x), view.shape)
    if wobble is not None:
        r = r * (1.0 - WOBBLE * wobble[win])
    if shell is None:
        view[r < 1.0] = value
        return
    view[r < 1.0] = shell_value
    view[r < 1.0 - shell / min(half_yx)] = value


def _sphere(tissue, grid, center, radius, value, shell, shell_value):
    win = grid.window(tuple(c - radius for c in center), tuple(c + radius for c in center))
    if win is None:
        return
    r = ellipsoid_radius(center, (radius,) * 3, 0.0, *grid.coords(win))
    view = tissue[win]
    view[r < 1.0] = shell_value
    view[r < 1.0 - shell / radius] = value


def _rod(tissue, grid, z_range, a_yx, b_yx, half_thick, value, shell=None, shell_value=None, wobble=None):
    """A prism whose in-plane section is an ellipse stretched from point a to point b."""
    a, b = np.asarray(a_yx, float), np.asarray(b_yx, float)
    mid, d = (a + b) / 2, b - a
    _prism(tissue, grid, z_range, tuple(mid), (half_thick, float(np.hypot(*d)) / 2 + half_thick),
           float(np.arctan2(d[0], d[1])), value, shell, shell_value, wobble)


def _hip_muscles(tissue, grid, center_yx, fields):
    """The muscle mass around a hip (glutei medius/minimus, iliopsoas, obturator externus), with
    fat planes between the muscles."""
    half = (70.0, 55.0)
    win = grid.window((-BIG, center_yx[0] - half[0], center_yx[1] - half[1]),
                      (BIG, center_yx[0] + half[0], center_yx[1] + half[1]))
    if win is None:
        return
    _, y, x = grid.coords(win)
    mass = ellipse_radius(center_yx, half, 0.0, y, x) * (1.0 - WOBBLE * fields["shape"][win]) < 1.0
    planes = np.abs(fields["septa"][win] - 0.8) < 0.08
    view = tissue[win]
    view[mass] = T.MUSCLE
    view[mass & planes] = T.FAT


def paint_pelvis(tissue: np.ndarray, p: Pelvis, gland: Gland, grid: RenderGrid, fields: dict[str, np.ndarray]) -> float:
    """Body outline, fat septa, muscles and bones, in place; returns the septum share of a septum voxel."""
    _, y, x = grid.coords((slice(None),) * 3)
    outside = np.broadcast_to(ellipse_radius((p.body_center_y, 0.0), p.body_half_axes, 0.0, y, x) >= 1.0,
                              tissue.shape)
    voxel_mm = float(np.mean(grid.spacing_mm[1:]))
    band, share = septum_band(fields["septa"], fields["coarse"], voxel_mm)
    # a finer mesh where the coarse one is sparse
    fine_band, _ = septum_band(fields["septa_fine"], -fields["coarse"], voxel_mm)
    tissue[band | fine_band] = T.SEPTUM
    tissue[outside] = T.AIR
    cz, wob = gland.center[0], fields["shape"]
    py, phy, phx = p.pubis
    ix, iy, ihy, ihx = p.ischium
    ob_y, ob_hy, ob_hx = p.obturator
    hx, hy, hz, hr = p.femoral_head
    for side in (-1.0, 1.0):
        g = p.gluteus
        _prism(tissue, grid, (-BIG, BIG), (g[1], side * g[0]), (g[2], g[3]), side * g[4], T.MUSCLE, wobble=wob)
        _hip_muscles(tissue, grid, (hy + 10.0, side * (hx + 5.0)), fields)
        _prism(tissue, grid, (cz - 45, cz + 30), (ob_y, side * p.obturator_x), (ob_hy, ob_hx), side * 0.08, T.MUSCLE,
               wobble=wob)
        _prism(tissue, grid, (cz - 45, cz + 25), (iy, side * ix), (ihy, ihx), 0.0, T.MARROW, CORTEX_MM, T.CORTEX, wob)
        _sphere(tissue, grid, (hz, hy, side * hx), hr, T.MARROW, CORTEX_MM, T.CORTEX)
        _rod(tissue, grid, (hz - 35, hz + 5), (hy, side * hx), (hy + 8.0, side * (hx + 45.0)), 0.6 * hr,
             T.MARROW, CORTEX_MM, T.CORTEX)  # femoral neck and greater trochanter
        _prism(tissue, grid, p.symphysis_z, (py, side * (phx + 2.0)), (phy, phx), 0.0, T.MARROW, CORTEX_MM, T.CORTEX)
        # inferior rami run back to the ischium below the gland's middle, superior rami out to the acetabulum above
        _rod(tissue, grid, (p.symphysis_z[0], cz - 6), (py, side * (2 * phx)), (iy - 0.7 * ihy, side * ix), 6.0,
             T.MARROW, CORTEX_MM, T.CORTEX)
        _rod(tissue, grid, (gland.base_z - 4, gland.base_z + 25), (py, side * phx),
             (ob_y - 0.9 * ob_hy, side * (p.obturator_x + 28.0)),
             6.0, T.MARROW, CORTEX_MM, T.CORTEX)
    _prism(tissue, grid, p.symphysis_z, (py, 0.0), (0.8 * phy, 2.5), 0.0, T.CARTILAGE)
    _prism(tissue, grid, (p.coccyx[1], cz + 60), (p.coccyx[0], 0.0), (6.0, 8.0), 0.0, T.MARROW, CORTEX_MM, T.CORTEX)
    return share


def paint_pelvic_floor(tissue: np.ndarray, p: Pelvis, gland: Gland, rectum: Rectum, grid: RenderGrid) -> None:
    """Levator ani: a muscular U-shaped sling behind and beside gland and rectum; and the
    anococcygeal raphe from the rectum back to the coccyx."""
    cy, half_y, half_x, thick, front = p.levator
    lo, hi = gland.apex_z - 25, gland.base_z
    win = grid.window((lo, front, rectum.center_x - half_x - 1), (hi, cy + half_y + 1, rectum.center_x + half_x + 1))
    if win is not None:
        z, y, x = grid.coords(win)
        narrow = 0.75 + 0.25 * np.clip((z - gland.apex_z + 15) / 25, 0, 1)  # the funnel narrows caudally
        u, v = (x - rectum.center_x) / (half_x * narrow), (y - cy) / half_y
        r_out = np.sqrt(u * u + v * v)
        u_in, v_in = (x - rectum.center_x) / (half_x * narrow - thick), (y - cy) / (half_y - thick)
        sling = (r_out < 1.0) & (u_in * u_in + v_in * v_in >= 1.0) & (y > front)  # open towards the pubis
        tissue[win][sling] = T.MUSCLE
    back = rectum.center_y + rectum.half_axes[0]
    _prism(tissue, grid, (lo, gland.center[0]), ((back + p.coccyx[0]) / 2, rectum.center_x),
           ((p.coccyx[0] - back) / 2, 1.2), 0.0, T.MUSCLE)


def paint_bladder_vesicles(tissue: np.ndarray, a: Anatomy, grid: RenderGrid, fields: dict[str, np.ndarray]) -> None:
    """Bladder (wall, urine) on the base; seminal vesicle lobes with convoluted walls behind it."""
    b, fine = a.bladder, fields["tex"]
    win = grid.window(tuple(c - 1.2 * r for c, r in zip(b.center, b.radii)),
                      tuple(c + 1.2 * r for c, r in zip(b.center, b.radii)))
    if win is not None:
        z, y, x = grid.coords(win)
        view = tissue[win]
        wobble = 1.0 - 0.3 * WOBBLE * fields["shape"][win]  # a filled bladder is smooth

        def radius(radii):  # superellipsoid, flat-bottomed (z exponent 4)
            w = ((z - b.center[0]) / radii[0]) ** 2
            q = ((y - b.center[1]) / radii[1]) ** 2 + ((x - b.center[2]) / radii[2]) ** 2
            return np.sqrt(np.sqrt(w * w + q * q)) * wobble

        view[radius(b.radii) < 1.0] = T.BLADDER_WALL
        view[radius(tuple(r - b.wall_mm for r in b.radii)) < 1.0] = T.URINE
    v = a.vesicles
    reach = max(v.half_axes)
    for side in (-1.0, 1.0):
        c = (v.center[0], v.center[1], v.center[2] + side * v.offset_x)
        win = grid.window((c[0] - reach, c[1] - reach, c[2] - reach), (c[0] + reach, c[1] + reach, c[2] + reach))
        if win is None:
            continue
        radii = (v.half_axes[0], v.half_axes[2], v.half_axes[1])
        lobe = ellipsoid_radius(c, radii, -side * v.angle, *grid.coords(win)) < 1.0
        view = tissue[win]
        view[lobe] = T.VESICLE
        view[lobe & (np.abs(fine[win]) < 0.3)] = T.CAPSULE  # convoluted tubular walls


def paint_rectum(tissue: np.ndarray, rc: Rectum, gland: Gland, grid: RenderGrid, shape_noise: np.ndarray) -> np.ndarray:
    """Wall, mucosa and lumen (air anteriorly, stool below); returns the (Dr, H, W) bool gas mask."""
    gas = np.zeros(tissue.shape, dtype=bool)
    hy, hx = rc.half_axes
    win = grid.window((-BIG, -BIG, rc.center_x - hx - 1), (BIG, BIG, rc.center_x + hx + 1))
    if win is None:
        return gas
    z, y, x = grid.coords(win)
    yc = rc.center_y + rc.curvature * (z - gland.center[0]) ** 2
    outer = np.clip(0.55 + 0.45 * (z - gland.apex_z + 15) / 15, 0.55, 1.0)   # anal canal is narrower
    lumen = np.clip((z - gland.apex_z + 12) / 15, 0.1, 1.0)                  # and closed
    dy, dx = y - yc, x - rc.center_x
    wobble = 1.0 - WOBBLE * shape_noise[win]

    def radius(shrink_mm, scale):
        ry, rx = (hy * outer - shrink_mm) * scale, (hx * outer - shrink_mm) * scale
        return np.sqrt((dy / ry) ** 2 + (dx / rx) ** 2) * wobble

    view = tissue[win]
    view[radius(0.0, 1.0) < 1.0] = T.RECTAL_WALL
    view[radius(rc.wall_mm, 1.0) < 1.0] = T.MUCOSA
    in_lumen = radius(rc.wall_mm + rc.mucosa_mm, lumen) < 1.0
    view[in_lumen] = T.STOOL
    depth = (hy * outer - rc.wall_mm - rc.mucosa_mm) * lumen
    level = -depth + 2.0 * depth * rc.gas_fraction + 1.5 * shape_noise[win]
    air = in_lumen & (dy < level) & (rc.gas_fraction > 0)
    view[air] = T.GAS
    gas[win] = air
    return gas


def paint_gland(tissue: np.ndarray, g: Gland, grid: RenderGrid, shape_noise: np.ndarray,
                coarse: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Capsule, PZ, TZ (nodular outline), AFMS and urethra; returns render-grid gland and zones."""
    gland = np.zeros(tissue.shape, dtype=bool)
    zones = np.zeros(tissue.shape, dtype=np.uint8)
    reach = 1.15 * max(g.half_width, g.half_anterior, g.half_posterior)
    win = grid.window((g.apex_z, g.center[1] - reach, g.center[2] - reach),
                      (g.base_z, g.center[1] + reach, g.center[2] + reach))
    if win is None:
        return gland, zones
    z, y, x = grid.coords(win)
    r, mm_per_r = gland_radius(g, z, y, x)
    r = r * (1.0 - 0.04 * shape_noise[win])
    inside = r < 1.0
    depth = (1.0 - r) * mm_per_r
    r_tz = ellipsoid_radius(g.tz_center, g.tz_radii, g.angle, z, y, x) * (1.0 - 0.07 * coarse[win])
    afms_center = (g.center[0] - 0.1 * g.half_height, g.center[1] - g.half_anterior, g.center[2])
    afms_radii = (0.8 * g.half_height, 2.2 * g.afms_depth * g.half_anterior, 0.45 * g.half_width)
    afms = inside & (ellipsoid_radius(afms_center, afms_radii, g.angle, z, y, x) < 1.0)
    tz = inside & ((r_tz < 1.0) | afms)
    urethra = inside & (((y - (g.center[1] - 0.2 * g.half_anterior)) ** 2 + (x - g.center[2]) ** 2) < 1.8**2)
    view = tissue[win]
    view[inside] = T.PZ
    view[tz] = T.TZ
    view[afms] = T.AFMS
    view[urethra] = T.URETHRA
    view[inside & (depth < CAPSULE_MM)] = T.CAPSULE
    gland[win] = inside
    zones[win] = np.where(tz, 2, np.where(inside, 1, 0)).astype(np.uint8)
    return gland, zones


def paint_vessels(tissue: np.ndarray, a: Anatomy, grid: RenderGrid, fields: dict[str, np.ndarray]) -> None:
    """Veins and arteries in the fat: the periprostatic venous plexus (serpiginous, anterolateral,
    within a few mm of the capsule), the neurovascular bundles (posterolateral, 5 and 7 o'clock),
    and the obturator vessels along the pelvic sidewall. Vessels are the zero crossings of a
    texture field, so they wind; they only replace fat. The pelvic-floor muscle cuff is laid in
    the same pass, between the plexus and the bundles (which may cross it), because it shares
    their gland-relative coordinates."""
    g, tex, fine = a.gland, fields["tex"], fields["fine"]
    # the window reaches past the cuff, so the cuff follows the gland instead of the window's edges
    reach = 1.15 * max(g.half_width, g.half_anterior, g.half_posterior) + PLEXUS_MM + max(NVB_MM, CUFF_MM) + 1.0
    win = grid.window((g.apex_z - 5, g.center[1] - reach, g.center[2] - reach),
                      (g.base_z + 5, g.center[1] + reach, g.center[2] + reach))
    if win is not None:
        z, y, x = grid.coords(win)
        r, mm_per_r = gland_radius(g, z, y, x)
        out_mm = (r - 1.0) * mm_per_r
        u, v = rotate(y - g.center[1], x - g.center[2], g.angle)
        view = tissue[win]
        fat = view == T.FAT
        plexus = fat & (out_mm > 0) & (out_mm < PLEXUS_MM) & (v < 0.3 * g.half_posterior) & (np.abs(tex[win]) < 0.3)
        view[plexus] = T.VEIN
        fascia = fat & (out_mm > 0) & (out_mm < PLEXUS_MM) & (np.abs(fine[win]) < 0.35)  # periprostatic fascia
        view[fascia & ~plexus] = T.SEPTUM
        # pelvic-floor cuff: levator ani and sphincter against the sides, back and apex of the gland
        cuff = (view == T.FAT) & (out_mm >= PLEXUS_MM) & (out_mm < PLEXUS_MM + CUFF_MM) & (v > -0.3 * g.half_anterior)
        view[cuff & (z < g.base_z)] = T.MUSCLE
        for side in (-1.0, 1.0):   # bundle centre: on the posterolateral surface, just outside it
            cu, cv = side * 0.75 * g.half_width, 0.62 * g.half_posterior
            d = np.sqrt((u - cu) ** 2 + (v - cv) ** 2)
            bundle = fat & (d < NVB_MM) & (out_mm > -0.5)
            view[bundle & (fine[win] > 0.7)] = T.FLOW_VOID
            view[bundle & (fine[win] < -0.5)] = T.VEIN
    p = a.pelvis
    ob_y, ob_hy, ob_hx = p.obturator
    for side in (-1.0, 1.0):
        cx = side * (p.obturator_x - ob_hx - 4.0)
        for dy, radius, kind in ((-0.45 * ob_hy, 2.5, T.FLOW_VOID), (-0.3 * ob_hy, 3.0, T.VEIN),
                                 (0.2 * ob_hy, 2.0, T.FLOW_VOID), (0.35 * ob_hy, 2.5, T.VEIN)):
            win = grid.window((g.apex_z - 10, ob_y + dy - radius - 2, cx - radius - 2),
                              (g.base_z + 20, ob_y + dy + radius + 2, cx + radius + 2))
            if win is None:
                continue
            _, y, x = grid.coords(win)
            wob = 1.0 + 0.5 * tex[win]   # the vessel meanders a little from slice to slice
            vessel = ((y - ob_y - dy) ** 2 + (x - cx) ** 2) < (radius * wob) ** 2
            view = tissue[win]
            view[vessel & (view == T.FAT)] = kind


def paint_anatomy(a: Anatomy, grid: RenderGrid, fields: dict[str, np.ndarray]) -> Painted:
    """All tissue classes of one patient on `grid`; `fields` are the case's smooth noise fields."""
    tissue = np.full(grid.render_shape, T.FAT, dtype=np.uint8)
    septum_share = paint_pelvis(tissue, a.pelvis, a.gland, grid, fields)
    paint_pelvic_floor(tissue, a.pelvis, a.gland, a.rectum, grid)
    paint_bladder_vesicles(tissue, a, grid, fields)
    tissue[(tissue == T.MUSCLE) & (fields["streak"] > INTRAMUSCULAR_FAT)] = T.FAT  # fat streaks between fascicles
    paint_vessels(tissue, a, grid, fields)
    gas = paint_rectum(tissue, a.rectum, a.gland, grid, fields["shape"])
    gland, zones = paint_gland(tissue, a.gland, grid, fields["shape"], fields["coarse"])
    gas &= tissue == T.GAS  # in case a later structure covered part of the lumen
    return Painted(tissue, gland, zones, gas, septum_share)
