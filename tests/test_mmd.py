"""MMD² estimators, kernels, permutation tests and the blocked path (taskalign.align)."""
import math

import numpy as np
import pytest
import torch

from taskalign.align import Kernel, mmd2, mmd2_biased, mmd2_paired, mmd2_unbiased, resolve_kernel
from taskalign.align.estimators import linear_time_test
from taskalign.align.kernels import lower_median_offdiagonal, median_distance, squared_distances
from taskalign.align.permutation import (paired_h_matrix, paired_permutation_test, paired_sign_batches,
                                         two_sample_label_batches, two_sample_permutation_test_)



def sample(n, d, shift=0.0, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=gen, dtype=dtype) + shift


def k_scalar(kernel: Kernel, a, b) -> float:
    if kernel.name == "linear":
        return float(a @ b)
    dist = math.sqrt(float(((a - b) ** 2).sum()))
    if kernel.name == "rbf":
        return sum(math.exp(-dist**2 / (2 * s * s)) for s in kernel.bandwidths) / len(kernel.bandwidths)
    return sum(math.exp(-dist / s) for s in kernel.bandwidths) / len(kernel.bandwidths)


def brute_force(x, y, kernel, estimator):
    """Double loops straight from Gretton et al. (2012) Eq. 3, Eq. 5 and Lemma 6."""
    m, n = len(x), len(y)
    kxx = [[k_scalar(kernel, x[i], x[j]) for j in range(m)] for i in range(m)]
    kyy = [[k_scalar(kernel, y[i], y[j]) for j in range(n)] for i in range(n)]
    kxy = [[k_scalar(kernel, x[i], y[j]) for j in range(n)] for i in range(m)]
    if estimator == "biased-v":
        return (sum(map(sum, kxx)) / m**2 + sum(map(sum, kyy)) / n**2 - 2 * sum(map(sum, kxy)) / (m * n))
    if estimator == "unbiased-u":
        xx = sum(kxx[i][j] for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
        yy = sum(kyy[i][j] for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
        return xx + yy - 2 * sum(map(sum, kxy)) / (m * n)
    h = sum(kxx[i][j] + kyy[i][j] - kxy[i][j] - kxy[j][i] for i in range(n) for j in range(n) if i != j)
    return h / (n * (n - 1))


KERNELS = [Kernel("rbf", (2.0,)), Kernel("rbf", (0.7, 1.5, 3.0)), Kernel("laplacian", (3.0,)), Kernel("linear")]


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: f"{k.name}{len(k.bandwidths)}")
@pytest.mark.parametrize("estimator,m,n", [("unbiased-u", 13, 9), ("biased-v", 8, 12), ("paired-u", 11, 11)])
def test_float64_matches_double_loop(kernel, estimator, m, n):
    x, y = sample(m, 4, seed=1) + 5.0, sample(n, 4, 0.4, seed=2) + 5.0  # a common offset: centring must not matter
    got = mmd2(x, y, kernel=kernel, estimator=estimator).mmd2
    want = brute_force(x, y, kernel, estimator)
    assert got == pytest.approx(want, rel=1e-10, abs=1e-14)


def test_float32_fast_path_close_to_float64():
    x, y = sample(300, 64, seed=3), sample(280, 64, 0.3, seed=4)
    for estimator in ("unbiased-u", "biased-v"):
        ref = mmd2(x, y, estimator=estimator)
        fast = mmd2(x.float(), y.float(), estimator=estimator)
        assert fast.dtype == "float32" and ref.dtype == "float64"
        assert fast.mmd2 == pytest.approx(ref.mmd2, rel=1e-5)
    yp = sample(300, 64, 0.3, seed=41)
    ref, fast = mmd2(x, yp, estimator="paired-u"), mmd2(x.float(), yp.float(), estimator="paired-u")
    assert fast.mmd2 == pytest.approx(ref.mmd2, rel=1e-5)


def test_matches_monai_mmd_metric_linear_kernel():
    """MONAI's MMDMetric (y_mapping=None) is the two-sample unbiased U-statistic (Gretton Eq. 3)
    with the linear kernel k(a, b) = a·b on flattened inputs, equal batch sizes."""
    monai = pytest.importorskip("monai.metrics")
    x, y = sample(40, 16, seed=5), sample(40, 16, 0.2, seed=6)
    theirs = float(monai.MMDMetric()(x, y))
    ours = mmd2_unbiased(x, y, kernel="linear")
    assert ours == pytest.approx(theirs, rel=1e-10)
    # and with image-shaped inputs (B, C, H, W), which MONAI flattens
    xi, yi = x.reshape(40, 1, 4, 4), y.reshape(40, 1, 4, 4)
    assert mmd2_unbiased(xi.reshape(40, -1), yi.reshape(40, -1), kernel="linear") == pytest.approx(
        float(monai.MMDMetric()(xi, yi)), rel=1e-10)


def test_linear_kernel_unbiased_estimates_mean_difference():
    x, y = sample(2000, 3, seed=7), sample(2000, 3, seed=8) + torch.tensor([0.5, 0.0, 0.0], dtype=torch.float64)
    assert mmd2_unbiased(x, y, kernel="linear") == pytest.approx(0.25, abs=0.02)
    assert mmd2_biased(x, y, kernel="linear") == pytest.approx(float(((x.mean(0) - y.mean(0)) ** 2).sum()), rel=1e-10)


def test_paired_estimator_is_unbiased_where_unpaired_is_not():
    """x_i and y_i share a per-image component s_i: H0 holds (same marginals) and the truth for the
    linear kernel is ||δ||². The paired U-statistic averages to it; the two-sample one does not."""
    reps, n, d = 300, 20, 3
    paired, unpaired = [], []
    delta = torch.tensor([0.3, 0.0, 0.0], dtype=torch.float64)
    for r in range(reps):
        s = sample(n, d, seed=10_000 + r) * 2.0
        x, y = s + 0.5 * sample(n, d, seed=20_000 + r), s + delta + 0.5 * sample(n, d, seed=30_000 + r)
        paired.append(mmd2_paired(x, y, kernel="linear"))
        unpaired.append(mmd2_unbiased(x, y, kernel="linear"))
    p, u = np.array(paired), np.array(unpaired)
    se = p.std(ddof=1) / math.sqrt(reps)
    assert abs(p.mean() - 0.09) < 3.5 * se
    assert u.mean() < 0.09 - 5 * u.std(ddof=1) / math.sqrt(reps)   # biased by the i = j cross terms


def test_same_distribution_near_zero_and_shift_detected():
    x, y = sample(150, 10, seed=11), sample(150, 10, seed=12)
    null = mmd2(x, y, permutations=200, seed=1)
    assert abs(null.mmd2) < 0.01 and null.p_value > 0.05
    shifted = mmd2(x, sample(150, 10, 0.5, seed=13), permutations=200, seed=1)
    assert shifted.mmd2 > 10 * abs(null.mmd2)
    assert shifted.p_value == pytest.approx(1 / 201)


@pytest.mark.parametrize("estimator", ["unbiased-u", "biased-v", "paired-u"])
def test_symmetric(estimator):
    x, y = sample(30, 5, seed=14), sample(30, 5, 0.3, seed=15)
    assert mmd2(x, y, estimator=estimator).mmd2 == pytest.approx(mmd2(y, x, estimator=estimator).mmd2, rel=1e-12)


def test_biased_is_nonnegative_and_above_unbiased_at_null():
    x, y = sample(20, 4, seed=16), sample(20, 4, seed=17)
    assert mmd2_biased(x, y) > 0 > mmd2_unbiased(x, y) - 0.05


def test_median_heuristic_convention():
    z = sample(41, 3, seed=18)
    dist = torch.cdist(z, z).numpy()[np.triu_indices(41, 1)]
    want = np.sort(dist)[(dist.size + 1) // 2 - 1]          # lower median of the i < j distances
    assert lower_median_offdiagonal(squared_distances(z)) == pytest.approx(want, rel=1e-12)
    x, y = z[:20], z[20:]
    res = mmd2(x, y)
    assert res.bandwidths == pytest.approx((want,), rel=1e-12) and res.bandwidth == res.bandwidths[0]
    assert "all 41 pooled points" in res.bandwidth_rule
    sigma, rule = median_distance(sample(300, 3, seed=19), max_points=100, seed=0)
    assert "subsample of 100 of the 300" in rule and sigma > 0


def test_given_bandwidths_and_kernel_object():
    x, y = sample(20, 3, seed=20), sample(25, 3, 0.5, seed=21)
    res = mmd2(x, y, bandwidth=[1.0, 2.0])
    assert res.bandwidths == (1.0, 2.0) and res.bandwidth_rule == "given"
    k = Kernel("rbf", (1.0, 2.0))
    assert mmd2(x, y, kernel=k).mmd2 == pytest.approx(res.mmd2, rel=1e-12)
    with pytest.raises(ValueError, match="either a Kernel or a bandwidth"):
        mmd2(x, y, kernel=k, bandwidth=1.0)
    sigma = mmd2(x, y).bandwidths[0]
    scaled = resolve_kernel("rbf", None, torch.cat([x, y]), scales=(0.5, 1.0))
    assert scaled.bandwidths == pytest.approx((0.5 * sigma, sigma), rel=1e-12)


def test_numpy_and_torch_inputs_agree():
    x, y = sample(25, 4, seed=22), sample(30, 4, 0.2, seed=23)
    assert mmd2(x.numpy(), y.numpy()).mmd2 == mmd2(x, y).mmd2


@pytest.mark.parametrize("estimator", ["unbiased-u", "biased-v"])
def test_batched_permutations_equal_naive_loop(estimator):
    x, y = sample(12, 3, seed=24), sample(9, 3, 0.4, seed=25)
    z = torch.cat([x, y])
    kern = Kernel("rbf", (2.0,))
    k = kern(z)
    res = two_sample_permutation_test_(k.clone(), 12, estimator, permutations=50, seed=3, chunk_entries=21 * 7)
    indices = torch.cat(list(two_sample_label_batches(21, 12, 50, 3, chunk_entries=21 * 7)))
    naive = []
    for index in indices:
        rest = torch.tensor([i for i in range(21) if i not in set(index.tolist())])
        naive.append(mmd2(z[index], z[rest], kernel=kern, estimator=estimator).mmd2)
    assert torch.allclose(res.permuted, torch.tensor(naive, dtype=torch.float64), rtol=1e-9, atol=1e-12)
    assert res.observed == pytest.approx(mmd2(x, y, kernel=kern, estimator=estimator).mmd2, rel=1e-9)
    assert res.p_value == (1 + sum(v >= res.observed for v in res.permuted.tolist())) / 51


def test_paired_permutations_swap_within_pairs():
    x, y = sample(10, 3, seed=26), sample(10, 3, 0.3, seed=27)
    kern = Kernel("rbf", (2.0,))
    h = paired_h_matrix(kern(torch.cat([x, y])), 10)
    res = paired_permutation_test(h, permutations=40, seed=5, chunk_entries=30)
    signs = torch.cat(list(paired_sign_batches(10, 40, 5, chunk_entries=30, dtype=h.dtype)))
    naive = []
    for s in signs:
        swap = (s < 0).unsqueeze(1)
        naive.append(mmd2_paired(torch.where(swap, y, x), torch.where(swap, x, y), kernel=kern))
    assert torch.allclose(res.permuted, torch.tensor(naive, dtype=torch.float64), rtol=1e-9, atol=1e-12)
    assert res.observed == pytest.approx(mmd2_paired(x, y, kernel=kern), rel=1e-9)


def _null_p_values(reps, estimator, n=25):
    out = []
    for r in range(reps):
        x, y = sample(n, 3, seed=40_000 + r), sample(n, 3, seed=50_000 + r)
        out.append(mmd2(x, y, estimator=estimator, permutations=99, seed=r).p_value)
    return np.array(out)


@pytest.mark.parametrize("estimator", ["unbiased-u", "paired-u"])
def test_p_value_uniform_under_null(estimator):
    p = _null_p_values(200, estimator)
    # P(p <= 0.05) = 5/100 exactly for B = 99; binomial(200, 0.05) 99.9 % interval is about [2, 20]
    assert 2 <= int((p <= 0.05).sum()) <= 20
    assert 0.4 < float(np.mean(p <= 0.5)) < 0.6
    assert p.min() >= 1 / 100


@pytest.mark.slow
def test_p_value_uniform_under_null_long():
    p = _null_p_values(1000, "unbiased-u", n=20)
    assert 30 <= int((p <= 0.05).sum()) <= 72          # binomial(1000, 0.05), about ±3 sd
    assert np.histogram(p, bins=5, range=(0, 1))[0].min() > 150


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: f"{k.name}{len(k.bandwidths)}")
@pytest.mark.parametrize("estimator", ["unbiased-u", "biased-v", "paired-u"])
def test_blocked_and_dense_paths_agree(kernel, estimator):
    x, y = sample(37, 6, seed=28).float(), sample(37, 6, 0.3, seed=29).float()
    dense = mmd2(x, y, kernel=kernel, estimator=estimator)
    blocked = mmd2(x, y, kernel=kernel, estimator=estimator, max_kernel_entries=100)
    assert (dense.path, blocked.path) == ("dense", "blocked")
    assert blocked.mmd2 == pytest.approx(dense.mmd2, rel=1e-5, abs=1e-7)


def test_blocked_median_heuristic_matches_dense():
    x, y = sample(30, 4, seed=30), sample(33, 4, 0.2, seed=31)
    dense, blocked = mmd2(x, y), mmd2(x, y, max_kernel_entries=64)
    assert blocked.bandwidths == pytest.approx(dense.bandwidths, rel=1e-12)
    assert blocked.mmd2 == pytest.approx(dense.mmd2, rel=1e-10)
    # above median_max_points both paths take the same seeded subsample of pooled rows
    dense, blocked = mmd2(x, y, median_max_points=20), mmd2(x, y, median_max_points=20, max_kernel_entries=64)
    assert blocked.bandwidths == pytest.approx(dense.bandwidths, rel=1e-12)
    assert blocked.bandwidth_rule == dense.bandwidth_rule and "subsample of 20 of the 63" in dense.bandwidth_rule


def test_large_input_p_value_is_stated_never_silent():
    x, y = sample(200, 4, seed=32), sample(200, 4, 0.8, seed=33)
    sub = mmd2(x, y, permutations=100, max_kernel_entries=2000, subsample_per_side=16)
    assert sub.path == "blocked" and "subsample of 16 x-rows and 16 y-rows" in sub.p_value_method
    assert sub.mmd2 == pytest.approx(mmd2(x, y).mmd2, rel=1e-10)     # the statistic still uses all rows
    lin = mmd2(x, y, permutations=100, max_kernel_entries=2000, p_value_method="linear")
    assert "linear-time" in lin.p_value_method and lin.p_value < 0.01
    with pytest.raises(ValueError, match="max_kernel_entries"):
        mmd2(x, y, permutations=100, max_kernel_entries=2000, p_value_method="permutation")
    assert mmd2(x, y).p_value is None and mmd2(x, y).p_value_method == "none"


def test_linear_time_test_detects_shift_and_not_null():
    kern = Kernel("rbf", (3.0,))
    _, p_shift, pairs = linear_time_test(sample(400, 5, seed=34), sample(400, 5, 0.5, seed=35), kern)
    assert pairs == 200 and p_shift < 1e-3
    p_null = [linear_time_test(sample(200, 5, seed=36 + r), sample(200, 5, seed=90 + r), kern)[1] for r in range(40)]
    assert 0.2 < np.mean(p_null) < 0.8


@pytest.mark.parametrize("bad,match", [
    (lambda x, y: mmd2(x, y[:, :3]), "features per row"),
    (lambda x, y: mmd2(x, torch.cat([y[:2], torch.full((1, 4), float("nan")), y[3:]])), r"row\(s\): 2"),
    (lambda x, y: mmd2(x[:0], y), "empty"),
    (lambda x, y: mmd2(x[:5], y, estimator="paired-u"), "one row per pair"),
    (lambda x, y: mmd2(x[:1], y), "at least 2 rows"),
    (lambda x, y: mmd2(x, y, kernel="gauss"), "unknown kernel"),
    (lambda x, y: mmd2(x, y, estimator="u"), "unknown MMD"),
    (lambda x, y: mmd2(x, y, kernel="linear", bandwidth=1.0), "no bandwidth"),
    (lambda x, y: mmd2(x, y, bandwidth=-1.0), "> 0"),
    (lambda x, y: mmd2(x[:, 0], y[:, 0]), "reshape"),
    (lambda x, y: mmd2(x, y, p_value_method="exact"), "p_value_method"),
    (lambda x, y: mmd2(torch.zeros(5, 4), torch.zeros(5, 4)), "median pairwise distance is 0"),
])
def test_bad_inputs_raise(bad, match):
    with pytest.raises(ValueError, match=match):
        bad(sample(10, 4, seed=37), sample(10, 4, seed=38))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gpu_matches_cpu():
    x, y = sample(500, 32, seed=39), sample(400, 32, 0.2, seed=40)
    for estimator in ("unbiased-u", "biased-v"):
        cpu = mmd2(x, y, estimator=estimator, permutations=200, seed=1)
        gpu = mmd2(x.cuda(), y.cuda(), estimator=estimator, permutations=200, seed=1)
        assert gpu.mmd2 == pytest.approx(cpu.mmd2, rel=1e-10)
        assert gpu.p_value == 1 / 201 and gpu.p_value == cpu.p_value      # shifted: no permutation reaches it
    cpu = mmd2(x[:400], y, estimator="paired-u", permutations=200, seed=1)
    gpu = mmd2(x[:400].cuda(), y.cuda(), estimator="paired-u", permutations=200, seed=1)
    assert gpu.mmd2 == pytest.approx(cpu.mmd2, rel=1e-10) and gpu.p_value == cpu.p_value
    null = [mmd2(sample(100, 8, seed=60 + r).cuda(), sample(100, 8, seed=80 + r).cuda(), permutations=99,
                 seed=r).p_value for r in range(60)]
    assert 0.3 < float(np.mean(null)) < 0.7
    big = mmd2(x.float().cuda(), y.float().cuda(), max_kernel_entries=10_000)
    assert big.path == "blocked" and big.mmd2 == pytest.approx(mmd2(x, y).mmd2, rel=1e-4)
