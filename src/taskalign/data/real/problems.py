"""What can be wrong with a real case, as data: a `Problem` names the case, the file, a kind and
a message a person can act on (DESIGN.md §5). Readers raise `CaseError` for the first problem that
stops a case from being read; `validate_case` lists every problem of a case that was read.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from taskalign.data.case import SEQUENCES, Case
from taskalign.errors import InputError

PROBLEM_KINDS = (
    "missing_file",      # a file the layout names is not there
    "unreadable_file",   # not a 3-D (or the layout's 4-D) image: not an image, truncated, corrupt, no access
    "no_overlap",        # a sequence or mask does not overlap the T2w grid in physical space
    "non_finite",        # NaN or Inf voxels
    "empty_volume",      # an image that is zero everywhere
    "constant_volume",   # an image with one value everywhere (non-zero)
    "label_values",      # mask or label values outside the task's classes
    "empty_mask",        # a mask with no foreground where one is required
    "duplicate_id",      # two entries with the same case id
    "bad_entry",         # an entry that names no case (a manifest row without case_id)
    "ambiguous_series",  # a DICOM folder with several series and no (or an ambiguous) choice
)
MASK_CLASSES = {"gland": (0, 1), "zones": (0, 1, 2), "lesion": (0, 1, 2, 3, 4, 5)}
"""Allowed values per mask: gland 0/1; zones 0 bg, 1 PZ, 2 TZ; lesion 0 bg, 1-5 ISUP (or 0/1)."""


@dataclass(frozen=True)
class Problem:
    case: str
    file: str
    kind: str
    message: str

    def __post_init__(self) -> None:
        if self.kind not in PROBLEM_KINDS:
            raise ValueError(f"unknown problem kind {self.kind!r}; one of {PROBLEM_KINDS}")

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    def line(self) -> str:
        """One line for a person: `case X: kind: message [file]` (the file when the message lacks it)."""
        where = f" [{self.file}]" if self.file and self.file not in self.message else ""
        return f"case {self.case}: {self.kind}: {self.message}{where}"


class CaseError(InputError):
    """A case that cannot be read; carries its `Problem`. A ValueError, so callers that only want
    a clear message (e.g. `read_manifest`) can treat it like one."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.line().replace(f"{problem.kind}: ", "", 1))
        self.problem = problem


def fail(case: str, file: str, kind: str, message: str) -> CaseError:
    return CaseError(Problem(case, str(file), kind, message))


def _image_problems(case: Case, files: dict[str, str]) -> list[Problem]:
    out = []
    absent = set(case.meta.get("absent_sequences", ()))
    for i, name in enumerate(SEQUENCES):
        if name in absent:
            continue                         # stated by the reader (e.g. MSD has no DWI)
        volume, file = case.image[i], files.get(name, "")
        finite = np.isfinite(volume)
        if not finite.all():
            bad = int((~finite).sum())
            out.append(Problem(case.case_id, file, "non_finite",
                               f"{name} has {bad} NaN/Inf voxel(s) of {volume.size}; fix or drop the file"))
            continue
        lo, hi = float(volume.min()), float(volume.max())
        if lo == hi == 0.0:
            out.append(Problem(case.case_id, file, "empty_volume", f"{name} is zero everywhere"))
        elif lo == hi:
            out.append(Problem(case.case_id, file, "constant_volume", f"{name} has the single value {lo:g}"))
    return out


def _mask_problems(case: Case, files: dict[str, str]) -> list[Problem]:
    out = []
    for name, allowed in MASK_CLASSES.items():
        mask = getattr(case, name)
        if mask is None:
            continue
        values = np.unique(mask)
        extra = [int(v) for v in values if int(v) not in allowed]
        if extra:
            out.append(Problem(case.case_id, files.get(name, ""), "label_values",
                               f"{name} holds values {extra[:10]} outside its classes {list(allowed)}"))
        elif name != "lesion" and not (mask > 0).any():
            out.append(Problem(case.case_id, files.get(name, ""), "empty_mask",
                               f"{name} mask is empty on the T2w grid"))
        elif name == "lesion" and case.label == 1 and not (mask > 0).any():
            out.append(Problem(case.case_id, files.get(name, ""), "empty_mask",
                               "lesion mask is empty but the case's label says csPCa present"))
    if case.label is not None and case.label not in (0, 1):
        out.append(Problem(case.case_id, files.get("label", ""), "label_values",
                           f"csPCa label must be 0 or 1, got {case.label!r}"))
    return out


def validate_case(case: Case) -> list[Problem]:
    """Every problem of a case that was read: non-finite, empty or constant images; mask values
    outside their classes; empty gland/zones masks (an empty lesion mask is a negative case, and
    only a problem when the label says csPCa). `case.meta["files"]` maps names to file paths."""
    files = case.meta.get("files", {})
    return _image_problems(case, files) + _mask_problems(case, files)
