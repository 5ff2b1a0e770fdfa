"""MMD² near the null: a small difference of large kernel sums must survive float32.

Two 2000 × 768 Gaussian samples 5 % apart in scale: MMD² ≈ 3e-4 while the kernel values are
≈ 0.6, so every row sum carries ~3,000 times the signal. The float32 path must hold relative
1e-5 against float64 (dense and blocked), and give one value run after run and at any thread
count.
"""
import pytest
import torch

from taskalign.align import mmd2
from taskalign.align.kernels import Kernel

N, D, SCALE = 2000, 768, 1.05
# the promise is 1e-5; float64 accumulation gives ~3e-8 here (float32 row sums gave 1.1e-5), so
# checking 1e-6 keeps a margin for other BLAS libraries and still catches float32 accumulation
REL = 1e-6


@pytest.fixture(scope="module")
def near_null():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(N, D, generator=gen)
    y = SCALE * torch.randn(N, D, generator=gen)
    sigma = mmd2(x.double(), y.double()).bandwidths[0]   # one kernel for both precisions
    return x, y, Kernel("rbf", (sigma,))


@pytest.fixture(scope="module")
def reference(near_null):
    x, y, kern = near_null
    return {est: mmd2(x.double(), y.double(), kernel=kern, estimator=est).mmd2
            for est in ("unbiased-u", "biased-v", "paired-u")}


def test_the_pair_is_near_null(near_null, reference):
    x, y, kern = near_null
    kernel_mean = float(kern(x[:200].double(), y[:200].double()).mean())
    assert 0.3 < kernel_mean < 0.9
    assert 0 < reference["unbiased-u"] < 1e-3 * kernel_mean     # the statistic is tiny next to the sums


@pytest.mark.parametrize("estimator", ["unbiased-u", "biased-v", "paired-u"])
def test_float32_holds_against_float64(near_null, reference, estimator):
    x, y, kern = near_null
    res = mmd2(x, y, kernel=kern, estimator=estimator)
    assert res.dtype == "float32" and res.path == "dense"
    assert res.mmd2 == pytest.approx(reference[estimator], rel=REL)


def test_blocked_float32_holds_against_float64(near_null, reference):
    x, y, kern = near_null
    res = mmd2(x, y, kernel=kern, max_kernel_entries=700 * 700)
    assert res.path == "blocked"
    assert res.mmd2 == pytest.approx(reference["unbiased-u"], rel=REL)


def test_median_heuristic_path_holds(near_null, reference):
    x, y, _ = near_null
    assert mmd2(x, y).mmd2 == pytest.approx(reference["unbiased-u"], rel=REL)


def test_same_value_run_after_run_and_at_any_thread_count(near_null):
    x, y, _ = near_null
    before = torch.get_num_threads()
    values = []
    try:
        for threads in (1, 2, 1, 2):
            torch.set_num_threads(threads)
            res = mmd2(x, y, permutations=20, seed=3)
            values.append((res.mmd2, res.p_value, res.bandwidths))
    finally:
        torch.set_num_threads(before)
    assert all(v == values[0] for v in values), values
