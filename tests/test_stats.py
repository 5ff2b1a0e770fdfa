"""Study statistics: correlations with permutation p-values and bootstrap intervals; the sign test."""
import itertools

import numpy as np
import pytest
from scipy import stats as sps

from taskalign.stats import correlation, pearson, sign_agreement, sign_test_p_value, spearman
from taskalign.stats.correlation import _weighted_pearson, _weighted_ranks, bootstrap_coefficients

X = np.array([0.11, 0.52, 0.3, 0.97, 0.45, 0.45, 0.8, 0.05, 0.66, 0.3])
Y = np.array([2.0, 3.1, 2.2, 5.0, 2.9, 3.5, 3.4, 1.0, 4.2, 2.2])       # ties in both


def test_coefficients_match_scipy():
    assert pearson(X, Y, permutations=0, bootstrap=0).coefficient == pytest.approx(sps.pearsonr(X, Y)[0], rel=1e-12)
    assert spearman(X, Y, permutations=0, bootstrap=0).coefficient == pytest.approx(sps.spearmanr(X, Y)[0], rel=1e-12)
    res = spearman(X, Y)
    assert (res.n, res.method, res.permutations, res.bootstrap, res.confidence) == (10, "spearman", 10000, 2000, 0.95)
    assert res.ci_low < res.coefficient < res.ci_high


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_permutation_p_value_matches_exact_enumeration(method):
    """All 7! pairings enumerated with scipy's coefficient; ours samples B = 20000 of them."""
    x, y = X[:7], Y[:7]
    stat = (lambda a, b: sps.pearsonr(a, b)[0]) if method == "pearson" else (lambda a, b: sps.spearmanr(a, b)[0])
    observed = abs(stat(x, y))
    null = np.array([abs(stat(x, y[list(p)])) for p in itertools.permutations(range(7))])
    exact = float(np.mean(null >= observed - 1e-12))
    ours = correlation(x, y, method, permutations=20000, bootstrap=0, seed=1).p_value
    assert ours == pytest.approx(exact, abs=4 * np.sqrt(exact * (1 - exact) / 20000) + 1e-4)


def test_permutation_p_value_convention_and_seed():
    rng = np.random.default_rng(2)
    x = rng.normal(size=200)
    y = x + 0.1 * rng.normal(size=200)
    assert pearson(x, y, permutations=99, bootstrap=0, seed=4).p_value == 1 / 100   # (1 + 0) / (1 + B), never 0
    z = rng.normal(size=200)
    first, again = (spearman(x, z, permutations=500, bootstrap=100, seed=4) for _ in range(2))
    assert first == again                                                            # seeded: reproducible
    other = spearman(x, z, permutations=500, bootstrap=100, seed=5)
    assert other.p_value != first.p_value and other.coefficient == first.coefficient
    assert 0.0 < first.p_value <= 1.0 and round(first.p_value * 501) == first.p_value * 501


def test_weighted_ranks_equal_ranks_of_the_resampled_data():
    rng = np.random.default_rng(3)
    counts = rng.multinomial(X.size, np.full(X.size, 1 / X.size), size=20).astype(float)
    r_weighted = _weighted_pearson(_weighted_ranks(X, counts), _weighted_ranks(Y, counts), counts)
    for row, r in zip(counts.astype(int), r_weighted):
        xs, ys = np.repeat(X, row), np.repeat(Y, row)
        want = sps.spearmanr(xs, ys)[0] if np.ptp(xs) and np.ptp(ys) else np.nan
        assert (np.isnan(want) and np.isnan(r)) or r == pytest.approx(want, rel=1e-10)
    r_p = _weighted_pearson(X[None], Y[None], counts)
    for row, r in zip(counts.astype(int), r_p):
        assert r == pytest.approx(sps.pearsonr(np.repeat(X, row), np.repeat(Y, row))[0], rel=1e-10)


