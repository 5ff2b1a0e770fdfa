"""The report's statistics against scipy and brute force: seed means with t intervals, paired
per-case comparisons, weighted (bootstrap) metrics and MMD², correlations over cells; and the
intervals cover the true value at about the nominal rate in simulations."""
import math

import numpy as np
import pytest
import torch
from scipy import stats as sps
from sklearn.metrics import roc_auc_score

from taskalign.align.kernels import Kernel
from taskalign.align.mmd import mmd2
from taskalign.stats import paired_comparison, seed_stats
from taskalign.study.analysis.correlate import _interval, cell_correlations, cell_interval
from taskalign.study.analysis.resample import paired_h, weighted_auroc, weighted_mean, weighted_paired_mmd2

RNG = np.random.default_rng(11)


def test_seed_stats_match_scipy_t_interval():
    x = np.array([0.61, 0.55, 0.72, 0.58])
    s = seed_stats(list(x) + [float("nan"), None])
    low, high = sps.t.interval(0.95, x.size - 1, loc=x.mean(), scale=sps.sem(x))
    assert (s.n, s.mean, s.sd) == (4, pytest.approx(x.mean()), pytest.approx(x.std(ddof=1)))
    d = s.to_dict()
    assert (d["ci95_low"], d["ci95_high"]) == (pytest.approx(low), pytest.approx(high))
    assert math.isnan(seed_stats([1.0]).ci95) and seed_stats([]).n == 0


def test_seed_stats_interval_covers_the_mean_at_the_nominal_rate():
    hits = 0
    for _ in range(1000):
        s = seed_stats(RNG.normal(3.0, 2.0, size=3))
        hits += s.mean - s.ci95 <= 3.0 <= s.mean + s.ci95
    assert 0.93 <= hits / 1000 <= 0.97


