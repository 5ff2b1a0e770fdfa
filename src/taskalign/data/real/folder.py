"""Reading a whole real folder: every case read, checked and either kept or reported.

A layout module (manifest, picai, msd) lists the folder's entries (`Entry`: case id, files,
label) and reads one entry into a `Case`. `read_folder` does the rest the same way for every
layout: duplicate ids, one `CaseError` per unreadable case, `validate_case` on the rest, an
optional crop, and the preprocessing cache. A broken case is reported and skipped; it never
stops the others.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskalign.data.case import Case
from taskalign.data.real.integrity import gzip_problem, open_problem
from taskalign.data.real.problems import CaseError, Problem, fail, validate_case
from taskalign.data.real.regrid import crop_case, resample_case
from taskalign.errors import InputError

if TYPE_CHECKING:
    from taskalign.data.real.cache import PreprocessCache

LAYOUTS = ("manifest", "picai", "msd")


@dataclass
class Entry:
    case_id: str
    files: dict[str, Path]                 # name (t2w, dwi, adc, gland, zones, lesion, image, ...) -> file
    label: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    problem: Problem | None = None         # found while listing (e.g. a bad label in the marksheet)


@dataclass
class FolderRead:
    layout: str
    path: str
    cases: list[Case]                      # usable cases, in the folder's order
    problems: list[Problem]                # every problem, one per (case, file, kind)
    notes: list[str]                       # what the reader did that a user must know (e.g. DWI absent)
    entries: int = 0

    @property
    def excluded(self) -> list[dict[str, str]]:
        """One record per excluded case (its first problem first, all kinds listed)."""
        by_case: dict[str, list[Problem]] = {}
        for p in self.problems:
            by_case.setdefault(p.case, []).append(p)
        return [{"case": case, "reason": "; ".join(f"{p.kind}: {p.message}" for p in ps),
                 "kind": ps[0].kind, "file": ps[0].file} for case, ps in by_case.items()]


def detect_layout(path: str | Path) -> str:
    """manifest for a .csv file, msd for a folder with dataset.json, else picai."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return "manifest"
    if (path / "dataset.json").is_file():
        return "msd"
    if path.is_dir():
        return "picai"
    raise InputError(f"{path} is neither a manifest CSV nor a folder; give a CSV, a PI-CAI or an MSD folder")


def reader_options(layout: str | None, path: str | Path, *, dwi: str | None = None,
                   columns: dict[str, str] | None = None, label_rule: str | None = None,
                   series: dict[str, str] | None = None) -> dict[str, Any]:
    """The options `read_folder` passes to a layout, from the user's choices; ValueError for a
    choice the layout cannot take (`dwi` only applies to MSD and is ignored elsewhere)."""
    layout = layout or detect_layout(path)
    given = {"columns": columns, "series": series, "label_rule": label_rule}
    takes = {"manifest": ("columns", "series", "label_rule"), "picai": ("label_rule",), "msd": ()}[layout]
    for name, value in given.items():
        if value and name not in takes:
            flag = "--" + name.replace("_", "-")
            where = "a manifest CSV or a PI-CAI folder" if name == "label_rule" else "a manifest CSV"
            raise ValueError(f"{flag} does not apply to {path}, read as a {layout} folder; it applies to {where}")
    options = {k: v for k, v in given.items() if v and k in takes}
    return {**options, "dwi": dwi} if layout == "msd" else options


def _layout(name: str):
    from taskalign.data.real import manifest, msd, picai

    modules = {"manifest": manifest, "picai": picai, "msd": msd}
    if name not in modules:
        raise InputError(f"unknown layout {name!r}; choose one of {', '.join(LAYOUTS)}")
    return modules[name]


def _duplicates(entries: list[Entry]) -> tuple[list[Entry], list[Problem]]:
    counts = Counter(e.case_id for e in entries)
    problems = [Problem(cid, "", "duplicate_id", f"case id {cid!r} is duplicated ({n} entries); every entry "
                        "with it is skipped, make the ids unique") for cid, n in counts.items() if n > 1]
    return [e for e in entries if counts[e.case_id] == 1], problems


def _check_files(entry: Entry, check_gzip: str) -> None:
    """CaseError (unreadable_file) for a file of the entry that cannot be opened, or a gzip file
    that is not whole (`integrity`)."""
    for name, path in entry.files.items():
        path = Path(path)
        if not path.is_file():
            continue                                  # missing files and DICOM folders: the reader says
        denied = open_problem(path)
        if denied:
            raise fail(entry.case_id, path, "unreadable_file", f"{name} file {path} cannot be opened ({denied}); "
                       "give the user running taskalign read access")
        reason = gzip_problem(path, check_gzip) if path.name.endswith(".gz") else None
        if reason:
            raise fail(entry.case_id, path, "unreadable_file", f"{name} file {path} is unreadable: {reason}; "
                       "replace the file")


def _read(module, entry: Entry, check_gzip: str) -> tuple[Case | None, list[Problem]]:
    try:
        _check_files(entry, check_gzip)
        case = module.read_entry(entry)
    except CaseError as err:
        return None, [err.problem]
    return case, validate_case(case)


def _mask_notes(cases: list[Case], entries: int) -> list[str]:
    """Each mask conversion once, with the number of cases it applies to."""
    counts = Counter(note for case in cases for note in case.meta.get("read_notes", ()))
    return [f"{note} ({n} of {entries} case(s))" for note, n in counts.items()]


def _prepare(case: Case, crop, spacing_mm, center: str) -> Case:
    if spacing_mm is not None:
        return resample_case(case, crop or case.shape, spacing_mm, center)
    return crop_case(case, crop, center) if crop is not None else case


def read_folder(path: str | Path, layout: str | None = None, *, crop: tuple[int, int, int] | None = None,
                spacing_mm: tuple[float, float, float] | None = None, center: str = "gland",
                cache: "PreprocessCache | None" = None, check_gzip: str = "size", **options) -> FolderRead:
    """Read every case of a real folder.

    `layout` defaults to `detect_layout(path)`; `options` go to the layout (msd needs `dwi="zero"`
    or `"drop"`). `crop` (D, H, W) crops each case around the gland or the image centre
    (`center`) on its own lattice; with `spacing_mm` the case is resampled instead onto `crop`
    voxels (default its own shape) at that spacing. `cache` stores the prepared cases.
    `check_gzip` ("size" or "crc", see `integrity`) is how far `.gz` files are checked to be whole.
    Structural faults of the folder (no CSV columns, no dataset.json) raise ValueError.
    """
    layout = layout or detect_layout(path)
    module = _layout(layout)
    entries, notes = module.list_entries(Path(path), **options)
    entries, problems = _duplicates(entries)
    settings = {"crop": crop, "spacing_mm": spacing_mm, "center": center}
    cases = []
    for entry in entries:
        if entry.problem is not None:
            problems.append(entry.problem)
            continue
        key = cache.key(entry.files, layout, {**options, "case_id": entry.case_id, "label": entry.label}, settings) if cache else None
        case = cache.get(key) if cache else None
        if case is None:
            case, found = _read(module, entry, check_gzip)
            if found:
                problems.extend(found)
                continue
            case = _prepare(case, crop, spacing_mm, center)
            if cache:
                cache.put(key, case)
        cases.append(case)
    return FolderRead(layout, str(path), cases, problems, notes + _mask_notes(cases, len(entries)), len(entries))
