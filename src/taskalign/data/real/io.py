"""Shared SimpleITK reading and resampling for the real-data layouts (DESIGN.md §5).

Every sequence and mask goes onto the T2w grid in physical space (SimpleITK resamples through
each image's origin, spacing and direction, so flipped or oblique orientations are handled):
linear interpolation for images, nearest neighbour for masks; voxels outside an image are 0.
Intensities keep their units. Arrays come out (D, H, W) = (z, y, x); ITK speaks (x, y, z), so
sizes and spacings are reversed at this boundary and nowhere else.
"""
from __future__ import annotations

import itertools
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from taskalign.data.case import SEQUENCES, Case
from taskalign.data.real.dicom import read_series
from taskalign.data.real.integrity import open_problem
from taskalign.data.real.masks import read_mask
from taskalign.data.real.problems import fail

GRID_TOL = 1e-3  # mm and direction-cosine tolerance for "the same grid"
MASK_NAMES = ("gland", "zones", "lesion")


def read_image(case_id: str, name: str, path: Path, dims: tuple[int, ...] = (3,),
               series: str | None = None) -> sitk.Image:
    """A single-component image of one of `dims` dimensions, from a file or a DICOM series folder
    (`series` chooses one of several, see `dicom`); CaseError (missing_file / unreadable_file /
    ambiguous_series / non_finite) naming the case, the file and what is wrong."""
    path = Path(path)
    if path.is_dir():
        image = read_series(case_id, name, path, series)
    elif not path.is_file():
        raise fail(case_id, path, "missing_file", f"{name} file {path} does not exist; fix the path or add the file")
    else:
        image = _read_file(case_id, name, path)
    if image.GetDimension() not in dims or image.GetNumberOfComponentsPerPixel() != 1:
        raise fail(case_id, path, "unreadable_file",
                   f"{name} file {path} must be a {'/'.join(map(str, dims))}-D single-channel image, got "
                   f"{image.GetDimension()}-D with {image.GetNumberOfComponentsPerPixel()} component(s)")
    _check_nifti_finite(case_id, name, path, image)
    return image


def _read_file(case_id: str, name: str, path: Path) -> sitk.Image:
    denied = open_problem(path)
    if denied:
        raise fail(case_id, path, "unreadable_file", f"{name} file {path} cannot be opened ({denied}); "
                   "give the user running taskalign read access")
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as err:
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else "no reason given"
        raise fail(case_id, path, "unreadable_file", f"{name} file {path} is unreadable: not an image SimpleITK "
                   f"reads, or truncated ({reason}); replace the file") from err


def _check_nifti_finite(case_id: str, name: str, path: Path, image: sitk.Image) -> None:
    """SimpleITK's NIfTI reader turns NaN voxels into 0, which would hide them; float NIfTI files
    are therefore also checked with nibabel (integer files cannot hold NaN or Inf)."""
    if not (path.name.endswith(".nii") or path.name.endswith(".nii.gz")):
        return
    if image.GetPixelID() not in (sitk.sitkFloat32, sitk.sitkFloat64):
        return
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError

    try:
        data = np.asarray(nib.load(str(path)).dataobj)
    except (EOFError, OSError, ValueError, zlib.error, ImageFileError) as err:
        raise fail(case_id, path, "unreadable_file", f"{name} file {path} is unreadable: truncated or corrupt "
                   f"({type(err).__name__}: {err}); replace the file") from err
    bad = int((~np.isfinite(data)).sum())
    if bad:
        raise fail(case_id, path, "non_finite", f"{name} file {path} has {bad} NaN/Inf voxel(s) of {data.size} "
                   "(SimpleITK would read them as 0); fix or drop the file")


def channel(image: sitk.Image, index: int) -> sitk.Image:
    """The 3-D volume `index` of a 4-D image (x, y, z, c)."""
    size = list(image.GetSize())
    size[3] = 0
    return sitk.Extract(image, size, [0, 0, 0, index])


