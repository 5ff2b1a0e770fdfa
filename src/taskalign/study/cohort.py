"""Cohorts and splits: the downstream train/val/test split and the reference probe set, fixed by
the data seed and saved as `splits.json` (DESIGN.md §5, §7). The start weights' pretraining
cohort is not the study's: it is named in their card (`pretrain/<encoder>/<hash>/card.json`).

- Downstream cases: whatever the data source named by `DataConfig.source` gives
  (`taskalign.data.sources.read_source`: the phantom, a real folder, a source you registered),
  on the preset's grid. Cases a source excludes, and cases that would poison training
  (`check_case`), go to `cohort.excluded` with their reason; the study goes on with the rest.
- Split by the data seed: the preset's n_train / n_val / n_test when the source gave exactly that
  many usable cases, else in their proportions (at least 1 train, 1 validation and `MIN_TEST`
  test cases).
- The reference probe set is phantom (the pretraining cohort's kind of case, its own seed),
  whatever the downstream source, so each encoder's reference kernel is the same for every
  source. The in-house recipes pretrain on their own phantom cohort (other patients and seeds),
  so no downstream case is ever seen in pretraining.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from taskalign.data.case import Case
from taskalign.data.sources import read_source
from taskalign.errors import InputError
from taskalign.study.config import DataConfig

MIN_TEST = 4   # the alignment stage's debiased CKA needs at least 4 probe (test) cases
REFERENCE_SEED_OFFSET = 7919
PRETRAINING_NOTE = ("the start weights' own cohort: in-house weights name theirs in "
                    "pretrain/<encoder>/<hash>/card.json (the recipe's phantom cohort, other patients and seeds)")


@dataclass
class Cohort:
    train: list[Case]
    val: list[Case]
    test: list[Case]
    reference: list[Case]
    excluded: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    label_rule: str | None = None          # real folders: how the csPCa label was made from a score

    def splits(self, data_seed: int) -> dict:
        ids = lambda cases: [c.case_id for c in cases]  # noqa: E731
        out = {"data_seed": data_seed, "train": ids(self.train), "val": ids(self.val), "test": ids(self.test),
               "pretraining": PRETRAINING_NOTE, "reference": ids(self.reference), "excluded": self.excluded}
        if self.notes:
            out["notes"] = self.notes
        if self.label_rule:
            out["label_rule"] = self.label_rule
        return out


def check_case(case: Case) -> str | None:
    """Why a case cannot be used, or None. Cheap checks that would poison training."""
    if not np.isfinite(case.image).all():
        return "image has NaN or Inf voxels"
    absent = case.meta.get("absent_sequences", ())     # e.g. MSD's DWI, zero by the reader's stated choice
    for i, name in enumerate(("t2w", "dwi", "adc")):
        if name not in absent and float(case.image[i].std()) == 0.0:
            return f"{name} is empty or constant"
    return None


def _usable(cases: list[Case], excluded: list[dict[str, str]]) -> list[Case]:
    keep = []
    for case in cases:
        reason = check_case(case)
        if reason is None:
            keep.append(case)
        else:
            excluded.append({"case": case.case_id, "reason": reason})
    return keep


def split_sizes(n: int, cfg: DataConfig) -> tuple[int, int, int]:
    """(n_train, n_val, n_test) of n usable cases: the preset's counts when n is their total,
    else in their proportions with at least 1 train and 1 validation case and `MIN_TEST` test
    cases (so at least 6 cases)."""
    total = cfg.n_train + cfg.n_val + cfg.n_test
    if n == total:
        return cfg.n_train, cfg.n_val, cfg.n_test
    if n < MIN_TEST + 2:
        where = cfg.path or f"data source {cfg.source!r}"
        raise InputError(f"{where}: only {n} usable case(s); a study needs at least {MIN_TEST + 2} "
                         f"(1 train, 1 validation, {MIN_TEST} test). Run `taskalign data check` to see what is "
                         "wrong with the others")
    n_val = max(1, round(n * cfg.n_val / total))
    n_test = max(MIN_TEST, round(n * cfg.n_test / total))
    n_train = max(1, n - n_val - n_test)
    n_test = n - n_train - n_val
    return n_train, n_val, n_test


def source_arguments(cfg: DataConfig, cache_dir: str | None) -> dict:
    """What the study offers the downstream source (see `taskalign.data.sources.STUDY_ARGUMENTS`)."""
    return {"n": cfg.n_train + cfg.n_val + cfg.n_test, "seed": cfg.data_seed, "cohort": "downstream",
            "shape": tuple(cfg.shape), "spacing_mm": tuple(cfg.spacing_mm), "path": cfg.path,
            "layout": cfg.layout, "dwi": cfg.dwi, "cache_dir": cache_dir, "columns": dict(cfg.columns),
            "label_rule": cfg.label_rule, "series": dict(cfg.series)}


def build_cohort(cfg: DataConfig, cache_dir: str | None = None) -> Cohort:
    """The study's cohort (see the module doc); `cache_dir` is offered to the source (real
    folders keep their preprocessed cases there)."""
    grid = {"shape": tuple(cfg.shape), "spacing_mm": tuple(cfg.spacing_mm)}
    read = read_source(cfg.source, source_arguments(cfg, cache_dir))
    excluded = list(read.excluded)
    down = _usable(read.cases, excluded)
    order = np.random.default_rng(cfg.data_seed).permutation(len(down))
    down = [down[i] for i in order]
    n_train, n_val, _ = split_sizes(len(down), cfg)
    ref = read_source("phantom", {"n": cfg.n_reference, "seed": cfg.data_seed + REFERENCE_SEED_OFFSET,
                                  "cohort": "pretrain", **grid}).cases
    notes = list(read.notes)
    if cfg.source != "phantom":   # said in the source's first note, where a reader of splits.json looks
        first = notes[0] if notes else f"downstream cases from the data source {cfg.source!r}"
        notes[:1] = [f"{first}; reference set: phantom"]
    a, b = n_train, n_train + n_val
    return Cohort(down[:a], down[a:b], down[b:], ref, excluded, notes, label_rule=cfg.label_rule)
