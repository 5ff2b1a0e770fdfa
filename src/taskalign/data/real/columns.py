"""Which CSV column holds what: the manifest's names, the well-known aliases other groups use
(ProFound's CSVs: `pid, t2w, adc, highb, prostate, lesion, pirads, likert`), an explicit
override (`--columns case_id=pid,dwi=highb`), and case ids taken from the file paths when a CSV
has no id column.

The mapping is resolved once per CSV and printed by `taskalign data check`, so a user sees which
column was read as what.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePath

CANONICAL = ("case_id", "t2w", "dwi", "adc", "gland", "zones", "lesion", "label")
ALIASES: dict[str, tuple[str, ...]] = {
    "case_id": ("pid", "patient_id", "id", "case", "subject_id"),
    "t2w": ("t2", "t2_tse", "t2_image"),
    "dwi": ("highb", "hbv", "dwi_b1400", "b1400", "high_b"),
    "adc": ("adc_map",),
    "gland": ("prostate", "prostate_mask", "gland_mask", "wg", "whole_gland"),
    "zones": ("zonal_mask", "zone", "zonal"),
    "lesion": ("lesion_mask", "lesions", "tumor", "tumour"),
    "label": ("cspca", "case_cspca", "clinsig", "clinically_significant"),
}
"""Aliases per canonical column, matched case-insensitively after the canonical name itself."""
SEQUENCE_TOKENS = ("t2w", "t2", "dwi", "hbv", "highb", "adc", "image")


@dataclass(frozen=True)
class ColumnMap:
    """canonical name -> CSV column, and how each was found ("name", "alias", "given")."""
    columns: dict[str, str]
    how: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """`case_id=pid (alias), t2w=t2w, ...` for the check's notes."""
        parts = [f"{c}={self.columns[c]}" + ("" if self.how[c] == "name" else f" ({self.how[c]})")
                 for c in CANONICAL if c in self.columns]
        return ", ".join(parts)


def parse_assignments(text: str | None, option: str, names: tuple[str, ...]) -> dict[str, str]:
    """`case_id=pid,dwi=highb` -> {"case_id": "pid", "dwi": "highb"}; ValueError naming the part."""
    if not text:
        return {}
    out = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not value:
            raise ValueError(f"{option} part {part!r} is not NAME=VALUE (e.g. {names[0]}=...)")
        if name not in names:
            raise ValueError(f"{option} names {name!r}; the names are {', '.join(names)}")
        out[name] = value
    return out


def parse_columns(text: str | None) -> dict[str, str]:
    """`--columns case_id=pid,dwi=highb` -> {"case_id": "pid", "dwi": "highb"}."""
    return parse_assignments(text, "--columns", CANONICAL)


def resolve_columns(header: list[str], given: dict[str, str] | None = None, where: str = "the CSV") -> ColumnMap:
    """The ColumnMap of a CSV header: `given` first (each must exist), then the canonical name,
    then the first alias present (case-insensitive)."""
    given = dict(given or {})
    lower = {h.strip().lower(): h for h in header}
    columns, how = {}, {}
    for name, column in given.items():
        if column not in header and column.lower() not in lower:
            raise ValueError(f"--columns {name}={column}: {where} has no column {column!r}; its columns are {header}")
        columns[name], how[name] = (column if column in header else lower[column.lower()]), "given"
    taken = set(columns.values())
    for name in CANONICAL:
        if name in columns:
            continue
        for candidate in (name,) + ALIASES[name]:
            column = lower.get(candidate)
            if column is not None and column not in taken:
                columns[name], how[name] = column, ("name" if candidate == name else "alias")
                taken.add(column)
                break
    return ColumnMap(columns, how)


def _stem(path: PurePath) -> str:
    name = path.name
    for ext in (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


def ids_from_paths(t2w_cells: list[str]) -> tuple[list[str], str]:
    """Case ids for a CSV without an id column, from each row's T2w path, and the rule used:
    the T2w file's folder name when those are unique (`case001/t2w.nii.gz`), else the file name
    without its extension (`case001_t2w.nii.gz` -> `case001_t2w`), else the path relative to
    the CSV without its extension. Empty cells give empty ids (reported as bad entries)."""
    paths = [PurePath(c.strip()) if c.strip() else None for c in t2w_cells]
    given = [p for p in paths if p is not None]
    rules = (("the T2w file's folder name", lambda p: p.parent.name),
             ("the T2w file name without its extension", _stem),
             ("the T2w path without its extension", lambda p: str(p.parent / _stem(p)).replace("/", "_")))
    for rule, make in rules:
        ids = [make(p) for p in given]
        if all(ids) and len(set(ids)) == len(ids) and not (rule.startswith("the T2w file's") and
                                                            any(i.lower() in SEQUENCE_TOKENS for i in ids)):
            return [make(p) if p is not None else "" for p in paths], rule
    return [str(p) if p is not None else "" for p in paths], "the T2w path"
