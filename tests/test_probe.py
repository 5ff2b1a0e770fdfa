"""Frozen probes: the pieces that decide what a probe measures."""
from __future__ import annotations

import numpy as np
import pytest

from taskalign.data.phantom import phantom_case
from taskalign.probe.evaluate import paired_bootstrap, score
from taskalign.probe.features import effective_rank, pool_to_grid, probe_grid, spread
from taskalign.probe.probes import Table, finding_cell, ground_truth, out_of_fold, semantic_table


def test_probe_grid_and_pooling():
    assert probe_grid((16, 48, 48)) == (8, 12, 12) and probe_grid((1, 3, 3)) == (1, 1, 1)
    mask = np.zeros((16, 48, 48))
    mask[:2, :4, :4] = 1                        # exactly one probe cell
    pooled = pool_to_grid(mask, (8, 12, 12))
    assert pooled[0, 0, 0] == 1.0 and pooled.sum() == 1.0


def test_finding_cell_lands_on_the_lesion():
    """The cell computed from a finding's centre in mm holds that finding's voxels."""
    hits = 0
    for i in range(40):
        case = phantom_case(i, seed=3, cohort="probe")
        for f in case.meta["lesions"]:
            if not f["in_grid"] or not f["significant"]:
                continue
            cell = finding_cell(case, f["center"], probe_grid(case.shape))
            if cell is None:
                continue
            cspca = pool_to_grid(case.lesion >= 2, probe_grid(case.shape))
            z, y, x = cell
            hits += cspca[max(z - 1, 0):z + 2, max(y - 1, 0):y + 2, max(x - 1, 0):x + 2].max() > 0
    assert hits >= 5


def test_ground_truth_and_case_table():
    cases = [phantom_case(i, seed=0, cohort="probe") for i in range(6)]
    truth = ground_truth(cases, (8, 12, 12))
    assert truth.gland.shape == (6, 8, 12, 12) and set(truth.labels) <= {0, 1}
    assert all(label in (0, 1) for _, _, label in truth.findings)
    cells = np.random.default_rng(0).normal(size=(6, 8, 12, 12, 5)).astype(np.float32)
    table = semantic_table("cspca_case", cells, truth)
    assert table.x.shape == (6, 10) and list(table.groups) == list(range(6))


def test_out_of_fold_never_trains_on_the_case_it_predicts():
    """A feature that memorises the case (its id) is useless out of fold when folds group by case."""
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(40), 5)
    labels = np.repeat(rng.integers(0, 2, 40), 5)
    x = np.eye(40)[groups] + 0.01 * rng.normal(size=(200, 40))   # one-hot case identity only
    pred = out_of_fold(Table(x, labels, groups), regression=False)
    assert abs(score("auroc", labels, pred) - 0.5) < 0.15
    signal = np.c_[labels + 0.3 * rng.normal(size=200), rng.normal(size=200)]
    assert score("auroc", labels, out_of_fold(Table(signal, labels, groups), regression=False)) > 0.9


def test_ridge_r2_and_paired_bootstrap():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 4))
    y = (x @ np.array([1.0, -2.0, 0.0, 0.5]))[:, None] + 0.1 * rng.normal(size=(300, 1))
    groups = np.repeat(np.arange(60), 5)
    good = out_of_fold(Table(x, y, groups), regression=True)
    bad = out_of_fold(Table(rng.normal(size=(300, 4)), y, groups), regression=True)
    assert score("r2", y, good) > 0.95 and score("r2", y, bad) < 0.05
    lo, hi = paired_bootstrap("r2", Table(x, y, groups), bad, good, reps=200)
    assert 0.8 < lo <= hi
    lo, hi = paired_bootstrap("r2", Table(x, y, groups), good, good, reps=50)
    assert lo == hi == 0.0


def test_spread_and_effective_rank():
    rng = np.random.default_rng(0)
    spread_out = rng.normal(size=(50, 8))
    collapsed = np.ones((50, 8)) * 10 + 1e-3 * rng.normal(size=(50, 8))
    assert spread(spread_out) > 1.0 and spread(collapsed) < 1e-3
    assert effective_rank(spread_out) > 6 and effective_rank(rng.normal(size=(50, 1)) @ np.ones((1, 8))) < 1.01
    with pytest.raises(ValueError, match="n >= 2"):
        spread(np.zeros((0, 3)))
