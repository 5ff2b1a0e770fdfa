"""`phantom_case` and `make_cohort`: one seeded patient, rendered on any grid, and a cohort of them.

A case's random stream is `SeedSequence(seed, spawn_key=(cohort code, index))`, so the
downstream and pretraining cohorts never share a patient and the same (seed, cohort, index)
always gives the same patient. Patient draws (anatomy, findings, scanner, crop offset, texture
keys) come before anything that depends on the grid, so one patient seen on two grids is the
same anatomy; what depends on the grid is the noise realisation and texture finer than a voxel,
which is drawn at voxel scale rather than aliased.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import asdict

import numpy as np

from taskalign.data.case import Case
from taskalign.data.phantom.acquisition import acquire, draw_scanner, scanner_meta
from taskalign.data.phantom.anatomy import Anatomy, draw_anatomy
from taskalign.data.phantom.contrast import blend_findings, property_maps
from taskalign.data.phantom.grid import make_grid
from taskalign.data.phantom.labels import output_labels
from taskalign.data.phantom.lesions import Finding, draw_findings, pirads_of
from taskalign.data.phantom.noise import power_law_field, smooth_field
from taskalign.data.phantom.paint import paint_anatomy
from taskalign.data.phantom.texture import apply_textures

COHORTS = {"downstream": 0, "pretrain": 1, "probe": 2}  # probe: held-out frozen-probe cases, downstream scanners
CENTERS = ("gland", "pelvis")
CROP_JITTER_MM = (3.0, 4.0, 4.0)  # (z, y, x) random offset of the grid centre
FIELD_CELLS_MM = {                # correlation lengths (z, y, x) of the case's smooth fields
    "shape": (8.0, 8.0, 8.0),         # gland outline, rectal gas level
    "shape_fine": (4.0, 3.0, 3.0),    # lesion and nodule margins
    "septa": (8.0, 9.0, 9.0),         # fibrous septa in fat (zero crossings)
    "tex": (3.0, 1.5, 1.5),           # tissue texture (T2 and part of ADC), vesicle walls
    "fine": (3.0, 0.7, 0.7),          # fine T2 texture (glandular, stromal and fatty detail)
    "tex_adc": (3.0, 1.5, 1.5),       # ADC's own texture
    "coarse": (12.0, 10.0, 10.0),     # slow variation within tissues, TZ outline
}
EXTRA_FIELD_CELLS_MM = {          # fields added for issue 15; keys derived from the bias key, so the
    "septa_fine": (6.0, 4.0, 4.0),    # case's random stream (and so its labels) is unchanged
    "streak": (4.0, 10.0, 2.0),       # muscle fibres and their fat streaks (elongated along y)
    "nodule": (4.0, 5.0, 5.0),        # BPH nodules in the transition zone
}
POWER_LAW_MM = (16.0, 0.7)        # coarsest and finest octave of the power-law texture (fat, muscle, PZ)
POWER_LAW_HURST = 0.4
BIAS_CELL_MM = (80.0, 80.0, 80.0)
_BLAS = None


def _single_thread_blas():
    """The fields are small matrix products; threaded BLAS only adds contention on busy CPUs.
    (threadpoolctl comes with scikit-learn; without it the phantom still works, only slower.)"""
    global _BLAS
    if _BLAS is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            return nullcontext()
        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


def _resolvable(cell_mm, spacing_mm):
    """In-plane texture finer than the voxel is not resolved; sample it at voxel scale instead of aliasing."""
    return (cell_mm[0], max(cell_mm[1], spacing_mm[1]), max(cell_mm[2], spacing_mm[2]))


def _derived_keys(key: int, n: int) -> list[int]:
    """`n` field keys derived from one drawn key (no further draws from the case's stream)."""
    ss = np.random.SeedSequence(entropy=key % 2**62, spawn_key=(15,))
    return [int(k) for k in ss.generate_state(n, dtype=np.uint64) % np.uint64(2**62)]


def case_rng(seed: int, cohort: str, index: int) -> np.random.Generator:
    if cohort not in COHORTS:
        raise ValueError(f"cohort must be one of {sorted(COHORTS)}, got {cohort!r}")
    if index < 0 or seed < 0:
        raise ValueError(f"phantom index and seed must be >= 0, got index={index}, seed={seed}")
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(COHORTS[cohort], index)))


def draw_patient(rng: np.random.Generator) -> tuple[Anatomy, list[Finding]]:
    """The first draws of a case's stream: its anatomy and focal findings (no voxels)."""
    anatomy = draw_anatomy(rng)
    return anatomy, draw_findings(rng, anatomy.gland)


def describe_case(index: int, seed: int, cohort: str = "downstream") -> tuple[Anatomy, list[Finding]]:
    """Anatomy and findings of a case without rendering it (cheap: for picking cases)."""
    return draw_patient(case_rng(seed, cohort, index))


def _finding_meta(f: Finding, shown: list[Finding]) -> dict:
    out = {k: v for k, v in asdict(f).items() if k not in ("pd", "rim")}
    out.update(significant=f.significant, in_grid=f in shown)
    return out


