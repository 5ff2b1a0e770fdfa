"""The target data of `taskalign advise`: the cases a task would be fine-tuned on, and the
reference cases of the drift proxy.

    phantom (default)   the downstream training split of a study preset (`quick`: 48 cases),
                        drawn exactly as `taskalign study` draws it (`study.cohort.build_cohort`)
    a real folder       every usable case of the folder (manifest CSV, PI-CAI or MSD), resampled
                        onto the preset's grid as a real-data study does; nothing is split off,
                        since nothing is trained
    reference cases     the study's reference probe set (a held-out draw of the phantom
                        pretraining cohort), the same whatever the target
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from taskalign.errors import InputError
from taskalign.data.case import Case
from taskalign.study.cohort import build_cohort, check_case
from taskalign.study.config import DataConfig, preset


@dataclass
class TargetData:
    description: str
    cases: list[Case]
    reference: list[Case]
    data_seed: int
    notes: list[str] = field(default_factory=list)


def reference_cases(data: DataConfig) -> list[Case]:
    """The study's reference probe set of `data` (no downstream or pretraining case drawn)."""
    empty = dataclasses.replace(data, source="phantom", n_train=0, n_val=0, n_test=0)
    return build_cohort(empty).reference


def _limit(cases: list[Case], n_cases: int | None) -> list[Case]:
    if n_cases is not None and n_cases < 1:
        raise ValueError(f"--cases must be >= 1, got {n_cases}")
    return cases[:n_cases] if n_cases else cases


def phantom_target(preset_name: str = "quick", n_cases: int | None = None) -> TargetData:
    """The preset's downstream training split (its first `n_cases` cases when given)."""
    data = preset(preset_name).data
    cohort = build_cohort(data)
    cases = _limit(cohort.train, n_cases)
    description = (f"phantom, {preset_name} preset: downstream training split, {len(cases)} of "
                   f"{len(cohort.train)} cases, grid {'x'.join(map(str, data.shape))}")
    return TargetData(description, cases, cohort.reference, data.data_seed,
                      [f"excluded {e['case']}: {e['reason']}" for e in cohort.excluded])


def folder_target(path: Path, preset_name: str = "quick", n_cases: int | None = None, layout: str | None = None,
                  **reader: object) -> TargetData:
    """Every usable case of a real folder on the preset's grid; `reader`: dwi, columns, label_rule,
    series (as `taskalign study --data` takes them). ValueError when no case is usable."""
    from taskalign.data.real import detect_layout, read_folder
    from taskalign.data.real.check import no_usable_case
    from taskalign.data.real.folder import reader_options

    base = preset(preset_name).data
    layout = layout or detect_layout(path)
    data = dataclasses.replace(base, source="real", path=str(Path(path).resolve()), layout=layout,
                               dwi=reader.get("dwi"), columns=tuple((reader.get("columns") or {}).items()),
                               label_rule=reader.get("label_rule"), series=tuple((reader.get("series") or {}).items()))
    result = read_folder(path, layout, crop=tuple(data.shape), spacing_mm=tuple(data.spacing_mm),
                         check_gzip="crc", **reader_options(layout, path, dwi=data.dwi, columns=dict(data.columns) or None,
                                                            label_rule=data.label_rule, series=dict(data.series) or None))
    if not result.cases:
        raise InputError(no_usable_case(result) + f"; run `taskalign data check {path}`")
    notes = [f"excluded {p.case} ({p.file}): {p.message}" for p in result.problems]
    usable = []
    for case in result.cases:
        reason = check_case(case)
        notes += [f"excluded {case.case_id}: {reason}"] if reason else []
        usable += [] if reason else [case]
    if not usable:
        raise ValueError(f"{path}: no usable case ({'; '.join(notes)})")
    cases = _limit(usable, n_cases)
    description = (f"folder {path} ({result.layout}): {len(cases)} of {len(usable)} usable cases, resampled to "
                   f"{'x'.join(map(str, data.shape))} voxels at {'x'.join(map(str, data.spacing_mm))} mm")
    return TargetData(description, cases, reference_cases(data), data.data_seed, notes + list(result.notes))
