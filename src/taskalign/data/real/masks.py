"""Masks as people store them, read into the Case's classes (DESIGN.md §5).

- gland and lesion are binary masks: two values {0, v} (0/255 uint8, 0/1000, ...) are read as
  {0, 1}; float masks with values between integers (soft or interpolated masks) are thresholded
  at half their maximum. A float mask whose values are all integers is an integer mask stored
  as float (0.0/1.0) and read like one.
- lesion maps with several labels follow PI-CAI: values 1-5 are ISUP grades, one per lesion, and
  are kept (the segmentation task keeps ISUP >= 2). Several labels not all in 1-5 (e.g. lesion
  instance numbers 1..12) are not read: a `label_values` problem names the values.
- zones is multi-class (0 background, 1 PZ, 2 TZ): values outside its classes stay a problem
  (`validate_case` names them), never thresholded.

Each conversion returns a short note ("gland stored as {0, 255}: read as {0, 1}"); the folder
reader lists each note once with the number of cases it applies to.
"""
from __future__ import annotations

import numpy as np

from taskalign.data.real.problems import fail

BINARY_MASKS = ("gland", "lesion")
ISUP_MAX = 5


def _integer_valued(values: np.ndarray) -> bool:
    return bool(np.all(values == np.round(values)))


def _binary(name: str, values: np.ndarray) -> bool:
    """Whether a binary mask's integer values need {0, v} -> {0, 1}."""
    if name == "lesion" and values.max(initial=0) <= ISUP_MAX:
        return False                                    # 0/1 or ISUP grades, kept
    return values.size <= 2 and values.min(initial=0) == 0 and values.max(initial=0) > 1


def read_mask(case_id: str, name: str, file: str, array: np.ndarray) -> tuple[np.ndarray, str | None]:
    """(uint8 mask, note or None) for a mask array on the T2w grid (see the module doc).
    CaseError (label_values) for negative values, non-integer zones, lesion labels that are
    neither ISUP grades nor binary, and integers above 255."""
    values = np.unique(array)
    if values.size and values.min() < 0:
        raise fail(case_id, file, "label_values", f"{name} mask holds negative values {values[:10].tolist()}")
    if not _integer_valued(values):
        if name not in BINARY_MASKS:
            raise fail(case_id, file, "label_values", f"{name} mask must hold class numbers {'{0, 1, 2}'}, got "
                       f"non-integer values {values[:10].tolist()}")
        half = float(values.max()) / 2
        return (array >= half).astype(np.uint8), f"{name} stored as float values: thresholded at half the maximum"
    if name in BINARY_MASKS and _binary(name, values):
        v = int(values.max())
        return (array > 0).astype(np.uint8), f"{name} stored as {{0, {v}}}: read as {{0, 1}}"
    if name == "lesion" and values.size > 2 and values.max() > ISUP_MAX:
        raise fail(case_id, file, "label_values",
                   f"lesion mask holds labels {values[:10].astype(int).tolist()}: a lesion map must hold ISUP grades "
                   f"0-{ISUP_MAX} (PI-CAI) or two values {{0, v}}; merge instance labels into one value")
    if values.size and values.max() > 255:
        raise fail(case_id, file, "label_values",
                   f"{name} mask holds values {values[:10].astype(int).tolist()} above 255 outside its classes")
    return array.astype(np.uint8), None
