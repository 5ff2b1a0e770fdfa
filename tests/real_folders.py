"""Small real-format folders for the real-data tests: phantom cases exported as a manifest
folder, and one broken case per problem kind of `taskalign data check`."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from taskalign.data.phantom import make_cohort
from taskalign.data.real.export import export_cases

SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "picai_sample"
SMOKE_GRID = dict(shape=(8, 32, 32), spacing_mm=(4.0, 2.5, 2.5))


def phantom_cases(n: int, seed: int = 0):
    return make_cohort(n, seed, "downstream", **SMOKE_GRID)


def _rewrite(path: Path, change) -> None:
    image = sitk.ReadImage(str(path))
    array = sitk.GetArrayFromImage(image)
    new = change(array, image)
    if isinstance(new, sitk.Image):
        out = new
    else:
        out = sitk.GetImageFromArray(new)
        out.CopyInformation(image)
    sitk.WriteImage(out, str(path))


def _shifted(array, image):
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(image)
    out.SetOrigin(tuple(o + 1000.0 for o in image.GetOrigin()))
    return out


def _nan(array, image):
    array = array.copy()
    array[2, 5, 5] = np.nan
    return array


BREAKERS = {   # kind -> (file column to break, how)
    "missing_file": ("dwi", lambda p: p.unlink()),
    "unreadable_file": ("adc", lambda p: p.write_bytes(p.read_bytes()[:60])),    # a truncated file
    "no_overlap": ("dwi", lambda p: _rewrite(p, _shifted)),
    "non_finite": ("t2w", lambda p: _rewrite(p, _nan)),
    "empty_volume": ("adc", lambda p: _rewrite(p, lambda a, i: np.zeros_like(a))),
    "constant_volume": ("dwi", lambda p: _rewrite(p, lambda a, i: np.full_like(a, 5.0))),
    "label_values": ("zones", lambda p: _rewrite(p, lambda a, i: np.where(a == 2, 7, a).astype(a.dtype))),
    "empty_mask": ("gland", lambda p: _rewrite(p, lambda a, i: np.zeros_like(a))),
}
KINDS = tuple(BREAKERS) + ("duplicate_id",)


def _rows(csv_path: Path) -> list[dict[str, str]]:
    with csv_path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _write_rows(csv_path: Path, rows: list[dict[str, str]]) -> None:
    with csv_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def break_case(csv_path: Path, case_id: str, kind: str) -> None:
    """Give the manifest case `case_id` the problem `kind`."""
    rows = _rows(csv_path)
    if kind == "duplicate_id":
        row = next(r for r in rows if r["case_id"] == case_id)
        _write_rows(csv_path, rows + [dict(row)])
        return
    column, how = BREAKERS[kind]
    row = next(r for r in rows if r["case_id"] == case_id)
    how(csv_path.parent / row[column])


def broken_folder(out: Path, n_good: int, kinds=KINDS, seed: int = 0) -> tuple[Path, dict[str, str]]:
    """A manifest folder with `n_good` usable phantom cases and one broken case per kind;
    returns (csv path, {kind: broken case id})."""
    cases = phantom_cases(n_good + len(kinds), seed)
    csv_path = export_cases(cases, out, "manifest")
    broken = {}
    for kind, case in zip(kinds, cases[n_good:]):
        break_case(csv_path, case.case_id, kind)
        broken[kind] = case.case_id
    return csv_path, broken


# ---- folders as other groups write them (the same phantom volumes, other conventions) --------

def read_rows(csv_path: Path) -> list[dict[str, str]]:
    return _rows(csv_path)


def write_rows(csv_path: Path, rows: list[dict[str, str]]) -> Path:
    _write_rows(csv_path, rows)
    return csv_path


def rewrite_mask(path: Path, change) -> None:
    """Rewrite a mask file through `change(array) -> array` (any dtype), keeping its grid."""
    _rewrite(path, lambda array, image: change(array))


def profound_segmentation_csv(canonical: Path) -> Path:
    """ProFound's segmentation CSV beside a canonical manifest: `t2w,dwi,adc,prostate,lesion`, no
    case id, the gland stored 0/255 (uint8) and the lesion as float64."""
    rows = []
    for row in _rows(canonical):
        rewrite_mask(canonical.parent / row["gland"], lambda a: (a * 255).astype(np.uint8))
        rewrite_mask(canonical.parent / row["lesion"], lambda a: a.astype(np.float64))
        rows.append({"t2w": row["t2w"], "dwi": row["dwi"], "adc": row["adc"], "prostate": row["gland"],
                     "lesion": row["lesion"]})
    return write_rows(canonical.parent / "profound_seg.csv", rows)


def profound_classification_csv(canonical: Path, cases) -> Path:
    """ProFound's classification CSV: `pid,t2w,adc,highb,pirads,likert` (PI-RADS and Likert
    scores instead of a csPCa label)."""
    rows = [{"pid": row["case_id"], "t2w": row["t2w"], "adc": row["adc"], "highb": row["dwi"],
             "pirads": str(case.pirads), "likert": str(9 - case.pirads)}   # differs from PI-RADS
            for row, case in zip(_rows(canonical), cases)]
    return write_rows(canonical.parent / "profound_cls.csv", rows)