def test_paired_comparison_matches_scipy_wilcoxon():
    a = np.array([0.71, 0.64, 0.80, 0.55, 0.62, 0.90, 0.47, 0.66, np.nan])
    b = np.array([0.69, 0.60, 0.71, 0.58, 0.52, 0.85, 0.44, 0.61, 0.5])
    res = paired_comparison(a, b, bootstrap=2000, seed=3)
    want = sps.wilcoxon(a[:-1] - b[:-1])
    assert res.n == 8 and res.n_nonzero == 8
    assert res.statistic == pytest.approx(want.statistic) and res.p_value == pytest.approx(want.pvalue)
    assert res.mean_difference == pytest.approx(np.mean(a[:-1] - b[:-1]))
    assert res.ci_low < res.mean_difference < res.ci_high
    assert paired_comparison(a, b, bootstrap=2000, seed=3) == res            # seeded
    same = paired_comparison([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert same.mean_difference == 0 and math.isnan(same.p_value)            # no non-zero difference
    with pytest.raises(ValueError, match="one value per case"):
        paired_comparison([1.0, 2.0], [1.0])


def test_paired_bootstrap_interval_covers_the_true_difference():
    hits, reps = 0, 300
    for r in range(reps):
        b = RNG.normal(size=30)
        a = b + 0.2 + RNG.normal(scale=0.5, size=30)
        res = paired_comparison(a, b, bootstrap=500, seed=r)
        hits += res.ci_low <= 0.2 <= res.ci_high
    assert 0.88 <= hits / reps <= 0.98        # nominal 0.95; percentile intervals run a little low


def test_weighted_metrics_equal_the_metrics_of_the_resampled_cases():
    labels = np.array([0, 1, 1, 0, 1, 0, 0, 1, 1, 0])
    scores = np.array([0.1, 0.8, 0.4, 0.4, 0.9, 0.3, 0.5, 0.35, 0.7, 0.2])
    values = np.array([1.0, np.nan, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0])
    w = RNG.multinomial(10, np.full(10, 0.1), size=50).astype(float)
    w[0] = 1.0
    auc, mean = weighted_auroc(labels, scores, w), weighted_mean(values, w)
    assert auc[0] == pytest.approx(roc_auc_score(labels, scores)) and mean[0] == pytest.approx(np.nanmean(values))
    for row, a, m in zip(w.astype(int), auc, mean):
        ls, ss, vs = np.repeat(labels, row), np.repeat(scores, row), np.repeat(values, row)
        want = roc_auc_score(ls, ss) if 0 < ls.sum() < ls.size else np.nan
        assert (np.isnan(want) and np.isnan(a)) or a == pytest.approx(want)
        assert m == pytest.approx(np.nanmean(vs))


def test_weighted_paired_mmd2_is_the_u_statistic_over_distinct_cases():
    x = torch.randn(12, 5, dtype=torch.float64)
    y = x + 0.5 * torch.randn(12, 5, dtype=torch.float64)
    kernel = Kernel("rbf", (0.5, 1.0, 2.0), "test")
    h = paired_h(x, y, kernel)
    full = weighted_paired_mmd2(h, np.ones((1, 12)))[0]
    assert full == pytest.approx(mmd2(x, y, kernel=kernel, estimator="paired-u", permutations=0).mmd2, rel=1e-10)
    w = RNG.multinomial(12, np.full(12, 1 / 12), size=5).astype(float)
    kxx, kyy, kxy = kernel(x).numpy(), kernel(y).numpy(), kernel(x, y).numpy()
    for row, got in zip(w.astype(int), weighted_paired_mmd2(h, w)):
        idx = np.repeat(np.arange(12), row)               # the resampled cases, with repeats
        terms = [kxx[i, j] + kyy[i, j] - kxy[i, j] - kxy[j, i]
                 for p, i in enumerate(idx) for q, j in enumerate(idx) if p != q and i != j]
        assert got == pytest.approx(np.sum(terms) / sum(1 for p, i in enumerate(idx) for q, j in enumerate(idx)
                                                          if p != q and i != j), rel=1e-10)


def test_resampled_energy_distance_is_the_study_estimate():
    """Unit weights give `energy_distance` (features far from the origin, as real ones can be)."""
    from taskalign.align.energy import energy_distance
    from taskalign.study.analysis.resample import paired_energy_h
    x = torch.randn(20, 6, dtype=torch.float32) + 100.0
    y = x + 0.3 * torch.randn(20, 6)
    h = paired_energy_h(x, y)
    assert weighted_paired_mmd2(h, np.ones((1, 20)))[0] == pytest.approx(energy_distance(x, y), rel=1e-9)


def _rows(n_cells=6, seeds=(0, 1, 2)):
    rows = []
    for c in range(n_cells):
        for s in seeds:
            rows.append({"encoder": f"e{c % 2}", "task": f"t{c // 2}", "n_train": 16, "seed": s, "metric": "psnr",
                         "higher_is_better": True, "d2p": c + 0.3 * RNG.normal(), "rpg": -2.0 * c + RNG.normal(),
                         "convergence_epoch": float(c % 3 + s)})
    return rows


def test_cell_correlations_use_seed_means_as_points(tmp_path):
    rows = _rows()
    recs = {(r["alignment"], r["outcome"]): r
            for r in cell_correlations(tmp_path, rows, ["d2p"], ["rpg", "convergence_epoch"], seed=0,
                                       permutations=2000, bootstrap=500)}
    rec = recs[("d2p", "rpg")]
    cells = list(dict.fromkeys((r["encoder"], r["task"]) for r in rows))
    x = [np.mean([r["d2p"] for r in rows if (r["encoder"], r["task"]) == k]) for k in cells]
    y = [np.mean([r["rpg"] for r in rows if (r["encoder"], r["task"]) == k]) for k in cells]
    assert (rec["n"], rec["n_seeds"], rec["bootstrap_over"]) == (6, 3, "seeds")   # no per-case files here
    assert rec["spearman"] == pytest.approx(sps.spearmanr(x, y)[0]) and rec["pearson"] == pytest.approx(sps.pearsonr(x, y)[0])
    assert rec["spearman_ci"][0] <= rec["spearman"] <= rec["spearman_ci"][1]
    assert 0 < rec["spearman_p"] <= 1 and rec["pearson_bootstrap_valid"] > 400
    few = cell_correlations(tmp_path, _rows(n_cells=2), ["d2p"], ["rpg"], seed=0, permutations=10, bootstrap=10)[0]
    assert few["n"] == 2 and math.isnan(few["spearman"]) and "at least 3" in few["spearman_note"]


@pytest.mark.parametrize("method", ["spearman", "pearson"])
def test_cell_interval_covers_zero_when_cells_are_unrelated(method):
    """Ten cells whose alignment and outcome are independent, each measured almost exactly: the
    fixed-cell interval only reflects measurement and excludes 0 in most studies, the cell
    interval covers the true 0 at about the nominal rate (the permutation test's question)."""
    rng = np.random.default_rng(21)
    n_cells, reps, sims = 10, 400, 150
    covered_cells = covered_fixed = 0
    for sim in range(sims):
        x0, y0 = rng.normal(size=n_cells), rng.normal(size=n_cells)
        bx = x0 + 0.01 * rng.normal(size=(reps, n_cells))        # replicate rows: tiny measurement noise
        by = y0 + 0.01 * rng.normal(size=(reps, n_cells))
        low, high, valid = cell_interval(bx, by, method, seed=sim)
        covered_cells += low <= 0 <= high
        f_low, f_high, _ = _interval(bx, by, method)
        covered_fixed += f_low <= 0 <= f_high
        assert valid > 0.9 * reps
    assert 0.85 <= covered_cells / sims <= 0.995
    assert covered_fixed / sims < 0.5


def test_cell_correlations_report_both_intervals(tmp_path):
    rec = cell_correlations(tmp_path, _rows(n_cells=8), ["d2p"], ["rpg"], seed=0, permutations=500,
                            bootstrap=400)[0]
    for method in ("spearman", "pearson"):
        low, high = rec[f"{method}_ci_cells"]
        assert low <= rec[method] <= high and rec[f"{method}_bootstrap_cells_valid"] > 300
    width = lambda ci: ci[1] - ci[0]  # noqa: E731
    assert width(rec["pearson_ci_cells"]) > width(rec["pearson_ci"])      # cells vary more than seeds here