def test_bootstrap_resamples_whole_units():
    """With units, every row of a unit moves together: a unit whose rows are identical acts as
    one point, so the interval is wider than when the rows are treated as independent."""
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(8, 2))
    x = np.repeat(centres[:, 0], 10) + 0.01 * rng.normal(size=80)
    y = np.repeat(centres[:, 0] + centres[:, 1], 10) + 0.01 * rng.normal(size=80)
    units = np.repeat(np.arange(8), 10)
    by_unit = pearson(x, y, permutations=0, units=units)
    by_row = pearson(x, y, permutations=0)
    assert by_unit.n_units == 8 and by_row.n_units == 80
    assert (by_unit.ci_high - by_unit.ci_low) > 2 * (by_row.ci_high - by_row.ci_low)
    with pytest.raises(ValueError, match="one label per observation"):
        bootstrap_coefficients(x, y, "pearson", 10, 0, units=units[:5])


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_bootstrap_interval_covers_true_correlation(method):
    rho, n, reps = 0.5, 40, 200
    truth = rho if method == "pearson" else 6 / np.pi * np.arcsin(rho / 2)   # Spearman of a bivariate normal
    rng = np.random.default_rng(6)
    covered = 0
    for r in range(reps):
        x = rng.normal(size=n)
        y = rho * x + np.sqrt(1 - rho**2) * rng.normal(size=n)
        res = correlation(x, y, method, permutations=0, bootstrap=400, seed=r)
        covered += res.ci_low <= truth <= res.ci_high
    assert 0.86 <= covered / reps <= 0.99             # nominal 0.95; percentile intervals run a little low


@pytest.mark.parametrize("k,n", [(0, 1), (1, 1), (3, 10), (8, 10), (5, 10), (0, 12), (9, 12), (15, 20), (2, 7)])
def test_sign_test_matches_scipy_binomtest(k, n):
    assert sign_test_p_value(k, n) == pytest.approx(sps.binomtest(k, n, 0.5).pvalue, rel=1e-12)


def test_sign_agreement_counts_and_test():
    per_task = {f"task{i}": {"profound": (0.1, 5.0), "provicnet": (0.3, 2.0)} for i in range(7)}   # agree
    per_task["task7"] = {"profound": (0.1, 1.0), "provicnet": (0.3, 2.0)}                        # disagree
    per_task["task8"] = {"profound": (0.2, 1.0), "provicnet": (0.2, 2.0)}                        # tie in D2P
    per_task["task9"] = {"profound": (0.5, 1.0), "provicnet": (0.2, 3.0)}                        # agree (reversed)
    res = sign_agreement(per_task)
    assert (res.agree, res.disagree, res.ties, res.n_tasks) == (8, 1, 1, 10)
    assert res.p_value == pytest.approx(sps.binomtest(8, 9).pvalue)
    assert res.encoders == ("profound", "provicnet") and res.per_task["task8"] == "tie"


def test_sign_agreement_more_than_two_encoders_needs_a_pair():
    per_task = {"t1": {"a": (0.1, 2.0), "b": (0.2, 1.0), "c": (0.3, 0.0)},
                "t2": {"a": (0.1, 1.0), "b": (0.2, 2.0), "c": (0.3, 0.0)}}
    with pytest.raises(ValueError, match="encoders=\\(a, b\\)"):
        sign_agreement(per_task)
    res = sign_agreement(per_task, encoders=("a", "c"))
    assert (res.agree, res.disagree) == (2, 0)
    with pytest.raises(ValueError, match="lacks encoder"):
        sign_agreement(per_task, encoders=("a", "z"))
    with pytest.raises(ValueError, match="finite"):
        sign_agreement({"t": {"a": (np.nan, 1.0), "b": (0.1, 2.0)}})


@pytest.mark.parametrize("x,y,match", [
    ([1, 2], [1, 2], "at least 3"),
    ([1, 2, 3], [1, 2], "one value per observation"),
    ([1, 2, 3, 4], [1, np.nan, 3, 4], r"observation\(s\) \[1\]"),
    ([1, 1, 1, 1], [1, 2, 3, 4], "constant"),
])
def test_bad_inputs_raise(x, y, match):
    with pytest.raises(ValueError, match=match):
        spearman(x, y)


def test_bad_options_raise():
    with pytest.raises(ValueError, match="unknown correlation method"):
        correlation(X, Y, "kendall")
    with pytest.raises(ValueError, match="confidence"):
        pearson(X, Y, confidence=95)
