"""The PI-CAI layout (DESIGN.md §5): the public archive's tree.

    <root>/images/<patient_id>/<patient_id>_<study_id>_{t2w,hbv,adc}.mha   (or the patient folders in <root>)
    <root>/labels/<patient_id>_<study_id>.nii.gz     lesion delineations, ISUP grade per lesion (0 background)
    <root>/gland/<patient_id>_<study_id>.nii.gz      optional whole-gland masks
    <root>/marksheet.csv                             patient_id, study_id, case_csPCa (YES / NO), ...

The case id is `<patient_id>_<study_id>`. Other files in a patient folder (sagittal, coronal T2w)
are ignored. When a labels or gland folder exists, every case needs its file there (a negative
case has an all-zero lesion file). Each folder can be given explicitly instead.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

from taskalign.data.case import Case
from taskalign.data.real.folder import Entry
from taskalign.data.real.io import assemble_case, read_image
from taskalign.data.real.labels import LabelRule, parse_rule
from taskalign.data.real.problems import Problem
from taskalign.errors import InputError

FILE_SEQUENCES = {"t2w": "t2w", "hbv": "dwi", "adc": "adc"}
_NAME = re.compile(r"^(?P<pid>[^_]+)_(?P<sid>[^_]+)_(?P<seq>t2w|hbv|adc)\.mha$")


def _folder(root: Path, given: str | Path | None, default: str) -> Path | None:
    if given is not None:
        path = Path(given)
        if not path.is_dir():
            raise InputError(f"PI-CAI {default} folder {path} does not exist")
        return path
    return root / default if (root / default).is_dir() else None


def _marksheet(path: Path | None, rule: LabelRule | None) -> tuple[dict[str, str], str | None]:
    """{case id: label cell} and the column read (case_csPCa, or the rule's score column)."""
    if path is None or not path.is_file():
        return {}, None
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        header = list(reader.fieldnames or [])
        column = rule.column(header) if rule else "case_csPCa"
        if rule is not None and column is None:
            raise InputError(f"--label-rule {rule.text}: marksheet {path} has no {rule.score} column; its columns "
                             f"are {header}")
        need = {"patient_id", "study_id", column}
        if not need <= set(header):
            raise InputError(f"marksheet {path} lacks columns {sorted(need - set(header))}")
        return {f"{r['patient_id'].strip()}_{r['study_id'].strip()}": (r[column] or "").strip() for r in reader}, column


def _label(case_id: str, text: str | None, path: Path | None,
           rule: LabelRule | None = None) -> tuple[int | None, Problem | None]:
    if text is None or text == "":
        return None, None
    if rule is not None:
        try:
            return rule.label(text), None
        except ValueError as err:
            return None, Problem(case_id, str(path), "label_values", str(err))
    value = {"YES": 1, "NO": 0, "1": 1, "0": 0}.get(text.upper())
    if value is None:
        return None, Problem(case_id, str(path), "label_values", f"case_csPCa must be YES or NO, got {text!r}")
    return value, None


def list_entries(root: Path, labels: str | Path | None = None, gland: str | Path | None = None,
                 marksheet: str | Path | None = None, label_rule: str | None = None) -> tuple[list[Entry], list[str]]:
    """One Entry per `<patient_id>_<study_id>` found in the images tree; the label is the
    marksheet's case_csPCa, or `label_rule` applied to one of its columns (`isup>=2`)."""
    rule = parse_rule(label_rule)
    if not root.is_dir():
        raise InputError(f"PI-CAI folder {root} does not exist")
    images = root / "images" if (root / "images").is_dir() else root
    labels_dir, gland_dir = _folder(root, labels, "labels"), _folder(root, gland, "gland")
    sheet_path = Path(marksheet) if marksheet is not None else root / "marksheet.csv"
    if marksheet is not None and not sheet_path.is_file():
        raise InputError(f"marksheet {sheet_path} does not exist")
    sheet, column = _marksheet(sheet_path, rule)
    found: dict[str, dict[str, Path]] = {}
    for patient in sorted(p for p in images.iterdir() if p.is_dir() and p not in (labels_dir, gland_dir)):
        for file in sorted(patient.iterdir()):
            match = _NAME.match(file.name)
            if match:
                case_id = f"{match['pid']}_{match['sid']}"
                found.setdefault(case_id, {})[FILE_SEQUENCES[match["seq"]]] = file
    if not found:
        raise InputError(f"no <patient_id>_<study_id>_t2w.mha (or hbv, adc) files under {images}/<patient_id>/")
    entries = []
    for case_id, files in found.items():
        pid = case_id.split("_")[0]
        for seq, suffix in (("t2w", "t2w"), ("dwi", "hbv"), ("adc", "adc")):
            files.setdefault(seq, images / pid / f"{case_id}_{suffix}.mha")   # reported missing when read
        if labels_dir is not None:
            files["lesion"] = labels_dir / f"{case_id}.nii.gz"
        if gland_dir is not None:
            files["gland"] = gland_dir / f"{case_id}.nii.gz"
        label, problem = _label(case_id, sheet.get(case_id), sheet_path, rule)
        entries.append(Entry(case_id, files, label, {}, problem))
    notes = [] if sheet else [f"no marksheet at {sheet_path}: csPCa labels unknown (classification is skipped)"]
    notes += [rule.describe(column)] if rule and sheet else []
    if labels_dir is None:
        notes.append(f"no labels folder under {root}: no lesion masks (segmentation is skipped)")
    return entries, notes


def read_entry(entry: Entry) -> Case:
    """One PI-CAI study -> Case on the T2w grid; lesion values are ISUP grades."""
    images = {seq: read_image(entry.case_id, seq, entry.files[seq]) for seq in ("t2w", "dwi", "adc")}
    masks = {m: read_image(entry.case_id, m, entry.files[m]) for m in ("gland", "lesion") if m in entry.files}
    files = {k: str(v) for k, v in entry.files.items()}
    meta = {"source": "picai", "lesion_values": "isup", "t2w_path": files["t2w"]}
    return assemble_case(entry.case_id, images, masks, files, entry.label, meta)
