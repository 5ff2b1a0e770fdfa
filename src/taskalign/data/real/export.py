"""Phantom cases written as a real folder in any of the three layouts (DESIGN.md §4, §5), so the
readers are tested on the same cases the study uses and a user sees what a valid folder holds.

Images are written as float32 (exact round trip), masks as uint8 (`export_dicom`: a manifest of
DICOM series folders, int16); the grid has the identity
direction (LPS axes) and its centre at the physical origin. The PI-CAI tree has no zones and the
MSD folder keeps only T2w, ADC and the zones: each layout holds what its real counterpart holds.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from taskalign.data.real.dicom import kept_locale
from taskalign.data.case import Case
from taskalign.data.real.folder import LAYOUTS
from taskalign.data.real.io import to_sitk
from taskalign.errors import InputError

PICAI_PATIENT0, PICAI_STUDY0 = 10000, 1000000


def grid_of(case: Case) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(origin_xyz, direction) for a case: its own (a read case) or centred, identity (phantom)."""
    if "origin_xyz" in case.meta:
        return tuple(case.meta["origin_xyz"]), tuple(case.meta["direction"])
    half = [(n - 1) * s / 2 for n, s in zip(reversed(case.shape), reversed(case.spacing_mm))]
    return tuple(-h for h in half), tuple(np.eye(3).flatten().tolist())


def write_volume(array: np.ndarray, case: Case, path: Path) -> None:
    origin, direction = grid_of(case)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(to_sitk(array, case.spacing_mm, origin, direction), str(path), useCompression=True)


def _images(case: Case, paths: dict[str, Path]) -> None:
    for name, path in paths.items():
        array = case.sequence(name) if name in ("t2w", "dwi", "adc") else getattr(case, name)
        if array is not None:
            write_volume(np.ascontiguousarray(array, np.float32 if name in ("t2w", "dwi", "adc") else np.uint8),
                         case, path)