def same_grid(a: sitk.Image, b: sitk.Image) -> bool:
    """True when two images share size, spacing, origin and direction."""
    return (a.GetSize() == b.GetSize()
            and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=GRID_TOL)
            and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=GRID_TOL)
            and np.allclose(a.GetDirection(), b.GetDirection(), atol=GRID_TOL))


def overlaps(image: sitk.Image, reference: sitk.Image) -> bool:
    """Whether `image`'s voxel box meets `reference`'s in physical space (corners of the moving
    box mapped into the reference's continuous index space, then a box test per axis)."""
    size = image.GetSize()
    corners = [image.TransformContinuousIndexToPhysicalPoint([s - 0.5 if bit else -0.5 for bit, s in zip(bits, size)])
               for bits in itertools.product((0, 1), repeat=3)]
    idx = np.array([reference.TransformPhysicalPointToContinuousIndex(p) for p in corners])
    lo, hi = idx.min(axis=0), idx.max(axis=0)
    ref_hi = np.array(reference.GetSize()) - 0.5
    return bool(np.all(hi > -0.5) and np.all(lo < ref_hi))


def on_grid(image: sitk.Image, reference: sitk.Image, is_mask: bool) -> np.ndarray:
    """(D, H, W) array of `image` on `reference`'s grid (resampled in physical space if needed)."""
    if not same_grid(image, reference):
        interp = sitk.sitkNearestNeighbor if is_mask else sitk.sitkLinear
        pixel = image.GetPixelID() if is_mask else sitk.sitkFloat32
        image = sitk.Resample(image, reference, sitk.Transform(), interp, 0.0, pixel)
    return sitk.GetArrayFromImage(image)


def grid_meta(reference: sitk.Image) -> dict[str, Any]:
    return {"origin_xyz": tuple(reference.GetOrigin()), "direction": tuple(reference.GetDirection())}


def assemble_case(case_id: str, images: dict[str, sitk.Image | None], masks: dict[str, sitk.Image],
                  files: dict[str, str], label: int | None = None, meta: dict | None = None) -> Case:
    """Put every image and mask on the T2w grid and build the Case. `images[seq] = None` marks a
    sequence the layout lacks: its channel is zero and it is listed in meta["absent_sequences"]."""
    reference = images["t2w"]
    for name, image in list(images.items()) + list(masks.items()):
        if image is not None and name != "t2w" and not overlaps(image, reference):
            raise fail(case_id, files.get(name, ""), "no_overlap",
                       f"{name} does not overlap the T2w grid in physical space (check origin/direction)")
    shape = tuple(reversed(reference.GetSize()))
    volumes = [np.zeros(shape, np.float32) if images.get(seq) is None
               else on_grid(images[seq], reference, is_mask=False).astype(np.float32) for seq in SEQUENCES]
    arrays, notes = {}, []
    for name, img in masks.items():
        arrays[name], note = read_mask(case_id, name, files.get(name, ""), on_grid(img, reference, is_mask=True))
        notes += [note] if note else []
    absent = tuple(seq for seq in SEQUENCES if images.get(seq) is None)
    meta = {**(meta or {}), **grid_meta(reference), "files": dict(files), "absent_sequences": absent,
            "read_notes": notes}
    spacing = tuple(float(s) for s in reversed(reference.GetSpacing()))  # ITK (x, y, z) -> (z, y, x)
    return Case(case_id=case_id, image=np.stack(volumes), spacing_mm=spacing, label=label, meta=meta, **arrays)


def to_sitk(array: np.ndarray, spacing_mm, origin_xyz=(0.0, 0.0, 0.0), direction=None) -> sitk.Image:
    """(D, H, W) array -> sitk image with (z, y, x) spacing and ITK origin / direction."""
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(float(s) for s in reversed(spacing_mm)))
    image.SetOrigin(tuple(float(o) for o in origin_xyz))
    if direction is not None:
        image.SetDirection(tuple(float(d) for d in direction))
    return image