def phantom_case(index: int, seed: int, cohort: str = "downstream", shape=(16, 48, 48),
                 spacing_mm=(3.0, 1.5, 1.5), center: str = "gland", oblique_deg: float = 0.0) -> Case:
    """One synthetic bpMRI exam: image (3, D, H, W) T2w / DWI b1400 / ADC, labels, meta.

    `shape` (D, H, W) voxels at `spacing_mm` (z, y, x), centred on the gland (with a few mm of
    random offset) or on the pelvis. `oblique_deg` tilts the slices about the left-right axis
    (positive: the anterior end of a slice moves cranially, as in an exam planned perpendicular to
    the rectal wall, which brings the bladder into mid-gland slices); 0 is true axial.
    Deterministic in (index, seed, cohort, shape, spacing_mm, oblique_deg).
    """
    if not -45.0 <= oblique_deg <= 45.0:
        raise ValueError(f"oblique_deg must be within [-45, 45] degrees, got {oblique_deg}")
    if center not in CENTERS:
        raise ValueError(f"center must be one of {CENTERS}, got {center!r}")
    with _single_thread_blas():
        rng = case_rng(seed, cohort, index)
        anatomy, findings = draw_patient(rng)
        scanner = draw_scanner(rng, cohort)
        offset = rng.uniform(-1.0, 1.0, 3) * CROP_JITTER_MM
        keys = [int(k) for k in rng.integers(0, 2**62, size=len(FIELD_CELLS_MM) + 1)]
        noise_rng = np.random.default_rng(int(rng.integers(0, 2**62)))
        origin = anatomy.gland.center if center == "gland" else (0.0, 0.0, 0.0)
        grid = make_grid(tuple(shape), tuple(spacing_mm), tuple(float(o + d) for o, d in zip(origin, offset)),
                         tilt_rad=float(np.deg2rad(oblique_deg)))
        fields = {name: smooth_field(k, grid.z_mm, grid.y_mm, grid.x_mm, _resolvable(cell, grid.spacing_mm))
                  for (name, cell), k in zip(FIELD_CELLS_MM.items(), keys)}
        extra_keys = _derived_keys(keys[-1], len(EXTRA_FIELD_CELLS_MM) + 1)
        fields.update({name: smooth_field(k, grid.z_mm, grid.y_mm, grid.x_mm, _resolvable(cell, grid.spacing_mm))
                       for (name, cell), k in zip(EXTRA_FIELD_CELLS_MM.items(), extra_keys)})
        fields["power_law"] = power_law_field(extra_keys[-1], grid.z_mm, grid.y_mm, grid.x_mm, POWER_LAW_MM[0],
                                              max(POWER_LAW_MM[1], min(grid.spacing_mm[1:])), POWER_LAW_HURST)
        painted = paint_anatomy(anatomy, grid, fields)
        maps = property_maps(painted.tissue, fields, painted.septum_share)
        apply_textures(maps, painted.tissue, anatomy.gland, grid, fields)
        grade, shown = blend_findings(maps, findings, grid, painted.gland, fields)
        z_out = grid.z_mm.reshape(grid.shape[0], grid.n_sub).mean(axis=1)
        bias = smooth_field(keys[-1], z_out, grid.y_mm, grid.x_mm, BIAS_CELL_MM)
        image = acquire(maps, grid, scanner, bias, noise_rng)
        labels = output_labels(grid, painted, grade)
    cancers = [f for f in findings if f.kind == "cancer"]
    meta = {
        "source": "phantom", "cohort": cohort, "index": index, "seed": seed,
        "scanner": scanner_meta(scanner), "air": labels.air, "lesion_values": "isup",
        "gland_volume_cc": anatomy.gland.volume_cc, "tz_fraction": anatomy.gland.tz_fraction,
        "grid_center_mm": tuple(float(c) for c in (z_out.mean(), grid.y_mm.mean(), grid.x_mm.mean())),
        "oblique_deg": float(oblique_deg),
        "lesions": [_finding_meta(f, shown) for f in cancers],
        "mimics": [_finding_meta(f, shown) for f in findings if f.kind != "cancer"],
    }
    return Case(case_id=f"phantom-{cohort}-{index:04d}", image=image, spacing_mm=grid.spacing_mm,
                gland=labels.gland, zones=labels.zones, lesion=labels.lesion,
                label=int((labels.lesion >= 2).any()), pirads=pirads_of(shown), body=labels.body, meta=meta)


def make_cohort(n: int, seed: int, cohort: str = "downstream", shape=(16, 48, 48),
                spacing_mm=(3.0, 1.5, 1.5)) -> list[Case]:
    """Cases 0..n-1 of a cohort (ids like `phantom-downstream-0007`)."""
    if n < 0:
        raise ValueError(f"cohort size must be >= 0, got {n}")
    return [phantom_case(i, seed, cohort, shape, spacing_mm) for i in range(n)]
