"""Cohorts and splits: the pretraining cohort, the downstream train/val/test split and the
reference probe set, fixed by the data seed and saved as `splits.json` (DESIGN.md §7).

The pretraining cohort and the reference probe set come from their own phantom seeds, so no
downstream validation or test case is ever seen in pretraining.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from taskalign.data.case import Case
from taskalign.errors import InputError
from taskalign.study.config import DataConfig


@dataclass
class Cohort:
    pretrain: list[Case]
    train: list[Case]
    val: list[Case]
    test: list[Case]
    reference: list[Case]
    excluded: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def splits(self, data_seed: int) -> dict:
        ids = lambda cases: [c.case_id for c in cases]  # noqa: E731
        out = {"data_seed": data_seed, "train": ids(self.train), "val": ids(self.val), "test": ids(self.test),
               "pretrain": ids(self.pretrain), "reference": ids(self.reference), "excluded": self.excluded}
        if self.notes:
            out["notes"] = self.notes
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


def phantom_cohort(cfg: DataConfig) -> Cohort:
    from taskalign.data.phantom import make_cohort

    kw = dict(shape=tuple(cfg.shape), spacing_mm=tuple(cfg.spacing_mm))
    n_down = cfg.n_train + cfg.n_val + cfg.n_test
    excluded: list[dict[str, str]] = []
    down = _usable(make_cohort(n_down, seed=cfg.data_seed, cohort="downstream", **kw), excluded)
    pre = _usable(make_cohort(cfg.n_pretrain, seed=cfg.data_seed, cohort="pretrain", **kw), excluded)
    # the reference probe set: a third disjoint draw (its own seed), shared by every task
    ref = make_cohort(cfg.n_reference, seed=cfg.data_seed + 7919, cohort="pretrain", **kw)
    order = np.random.default_rng(cfg.data_seed).permutation(len(down))
    down = [down[i] for i in order]
    a, b = cfg.n_train, cfg.n_train + cfg.n_val
    return Cohort(pre, down[:a], down[a:b], down[b:], ref, excluded)


def build_cohort(cfg: DataConfig, cache_dir: str | None = None) -> Cohort:
    """The study's cohort: all phantom, or a real folder's downstream cases (`source="real"`,
    see `taskalign.study.real_cohort`) with the phantom pretraining cohort and reference set."""
    if cfg.source == "phantom":
        return phantom_cohort(cfg)
    if cfg.source == "real":
        from taskalign.study.real_cohort import real_cohort
        return real_cohort(cfg, cache_dir)
    raise InputError(f"data source {cfg.source!r} is not known to the study; use 'phantom' or 'real' (a folder)")
