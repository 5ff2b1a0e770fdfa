"""The manifest layout (DESIGN.md §5): a CSV with one row per case.

Columns `case_id, t2w, dwi, adc` (image files or DICOM series folders, relative to the CSV) and
optional `gland, zones, lesion` (masks) and `label` (csPCa 0/1, empty when unknown); other
groups' names are recognised (`columns`: `pid`, `highb`, `prostate`, ...), the label can come
from a score column through a rule (`labels`: `pirads>=4`), and without an id column the ids
come from the T2w paths. Every image is put on the T2w grid (`io.assemble_case`).
"""
from __future__ import annotations

import csv
from pathlib import Path

from taskalign.data.case import SEQUENCES, Case
from taskalign.data.real.columns import ColumnMap, ids_from_paths, resolve_columns
from taskalign.data.real.folder import Entry
from taskalign.data.real.io import MASK_NAMES, assemble_case, read_image
from taskalign.data.real.labels import EXAMPLES, LabelRule, check_binary, parse_rule, rules_hint
from taskalign.data.real.problems import Problem, fail
from taskalign.errors import InputError

REQUIRED = SEQUENCES
MASKS = MASK_NAMES


def _label(case_id: str, csv_path: Path, text: str) -> tuple[int | None, Problem | None]:
    text = (text or "").strip()
    if text in ("", "0", "1"):
        return (int(text) if text else None), None
    return None, Problem(case_id, str(csv_path), "label_values",
                         f"label must be 0 or 1 (csPCa) or empty, got {text!r} in {csv_path.name}")


def _rule_label(case_id: str, csv_path: Path, rule: LabelRule, text: str) -> tuple[int | None, Problem | None]:
    try:
        return rule.label(text), None
    except ValueError as err:
        return None, Problem(case_id, str(csv_path), "label_values", f"{err} in {csv_path.name}")


def _read_rows(csv_path: Path, columns: dict[str, str] | None) -> tuple[list[dict[str, str]], list[str], ColumnMap]:
    if not csv_path.is_file():
        raise InputError(f"manifest {csv_path} does not exist")
    try:
        with csv_path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            mapping = resolve_columns(header, columns, f"manifest {csv_path}")
            missing = [c for c in REQUIRED if c not in mapping.columns]
            if missing:
                raise InputError(f"manifest {csv_path} lacks columns {missing}; it needs {['case_id', *REQUIRED]} "
                                 f"(or their aliases, or --columns NAME=COLUMN), its columns are {header}")
            return list(reader), header, mapping
    except (UnicodeDecodeError, csv.Error) as err:
        raise InputError(f"manifest {csv_path} is not a text CSV file ({err}); give a UTF-8 CSV with "
                         f"columns {['case_id', *REQUIRED]}") from err


def _labels(rows, header, mapping: ColumnMap, rule: LabelRule | None, csv_path: Path) -> tuple[str | None, list[str]]:
    """The column the labels come from and the notes about it; ValueError for a rule whose score
    column is absent, or a label column of scores and no rule."""
    if rule is not None:
        column = rule.column(header)
        if column is None:
            raise InputError(f"--label-rule {rule.text}: manifest {csv_path} has no {rule.score} column; "
                             f"its columns are {header}")
        ignored = [f"label column {mapping.columns['label']!r} ignored"] if "label" in mapping.columns else []
        return column, [rule.describe(column)] + ignored
    column = mapping.columns.get("label")
    if column is not None:
        check_binary([(r.get(column) or "").strip() for r in rows if (r.get(column) or "").strip()], column,
                     f"manifest {csv_path}")
        return column, []
    scores = [h for h in header if any(parse_rule(r).column([h]) for r in EXAMPLES)]
    hint = [f"columns {scores} hold clinical scores, not a csPCa label: {rules_hint()} to use them"] if scores else []
    return None, hint


def list_entries(csv_path: Path, columns: dict[str, str] | None = None, label_rule: str | None = None,
                 series: dict[str, str] | None = None) -> tuple[list[Entry], list[str]]:
    """One Entry per CSV row. `columns` overrides the column names (`columns.resolve_columns`),
    `label_rule` turns a score column into the label (`labels`), `series` chooses a DICOM series
    per sequence when a cell names a folder of several. ValueError when the CSV is missing or
    lacks the image columns, or its label column holds scores and no rule is given."""
    rule = parse_rule(label_rule)
    rows, header, mapping = _read_rows(csv_path, columns)
    label_column, notes = _labels(rows, header, mapping, rule, csv_path)
    notes = [f"columns: {mapping.describe()}"] + notes
    if "case_id" in mapping.columns:
        ids = [(row[mapping.columns["case_id"]] or "").strip() for row in rows]
    else:
        ids, how = ids_from_paths([row[mapping.columns["t2w"]] or "" for row in rows])
        notes.append(f"no case-id column: case ids are {how}")
    entries = []
    for number, (row, case_id) in enumerate(zip(rows, ids), start=2):            # row 1 is the header
        if not case_id:
            case_id = f"<line {number}>"
            entries.append(Entry(case_id, {}, None, {"row": number}, Problem(
                case_id, str(csv_path), "bad_entry", f"line {number} of {csv_path.name} has no case id; give it one")))
            continue
        files = {c: csv_path.parent / row[col].strip() for c, col in mapping.columns.items()
                 if c in SEQUENCES + MASKS and (row.get(col) or "").strip()}
        text = row.get(label_column, "") if label_column else ""
        label, problem = _rule_label(case_id, csv_path, rule, text) if rule else _label(case_id, csv_path, text)
        entries.append(Entry(case_id, files, label, {"row": number, "series": dict(series or {})}, problem))
    return entries, notes


def read_entry(entry: Entry) -> Case:
    """One manifest row -> Case (image (3, D, H, W) float32 on the T2w grid)."""
    for seq in SEQUENCES:
        if seq not in entry.files:
            raise fail(entry.case_id, "", "missing_file", f"{seq} column is empty; every case needs {SEQUENCES}")
    series = entry.meta.get("series", {})
    images = {seq: read_image(entry.case_id, seq, entry.files[seq], series=series.get(seq)) for seq in SEQUENCES}
    masks = {m: read_image(entry.case_id, m, entry.files[m], series=series.get(m)) for m in MASKS if m in entry.files}
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