def export_manifest(cases: list[Case], out: Path) -> Path:
    rows = []
    for case in cases:
        names = ("t2w", "dwi", "adc") + tuple(m for m in ("gland", "zones", "lesion") if getattr(case, m) is not None)
        rel = {n: f"cases/{case.case_id}/{n}.nii.gz" for n in names}
        _images(case, {n: out / p for n, p in rel.items()})
        rows.append({"case_id": case.case_id, **rel, "label": "" if case.label is None else str(case.label)})
    columns = ["case_id", "t2w", "dwi", "adc", "gland", "zones", "lesion", "label"]
    with (out / "cases.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    return out / "cases.csv"


def export_picai(cases: list[Case], out: Path) -> Path:
    sheet = []
    for i, case in enumerate(cases):
        pid, sid = PICAI_PATIENT0 + i, PICAI_STUDY0 + i
        stem = f"{pid}_{sid}"
        paths = {"t2w": f"images/{pid}/{stem}_t2w.mha", "dwi": f"images/{pid}/{stem}_hbv.mha",
                 "adc": f"images/{pid}/{stem}_adc.mha", "lesion": f"labels/{stem}.nii.gz", "gland": f"gland/{stem}.nii.gz"}
        _images(case, {n: out / p for n, p in paths.items()})
        isup = int(case.lesion.max()) if case.lesion is not None else 0
        sheet.append({"patient_id": pid, "study_id": sid, "case_ISUP": isup,
                      "case_csPCa": "" if case.label is None else ("YES" if case.label else "NO"),
                      "source_case": case.case_id})
    with (out / "marksheet.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, list(sheet[0]) if sheet else ["patient_id", "study_id", "case_csPCa"])
        writer.writeheader()
        writer.writerows(sheet)
    return out


def nifti_affine(case: Case) -> np.ndarray:
    """4×4 RAS affine of the case's grid (ITK is LPS: x and y flip sign)."""
    origin, direction = grid_of(case)
    lps_to_ras = np.diag([-1.0, -1.0, 1.0])
    affine = np.eye(4)
    affine[:3, :3] = lps_to_ras @ np.array(direction).reshape(3, 3) @ np.diag(list(reversed(case.spacing_mm)))
    affine[:3, 3] = lps_to_ras @ np.array(origin)
    return affine


def export_msd(cases: list[Case], out: Path) -> Path:
    import nibabel as nib

    (out / "imagesTr").mkdir(parents=True, exist_ok=True)
    (out / "labelsTr").mkdir(parents=True, exist_ok=True)
    training = []
    for i, case in enumerate(cases):
        name = f"prostate_{i:03d}.nii.gz"
        volumes = np.stack([case.sequence("t2w"), case.sequence("adc")], axis=-1)   # (D, H, W, 2)
        data = np.ascontiguousarray(volumes.transpose(2, 1, 0, 3), np.float32)       # (x, y, z, 2)
        nib.save(nib.Nifti1Image(data, nifti_affine(case)), str(out / "imagesTr" / name))
        entry = {"image": f"./imagesTr/{name}"}
        if case.zones is not None:
            zones = np.ascontiguousarray(case.zones.transpose(2, 1, 0), np.uint8)
            nib.save(nib.Nifti1Image(zones, nifti_affine(case)), str(out / "labelsTr" / name))
            entry["label"] = f"./labelsTr/{name}"
        training.append(entry)
    dataset = {"name": "taskalign phantom (MSD Task05 layout)", "modality": {"0": "T2", "1": "ADC"},
               "labels": {"0": "background", "1": "PZ", "2": "TZ"}, "numTraining": len(training),
               "training": training, "test": []}
    (out / "dataset.json").write_text(json.dumps(dataset, indent=2))
    return out


DICOM_ROOT = "1.2.826.0.1.3680043.2.1125.7"    # UID prefix of the exported phantom series


def write_dicom_series(array: np.ndarray, case: Case, folder: Path, description: str, uid: str) -> None:
    """(D, H, W) integer-valued volume -> one DICOM file per slice (int16) in `folder`, with the
    case's spacing, origin and direction in the headers (ImagePositionPatient, ImageOrientationPatient)."""
    origin, direction = grid_of(case)
    image = to_sitk(np.ascontiguousarray(array, np.float32), case.spacing_mm, origin, direction)
    image = sitk.Cast(image, sitk.sitkInt16)
    d = image.GetDirection()
    tags = {"0008|0060": "MR", "0008|103e": description, "0020|000e": uid, "0020|000d": uid.rsplit(".", 1)[0],
            "0010|0020": case.case_id, "0020|0037": "\\".join(f"{v:.8f}" for v in (d[0], d[3], d[6], d[1], d[4], d[7])),
            "0018|0050": f"{case.spacing_mm[0]:g}"}
    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for z in range(image.GetDepth()):
        plane = image[:, :, z]
        for tag, value in tags.items():
            plane.SetMetaData(tag, value)
        plane.SetMetaData("0020|0032", "\\".join(f"{v:.6f}" for v in image.TransformIndexToPhysicalPoint((0, 0, z))))
        plane.SetMetaData("0020|0013", str(z + 1))
        plane.SetMetaData("0008|0018", f"{uid}.{z + 1}")
        writer.SetFileName(str(folder / f"{description}_{z:04d}.dcm"))
        with kept_locale():
            writer.Execute(plane)


def export_dicom(cases: list[Case], out: str | Path, one_folder: bool = False) -> Path:
    """A manifest whose image cells are DICOM series folders (`cases/<id>/<sequence>/`, or all
    three series in `cases/<id>/dicom/` with `one_folder`); masks as NIfTI. Images are rounded to
    integers (DICOM stores int16 here). Returns the CSV."""
    out = Path(out)
    rows = []
    for i, case in enumerate(cases):
        cells = {}
        for j, seq in enumerate(("t2w", "dwi", "adc")):
            rel = f"cases/{case.case_id}/" + ("dicom" if one_folder else seq)
            write_dicom_series(np.round(case.sequence(seq)), case, out / rel, seq, f"{DICOM_ROOT}.{i + 1}.{j + 1}")
            cells[seq] = rel
        masks = {m: f"cases/{case.case_id}/{m}.nii.gz" for m in ("gland", "zones", "lesion")
                 if getattr(case, m) is not None}
        _images(case, {m: out / p for m, p in masks.items()})
        rows.append({"case_id": case.case_id, **cells, **masks, "label": "" if case.label is None else str(case.label)})
    with (out / "cases.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, ["case_id", "t2w", "dwi", "adc", "gland", "zones", "lesion", "label"], restval="")
        writer.writeheader()
        writer.writerows(rows)
    return out / "cases.csv"


def export_cases(cases: list[Case], out: str | Path, layout: str) -> Path:
    """Write `cases` under `out` in `layout`; returns what a reader takes (the CSV for manifest)."""
    if layout not in LAYOUTS:
        raise InputError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return {"manifest": export_manifest, "picai": export_picai, "msd": export_msd}[layout](cases, out)


def export_phantom(out: str | Path, n: int, layout: str, seed: int = 0, cohort: str = "downstream",
                   shape=(16, 48, 48), spacing_mm=(3.0, 1.5, 1.5)) -> Path:
    """`n` phantom cases (`make_cohort(n, seed, cohort, shape, spacing_mm)`) written in `layout`."""
    from taskalign.data.phantom import make_cohort

    return export_cases(make_cohort(n, seed, cohort, tuple(shape), tuple(spacing_mm)), out, layout)


def export_phantom_command(args) -> int:
    """`taskalign phantom --out DIR --cases N --layout L [--preset P] [--seed S]`."""
    from taskalign.study.config import preset

    data = preset(args.preset).data
    path = export_phantom(args.out, args.cases, args.layout, seed=args.seed, shape=data.shape,
                          spacing_mm=data.spacing_mm)
    print(f"wrote {args.cases} phantom cases ({args.preset} grid {data.shape} at {data.spacing_mm} mm, seed "
          f"{args.seed}) in the {args.layout} layout: {path}")
    print(f"check it with: taskalign data check {path}" + (" --dwi zero" if args.layout == "msd" else ""))
    return 0
