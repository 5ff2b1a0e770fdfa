"""The manifest layout (DESIGN.md §5): a CSV with one row per case.

Columns `case_id, t2w, dwi, adc` (image paths relative to the CSV) and optional `gland, zones,
lesion` (mask paths) and `label` (csPCa 0/1, empty when unknown). Every image is put on the
T2w grid (`io.assemble_case`).
"""
from __future__ import annotations

import csv
from pathlib import Path

from taskalign.data.case import SEQUENCES, Case
from taskalign.data.real.folder import Entry
from taskalign.data.real.io import MASK_NAMES, assemble_case, read_image
from taskalign.data.real.problems import Problem, fail
from taskalign.errors import InputError

REQUIRED = ("case_id",) + SEQUENCES
MASKS = MASK_NAMES


def _label(case_id: str, csv_path: Path, text: str) -> tuple[int | None, Problem | None]:
    text = (text or "").strip()
    if text in ("", "0", "1"):
        return (int(text) if text else None), None
    return None, Problem(case_id, str(csv_path), "label_values",
                         f"label must be 0 or 1 (csPCa) or empty, got {text!r} in {csv_path.name}")


def list_entries(csv_path: Path) -> tuple[list[Entry], list[str]]:
    """One Entry per CSV row; ValueError when the CSV is missing or lacks the required columns."""
    if not csv_path.is_file():
        raise InputError(f"manifest {csv_path} does not exist")
    try:
        with csv_path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise InputError(f"manifest {csv_path} lacks columns {missing}; it needs {list(REQUIRED)}")
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as err:
        raise InputError(f"manifest {csv_path} is not a text CSV file ({err}); give a UTF-8 CSV with "
                         f"columns {list(REQUIRED)}") from err
    entries = []
    for number, row in enumerate(rows, start=2):            # row 1 is the header
        case_id = (row["case_id"] or "").strip()
        if not case_id:
            case_id = f"<line {number}>"
            entries.append(Entry(case_id, {}, None, {"row": number}, Problem(
                case_id, str(csv_path), "bad_entry", f"line {number} of {csv_path.name} has no case_id; give it one")))
            continue
        files = {c: csv_path.parent / row[c].strip() for c in SEQUENCES + MASKS if (row.get(c) or "").strip()}
        label, problem = _label(case_id, csv_path, row.get("label", ""))
        entries.append(Entry(case_id, files, label, {"row": number}, problem))
    return entries, []


def read_entry(entry: Entry) -> Case:
    """One manifest row -> Case (image (3, D, H, W) float32 on the T2w grid)."""
    for seq in SEQUENCES:
        if seq not in entry.files:
            raise fail(entry.case_id, "", "missing_file", f"{seq} column is empty; every case needs {SEQUENCES}")
    images = {seq: read_image(entry.case_id, seq, entry.files[seq]) for seq in SEQUENCES}
    masks = {m: read_image(entry.case_id, m, entry.files[m]) for m in MASKS if m in entry.files}
    files = {k: str(v) for k, v in entry.files.items()}
    meta = {"source": "manifest", "t2w_path": files["t2w"]}
    return assemble_case(entry.case_id, images, masks, files, entry.label, meta)


def read_manifest(csv_path: str | Path) -> list[Case]:
    """All cases of a manifest CSV, strictly: ValueError naming the case and file on the first
    problem (use `read_folder` to read the usable cases and list the problems instead)."""
    from taskalign.data.real.folder import read_folder
    from taskalign.data.real.problems import CaseError

    result = read_folder(Path(csv_path), "manifest")
    if result.problems:
        raise CaseError(result.problems[0])
    return result.cases
