"""A read case onto another grid: cropped around the gland (or the image centre) to a given size,
and optionally resampled to another spacing, in physical space with the T2w orientation kept.

`crop_case` keeps the voxel lattice (a voxel-exact crop, zero-padded where the crop leaves the
image); `resample_case` puts the case on a grid of `shape` voxels at `spacing_mm`, centred on the
gland centroid or the image centre, which is how a real folder meets a study's preset grid
(the encoders are built for the preset's shape and spacing). Images are interpolated linearly,
masks by nearest neighbour, intensities keep their units.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import SimpleITK as sitk

from taskalign.data.case import Case
from taskalign.data.real.io import MASK_NAMES, grid_meta, to_sitk

CENTERS = ("gland", "image")


def reference_image(case: Case) -> sitk.Image:
    """An empty sitk image carrying the case's grid (origin and direction from meta, identity and
    the origin 0 for cases that have none, e.g. the phantom)."""
    return to_sitk(np.zeros(case.shape, np.uint8), case.spacing_mm, case.meta.get("origin_xyz", (0.0, 0.0, 0.0)),
                   case.meta.get("direction"))


def centre_index(case: Case, center: str) -> np.ndarray:
    """Continuous ITK index (x, y, z) of the gland centroid, or of the image centre when asked or
    when the case has no (or an empty) gland mask."""
    if center not in CENTERS:
        raise ValueError(f"center must be one of {CENTERS}, got {center!r}")
    if center == "gland" and case.gland is not None and case.gland.any():
        zyx = np.argwhere(case.gland > 0).mean(axis=0)
    else:
        zyx = (np.array(case.shape, dtype=np.float64) - 1.0) / 2.0
    return zyx[::-1].copy()


def _target(case: Case, shape, spacing_mm, center: str, snap: bool) -> tuple[tuple, tuple, tuple]:
    ref = reference_image(case)
    size = np.array(shape[::-1], dtype=np.float64)           # (x, y, z)
    spacing = np.array(spacing_mm[::-1], dtype=np.float64)
    c_idx = centre_index(case, center)
    if snap:    # same spacing: start on a voxel of the source so the crop copies voxels exactly
        origin = ref.TransformContinuousIndexToPhysicalPoint(np.round(c_idx - (size - 1) / 2).tolist())
    else:
        direction = np.array(ref.GetDirection()).reshape(3, 3)
        centre = np.array(ref.TransformContinuousIndexToPhysicalPoint(c_idx.tolist()))
        origin = tuple(centre - direction @ (spacing * (size - 1) / 2))
    return tuple(int(s) for s in size), tuple(spacing.tolist()), tuple(origin)


def _resample(case: Case, size, spacing, origin) -> Case:
    direction = tuple(case.meta.get("direction") or np.eye(3).flatten().tolist())
    src_origin = case.meta.get("origin_xyz", (0.0, 0.0, 0.0))

    def put(array: np.ndarray, is_mask: bool) -> np.ndarray:
        image = to_sitk(array, case.spacing_mm, src_origin, direction)
        interp = sitk.sitkNearestNeighbor if is_mask else sitk.sitkLinear
        pixel = image.GetPixelID() if is_mask else sitk.sitkFloat32
        out = sitk.Resample(image, size, sitk.Transform(), interp, origin, spacing, direction, 0, pixel)
        return sitk.GetArrayFromImage(out)

    image = np.stack([put(np.ascontiguousarray(c, dtype=np.float32), False) for c in case.image])
    masks = {n: put(getattr(case, n), True).astype(np.uint8) for n in MASK_NAMES if getattr(case, n) is not None}
    body = put(case.body.astype(np.uint8), True).astype(bool) if case.body is not None else None
    target = to_sitk(np.zeros(tuple(reversed(size)), np.uint8), tuple(reversed(spacing)), origin, direction)
    meta = {**case.meta, **grid_meta(target), "regrid": {"shape": tuple(reversed(size)),
                                                         "spacing_mm": tuple(reversed(spacing))}}
    return dataclasses.replace(case, image=image.astype(np.float32), spacing_mm=tuple(reversed(spacing)),
                               body=body, meta=meta, **{n: masks.get(n) for n in MASK_NAMES})


def crop_case(case: Case, shape: tuple[int, int, int], center: str = "gland") -> Case:
    """(D, H, W) crop on the case's own voxel lattice around the gland centroid (or the image
    centre), zero-padded where it leaves the image."""
    size, spacing, origin = _target(case, tuple(shape), case.spacing_mm, center, snap=True)
    return _resample(case, size, spacing, origin)


def resample_case(case: Case, shape: tuple[int, int, int], spacing_mm: tuple[float, float, float],
                  center: str = "gland") -> Case:
    """The case on a grid of `shape` (D, H, W) voxels at `spacing_mm` (z, y, x), with the case's
    orientation, centred on the gland centroid (or the image centre)."""
    size, spacing, origin = _target(case, tuple(shape), tuple(spacing_mm), center, snap=False)
    return _resample(case, size, spacing, origin)
