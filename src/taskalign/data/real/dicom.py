"""DICOM series folders (one folder per sequence, or several series in one folder), read with
SimpleITK's `ImageSeriesReader` (GDCM): slices sorted by position, orientation and spacing from
the headers, so the image meets the others in physical space like a NIfTI file.

Series are looked for in the folder and its subfolders, so a manifest cell may name the series'
own folder or the case's folder of series folders. A folder with one series is read as it is.
With several series a selector chooses one: a SeriesInstanceUID, or a SeriesDescription
(case-insensitive, exact first, then the one description containing it). Several series and no
selector, or a selector that matches none or several, is a problem of the case that names the
series found.
"""
from __future__ import annotations

import locale
from contextlib import contextmanager

from dataclasses import dataclass
from pathlib import Path

import SimpleITK as sitk

from taskalign.data.real.problems import fail

DESCRIPTION_TAG = "0008|103e"


@dataclass(frozen=True)
class Series:
    uid: str
    description: str
    files: tuple[str, ...]

    def label(self) -> str:
        return f"{self.description or '(no description)'} [{self.uid}, {len(self.files)} file(s)]"


@contextmanager
def kept_locale():
    """Run SimpleITK's GDCM calls without losing the process locale: GDCM sets it to "C", after
    which Python's default text encoding turns ASCII and any later `open(...)` of a UTF-8 file
    (a report, a CSV with an accent) fails. Measured: reading a DICOM series changed
    `locale.getpreferredencoding()` from UTF-8 to ANSI_X3.4-1968."""
    saved = locale.setlocale(locale.LC_ALL)
    try:
        yield
    finally:
        locale.setlocale(locale.LC_ALL, saved)


def _description(file: str) -> str:
    reader = sitk.ImageFileReader()
    reader.SetFileName(file)
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return ""
    return reader.GetMetaData(DESCRIPTION_TAG).strip() if reader.HasMetaDataKey(DESCRIPTION_TAG) else ""


def list_series(folder: Path) -> list[Series]:
    """Every DICOM series in `folder` and its subfolders (a case folder with one subfolder per
    series reads like a folder holding them all)."""
    out = []
    with kept_locale():
        for directory in [folder] + sorted(p for p in folder.rglob("*") if p.is_dir()):
            for uid in sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(directory)) or ():
                files = tuple(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(directory), uid))
                if files:
                    out.append(Series(uid, _description(files[0]), files))
    return out


def choose_series(case_id: str, name: str, folder: Path, found: list[Series], selector: str | None) -> Series:
    """The series `selector` names (see the module doc); CaseError otherwise."""
    listing = "; ".join(s.label() for s in found)
    if selector is None:
        if len(found) == 1:
            return found[0]
        raise fail(case_id, folder, "ambiguous_series",
                   f"{name} folder {folder} holds {len(found)} DICOM series ({listing}); choose one with "
                   f"--series {name}=DESCRIPTION or {name}=SERIES_UID")
    by_uid = [s for s in found if s.uid == selector]
    exact = [s for s in found if s.description.lower() == selector.lower()]
    partial = [s for s in found if selector.lower() in s.description.lower()]
    chosen = by_uid or exact or partial
    if len(chosen) == 1:
        return chosen[0]
    what = "matches none" if not chosen else f"matches {len(chosen)}"
    raise fail(case_id, folder, "ambiguous_series" if chosen else "missing_file",
               f"{name} series {selector!r} {what} of the DICOM series in {folder} ({listing})")


def read_series(case_id: str, name: str, folder: Path, selector: str | None = None) -> sitk.Image:
    """The chosen series of a DICOM folder as one 3-D image (orientation, spacing, origin kept)."""
    found = list_series(folder)
    if not found:
        raise fail(case_id, folder, "missing_file",
                   f"{name} folder {folder} holds no DICOM series; give a DICOM series folder or an image file")
    series = choose_series(case_id, name, folder, found, selector)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(list(series.files))
    try:
        with kept_locale():
            image = reader.Execute()
    except RuntimeError as err:
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else "no reason given"
        raise fail(case_id, folder, "unreadable_file", f"{name} DICOM series {series.label()} is unreadable "
                   f"({reason})") from err
    return image


def series_files(folder: Path) -> list[Path]:
    """The files of a DICOM folder and its subfolders, sorted (the preprocessing cache's key)."""
    return sorted(p for p in folder.rglob("*") if p.is_file())
