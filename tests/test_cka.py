"""CKA: debiased (Song et al. 2012 HSIC_u) and biased, linear (feature space) and RBF."""
import itertools

import numpy as np
import pytest
import torch

from taskalign.align import cka, hsic_biased, hsic_unbiased, linear_cka, rbf_cka



def feats(n, d, seed, offset=0.0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=gen, dtype=torch.float64) + offset


def hsic_u_by_quadruples(k, l):
    """HSIC_u as the U-statistic over ordered distinct (i, j, q, r) with the kernel
    K_ij L_ij + K_ij L_qr - 2 K_ij L_iq (Song et al. 2012, Theorem 2)."""
    n = k.shape[0]
    total, count = 0.0, 0
    for i, j, q, r in itertools.permutations(range(n), 4):
        total += float(k[i, j] * l[i, j] + k[i, j] * l[q, r] - 2 * k[i, j] * l[i, q])
        count += 1
    return total / count


def test_song_formula_equals_its_u_statistic():
    x, y = feats(7, 3, 1, offset=2.0), feats(7, 5, 2)
    k, l = x @ x.T, torch.exp(-torch.cdist(y, y) ** 2 / 4)
    assert float(hsic_unbiased(k, l)) == pytest.approx(hsic_u_by_quadruples(k, l), rel=1e-10)


def test_debiased_linear_feature_space_matches_gram_matrices():
    x, y = feats(30, 6, 3, offset=4.0), feats(30, 9, 4)
    y = y + 0.7 * torch.cat([x, x[:, :3]], 1)
    k, l = x @ x.T, y @ y.T                              # uncentred Gram matrices, n × n
    direct = hsic_unbiased(k, l) / torch.sqrt(hsic_unbiased(k, k) * hsic_unbiased(l, l))
    assert linear_cka(x, y) == pytest.approx(float(direct), rel=1e-10)
    assert cka(x, y) == linear_cka(x, y, debiased=True)  # debiased linear is the default


def test_biased_linear_matches_centred_gram_formula():
    x, y = feats(25, 4, 5), feats(25, 7, 6)
    y = y + torch.cat([x, x[:, :3]], 1)
    h = torch.eye(25, dtype=torch.float64) - 1 / 25
    k, l = h @ x @ x.T @ h, h @ y @ y.T @ h
    direct = (k * l).sum() / torch.sqrt((k * k).sum() * (l * l).sum())
    assert linear_cka(x, y, debiased=False) == pytest.approx(float(direct), rel=1e-10)
    assert float(hsic_biased(x @ x.T, y @ y.T)) == pytest.approx(float(torch.trace(k @ l)) / 24**2, rel=1e-10)


@pytest.mark.parametrize("debiased", [True, False])
def test_linear_cka_identity_orthogonal_and_scale_invariance(debiased):
    x, y = feats(40, 8, 7), feats(40, 8, 8)
    y = y + x
    q, _ = torch.linalg.qr(feats(8, 8, 9))
    assert linear_cka(x, x, debiased) == pytest.approx(1.0, abs=1e-12)
    base = linear_cka(x, y, debiased)
    assert 0.2 < base < 0.99
    assert linear_cka(x @ q, y, debiased) == pytest.approx(base, rel=1e-10)
    assert linear_cka(3.7 * x, y, debiased) == pytest.approx(base, rel=1e-10)
    assert linear_cka(x + 5.0, y, debiased) == pytest.approx(base, rel=1e-10)
    # anisotropic scaling is not an invariance: the property test could fail
    stretch = torch.diag(torch.tensor([10.0, 1, 1, 1, 1, 1, 1, 0.1], dtype=torch.float64))
    assert abs(linear_cka(x @ stretch, y, debiased) - base) > 1e-3


def test_linear_cka_symmetric_and_unrelated_near_zero():
    x, y = feats(400, 10, 10), feats(400, 12, 11)
    assert linear_cka(x, y) == pytest.approx(linear_cka(y, x), rel=1e-12)
    assert abs(linear_cka(x, y)) < 0.02                 # debiased: no positive bias for unrelated features
    assert linear_cka(x, y, debiased=False) > linear_cka(x, y)


def test_rbf_cka():
    x, y = feats(50, 5, 12), feats(50, 5, 13)
    assert rbf_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    related = rbf_cka(x, x + 0.3 * y)
    assert related > 0.5 and related > rbf_cka(x, y)
    q, _ = torch.linalg.qr(feats(5, 5, 14))
    assert rbf_cka(x @ q, x + 0.3 * y) == pytest.approx(related, rel=1e-8)
    assert cka(x, y, kernel="rbf", debiased=False) == pytest.approx(rbf_cka(x, y, debiased=False))


def test_numpy_input_and_different_widths():
    x, y = feats(20, 3, 15), feats(20, 11, 16)
    assert linear_cka(x.numpy(), y.numpy()) == pytest.approx(linear_cka(x, y), rel=1e-12)


@pytest.mark.parametrize("call,match", [
    (lambda: linear_cka(feats(3, 4, 0), feats(3, 4, 1)), "at least 4 samples, got n=3"),
    (lambda: rbf_cka(feats(3, 4, 0), feats(3, 4, 1)), "at least 4 samples"),
    (lambda: linear_cka(feats(1, 4, 0), feats(1, 4, 1), debiased=False), "at least 2 samples"),
    (lambda: linear_cka(feats(10, 4, 0), feats(9, 4, 1)), "same samples"),
    (lambda: linear_cka(torch.ones(10, 4), feats(10, 4, 1)), "undefined"),
    (lambda: cka(feats(10, 4, 0), feats(10, 4, 1), kernel="laplacian"), "unknown CKA kernel"),
    (lambda: linear_cka(feats(10, 4, 0), torch.full((10, 4), float("inf"))), "NaN or Inf"),
])
def test_bad_inputs_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_three_samples_biased_is_finite():
    assert np.isfinite(linear_cka(feats(3, 4, 0), feats(3, 4, 1), debiased=False))
