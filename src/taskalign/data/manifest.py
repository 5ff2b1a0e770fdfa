"""The manifest layout (DESIGN.md §5): a CSV with one row per case.

Columns `case_id, t2w, dwi, adc` (image paths relative to the CSV) and optional `gland, zones,
lesion` (mask paths) and `label` (0/1). Images are read with SimpleITK; DWI, ADC and masks whose
grid differs from the T2w grid are resampled onto it in physical space (linear for images,
nearest neighbour for masks). Intensities keep their units; arrays come out (D, H, W) = (z, y, x)
and `spacing_mm` in the same order.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from taskalign.data.case import SEQUENCES, Case

REQUIRED = ("case_id",) + SEQUENCES
MASKS = ("gland", "zones", "lesion")
_GRID_TOL = 1e-3  # mm / direction cosine tolerance for "same grid"


def _read(case_id: str, column: str, path: Path) -> sitk.Image:
    if not path.is_file():
        raise ValueError(f"case {case_id}: {column} file {path} does not exist; fix the path in the manifest")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as err:
        reason = str(err).strip().splitlines()[-1]
        raise ValueError(f"case {case_id}: {column} file {path} is unreadable ({reason})") from err
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(f"case {case_id}: {column} file {path} must be a 3D single-channel image, "
                         f"got {image.GetDimension()}D with {image.GetNumberOfComponentsPerPixel()} components")
    return image


def same_grid(a: sitk.Image, b: sitk.Image) -> bool:
    """True when two images share size, spacing, origin and direction."""
    return (a.GetSize() == b.GetSize()
            and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=_GRID_TOL)
            and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=_GRID_TOL)
            and np.allclose(a.GetDirection(), b.GetDirection(), atol=_GRID_TOL))


def on_grid(image: sitk.Image, reference: sitk.Image, is_mask: bool) -> np.ndarray:
    """(D, H, W) array of `image` on `reference`'s grid (resampled in physical space if needed)."""
    if not same_grid(image, reference):
        interp = sitk.sitkNearestNeighbor if is_mask else sitk.sitkLinear
        pixel = image.GetPixelID() if is_mask else sitk.sitkFloat32
        image = sitk.Resample(image, reference, sitk.Transform(), interp, 0.0, pixel)
    return sitk.GetArrayFromImage(image)


def _mask(case_id: str, column: str, array: np.ndarray) -> np.ndarray:
    values = np.unique(array)
    if values.min() < 0 or values.max() > 255 or not np.all(values == np.round(values)):
        raise ValueError(f"case {case_id}: {column} mask must hold small non-negative integers (0-255), "
                         f"got values {values[:10]}")
    out = array.astype(np.uint8)
    return (out > 0).astype(np.uint8) if column == "gland" else out


def _label(case_id: str, text: str) -> int | None:
    text = (text or "").strip()
    if text == "":
        return None
    if text not in ("0", "1"):
        raise ValueError(f"case {case_id}: label must be 0 or 1 (csPCa), got {text!r}")
    return int(text)


def read_case(row: dict[str, str], root: Path) -> Case:
    """One manifest row -> Case (image (3, D, H, W) float32 on the T2w grid)."""
    case_id = row["case_id"].strip()
    images = {seq: _read(case_id, seq, root / row[seq].strip()) for seq in SEQUENCES}
    reference = images["t2w"]
    volumes = [on_grid(images[seq], reference, is_mask=False).astype(np.float32) for seq in SEQUENCES]
    masks = {}
    for column in MASKS:
        if (row.get(column) or "").strip():
            image = _read(case_id, column, root / row[column].strip())
            masks[column] = _mask(case_id, column, on_grid(image, reference, is_mask=True))
    spacing = tuple(float(s) for s in reversed(reference.GetSpacing()))  # ITK (x, y, z) -> (z, y, x)
    meta = {"source": "manifest", "t2w_path": str(root / row["t2w"].strip()),
            "origin_xyz": reference.GetOrigin(), "direction": reference.GetDirection()}
    return Case(case_id=case_id, image=np.stack(volumes), spacing_mm=spacing,
                label=_label(case_id, row.get("label", "")), meta=meta, **masks)


def read_manifest(csv_path: str | Path) -> list[Case]:
    """All cases of a manifest CSV; ValueError naming the case and file on any bad entry."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise ValueError(f"manifest {csv_path} does not exist")
    with csv_path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"manifest {csv_path} lacks columns {missing}; it needs {list(REQUIRED)}")
        rows = list(reader)
    seen: set[str] = set()
    for row in rows:
        case_id = (row["case_id"] or "").strip()
        if not case_id or case_id in seen:
            raise ValueError(f"manifest {csv_path}: case id {case_id!r} is empty or duplicated")
        seen.add(case_id)
    return [read_case(row, csv_path.parent) for row in rows]
