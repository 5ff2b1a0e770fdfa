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
