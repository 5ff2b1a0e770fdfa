"""A study on a real folder (DESIGN.md §5): which cases go where.

- Downstream cases: the folder's usable cases (`read_folder`), each resampled onto the preset's
  grid (`DataConfig.shape` voxels at `spacing_mm`, centred on the gland, or on the image centre
  when the case has no gland mask), since the encoders are built for that input; then split into
  train / val / test by the data seed, in the proportions of the preset's n_train : n_val : n_test
  (at least 1 train, 1 validation and 4 test cases).
- Broken cases (every problem kind of `taskalign data check`) go to `cohort.excluded` with their
  reason, and the study goes on with the rest.
- The pretraining cohort and the reference probe set stay phantom (their own seeds), as in a
  phantom study: the in-house VFMs are pretrained on the built-in phantom, and the reference
  kernel of each encoder is the same whatever the downstream data.
"""
from __future__ import annotations

import numpy as np

from taskalign.data.real import read_folder
from taskalign.data.real.cache import PreprocessCache
from taskalign.errors import InputError
from taskalign.study.cohort import Cohort, _usable
from taskalign.study.config import DataConfig


MIN_TEST = 4   # the alignment stage's debiased CKA needs at least 4 probe (test) cases


def split_sizes(n: int, cfg: DataConfig) -> tuple[int, int, int]:
    """(n_train, n_val, n_test) of n cases in the preset's proportions: at least 1 train and 1
    validation case and `MIN_TEST` test cases, so at least 6 cases."""
    if n < MIN_TEST + 2:
        raise InputError(f"{cfg.path}: only {n} usable case(s); a study needs at least {MIN_TEST + 2} "
                         f"(1 train, 1 validation, {MIN_TEST} test). Run `taskalign data check` to see what is "
                         "wrong with the others")
    total = cfg.n_train + cfg.n_val + cfg.n_test
    n_val = max(1, round(n * cfg.n_val / total))
    n_test = max(MIN_TEST, round(n * cfg.n_test / total))
    n_train = max(1, n - n_val - n_test)
    n_test = n - n_train - n_val
    return n_train, n_val, n_test


def real_cohort(cfg: DataConfig, cache_dir: str | None = None) -> Cohort:
    """Cohort of a real folder (see the module doc); `cache_dir` holds the preprocessing cache."""
    from taskalign.data.phantom import make_cohort

    if not cfg.path:
        raise InputError("a real-data study needs DataConfig.path (taskalign study --data PATH)")
    options = {"dwi": cfg.dwi} if cfg.layout == "msd" else {}
    cache = PreprocessCache(cache_dir) if cache_dir else None
    result = read_folder(cfg.path, cfg.layout, crop=tuple(cfg.shape), spacing_mm=tuple(cfg.spacing_mm),
                         cache=cache, **options)
    excluded = result.excluded
    down = _usable(result.cases, excluded)          # a crop may still leave a constant volume
    order = np.random.default_rng(cfg.data_seed).permutation(len(down))
    down = [down[i] for i in order]
    n_train, n_val, _ = split_sizes(len(down), cfg)
    kw = dict(shape=tuple(cfg.shape), spacing_mm=tuple(cfg.spacing_mm))
    pre = _usable(make_cohort(cfg.n_pretrain, seed=cfg.data_seed, cohort="pretrain", **kw), excluded)
    ref = make_cohort(cfg.n_reference, seed=cfg.data_seed + 7919, cohort="pretrain", **kw)
    notes = [f"downstream cases from {cfg.path} ({result.layout}); pretraining cohort and reference set: phantom"]
    notes += result.notes
    a, b = n_train, n_train + n_val
    return Cohort(pre, down[:a], down[a:b], down[b:], ref, excluded, notes)
