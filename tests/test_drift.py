"""D2P / D2R / D2S: the reference kernel, paired drift and layer profiles (DESIGN.md §6)."""
import numpy as np
import pytest
import torch

from taskalign.align import (REFERENCE_SCALES, DriftResult, Kernel, drift, drift_profiles, drift_ratio,
                             layer_profile, linear_cka, mmd2, reference_kernel, reference_kernels)
from taskalign.align.drift import saturation



def feats(n, d, seed, scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    return scale * torch.randn(n, d, generator=gen)


def states(n=60, d=16):
    """A pretrained encoder's features, a gently fine-tuned copy, and an unrelated random init."""
    pretrained = feats(n, d, 1)
    finetuned = pretrained + 0.25 * feats(n, d, 2) + 0.3
    random = feats(n, d, 3, scale=0.5)
    return pretrained, finetuned, random


def test_reference_kernel_is_scaled_median_of_pretrained_features():
    pretrained = feats(50, 8, 4).double()
    dist = torch.cdist(pretrained, pretrained).numpy()[np.triu_indices(50, 1)]
    sigma_ref = np.sort(dist)[(dist.size + 1) // 2 - 1]
    kern = reference_kernel(pretrained)
    assert kern.name == "rbf"
    assert kern.bandwidths == pytest.approx(tuple(s * sigma_ref for s in REFERENCE_SCALES), rel=1e-12)
    assert REFERENCE_SCALES == (0.25, 0.5, 1.0, 2.0, 4.0) and "pretrained" in kern.rule


def test_drift_is_the_paired_u_statistic_with_the_fixed_kernel():
    pretrained, finetuned, _ = states()
    kern = reference_kernel(pretrained)
    res = drift(finetuned, pretrained, kern, permutations=200, seed=3)
    assert isinstance(res, DriftResult)
    assert (res.estimator, res.n, res.permutations, res.seed) == ("paired-u", 60, 200, 3)
    assert res.bandwidths == kern.bandwidths
    same = mmd2(finetuned, pretrained, kernel=kern, estimator="paired-u", permutations=200, seed=3)
    assert res.mmd2 == same.mmd2 and res.p_value == same.p_value
    assert res.cka == pytest.approx(linear_cka(finetuned, pretrained))
    assert set(res.to_dict()) >= {"mmd2", "p_value", "n", "bandwidths", "estimator"}


def test_drift_orders_states_and_tests_them():
    pretrained, finetuned, random = states()
    kern = reference_kernel(pretrained)
    d2p = drift(finetuned, pretrained, kern, permutations=200)
    d2r = drift(finetuned, random, kern, permutations=200)
    unchanged = drift(pretrained, pretrained + 1e-4 * feats(60, 16, 5), kern, permutations=200)
    assert 0 < d2p.mmd2 < d2r.mmd2
    assert abs(unchanged.mmd2) < 1e-3 * d2p.mmd2 and unchanged.p_value > 0.05
    assert d2p.p_value < 0.01 and d2r.p_value < 0.01
    assert 0 < drift_ratio(d2p, d2r) < 1


def test_drift_is_not_fooled_by_shared_image_content():
    """Both states see the same images: a per-image component shared by the two feature sets is
    not drift. The paired estimator centres on 0 there; the two-sample one goes negative."""
    values, unpaired = [], []
    for r in range(60):
        image = feats(30, 4, 100 + r, scale=2.0)
        a, b = image + 0.3 * feats(30, 4, 200 + r), image + 0.3 * feats(30, 4, 300 + r)
        kern = Kernel("rbf", (2.0, 4.0))
        values.append(drift(a, b, kern, permutations=0, with_cka=False).mmd2)
        unpaired.append(mmd2(a, b, kernel=kern).mmd2)
    v = np.array(values)
    assert abs(v.mean()) < 3 * v.std(ddof=1) / np.sqrt(len(v))
    assert np.mean(unpaired) < v.mean() - 3 * v.std(ddof=1) / np.sqrt(len(v))


def test_layer_profile_one_value_per_layer_in_order():
    pretrained, finetuned, random = states()
    banks_pre = {"stage1": pretrained[:, :8], "stage2": pretrained, "stage3": pretrained[:, :4]}
    banks_ft = {"stage1": finetuned[:, :8], "stage2": finetuned, "stage3": finetuned[:, :4]}
    kernels = reference_kernels(banks_pre)
    profile = layer_profile(banks_ft, banks_pre, kernels, permutations=50)
    assert list(profile) == ["stage1", "stage2", "stage3"]
    for layer, res in profile.items():
        assert res.bandwidths == kernels[layer].bandwidths and res.n == 60 and res.p_value is not None
    with pytest.raises(ValueError, match="kernels lacks layer"):
        layer_profile(banks_ft, banks_pre, {"stage1": kernels["stage1"]})
    with pytest.raises(ValueError, match="banks_b lacks layer"):
        layer_profile(banks_ft, {"stage1": pretrained[:, :8]}, kernels)


def test_drift_profiles_d2p_d2r_d2s():
    pretrained, finetuned, random = states()
    scratch = finetuned + 0.5 * feats(60, 16, 6)
    kernels = reference_kernels({"pooled": pretrained})
    out = drift_profiles({"pooled": finetuned}, kernels, pretrained={"pooled": pretrained},
                         random={"pooled": random}, scratch={"pooled": scratch}, permutations=50)
    assert list(out) == ["D2P", "D2R", "D2S"]
    assert out["D2P"]["pooled"].mmd2 < out["D2R"]["pooled"].mmd2
    only = drift_profiles({"pooled": finetuned}, kernels, pretrained={"pooled": pretrained}, permutations=0)
    assert list(only) == ["D2P"] and only["D2P"]["pooled"].p_value is None


def test_drift_bad_inputs():
    pretrained, finetuned, _ = states()
    kern = reference_kernel(pretrained)
    with pytest.raises(ValueError, match="fixed Kernel"):
        drift(finetuned, pretrained, "rbf")
    with pytest.raises(ValueError, match="one row per pair"):
        drift(finetuned[:50], pretrained, kern)
    with pytest.raises(ValueError, match="features per row"):
        drift(finetuned[:, :8], pretrained, kern)


def test_large_drift_states_its_p_value_method():
    pretrained, finetuned, _ = states(n=120)
    kern = reference_kernel(pretrained)
    res = drift(finetuned, pretrained, kern, permutations=100, max_kernel_entries=5000)
    assert "subsample" in res.p_value_method and res.p_value < 0.05
    dense = drift(finetuned, pretrained, kern, permutations=0)
    assert res.mmd2 == pytest.approx(dense.mmd2, rel=1e-5)


# ---- saturation: when MMD² has hit its ceiling --------------------------------------------------

def test_saturation_is_one_minus_across_over_within_by_brute_force():
    a, b = feats(12, 5, 7), feats(12, 5, 8) + 0.4
    kern = reference_kernel(a)
    k = lambda u, v: float(kern(u[None].double(), v[None].double())[0, 0])  # noqa: E731
    n = len(a)
    within = sum(k(a[i], a[j]) + k(b[i], b[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    across = sum(k(a[i], b[j]) + k(a[j], b[i]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    res = drift(a, b, kern, permutations=0)
    assert res.saturation == pytest.approx(1 - across / within, rel=1e-9)
    assert res.mmd2 == pytest.approx(within - across, rel=1e-4)          # MMD² = W − C, W its ceiling
    assert saturation(a, b, kern) == res.saturation


def test_saturated_mmd2_ranks_spread_not_distance():
    """Two states 40 σ_ref and 80 σ_ref away from a tight one: both MMD² sit at their ceilings,
    and the *nearer* but tighter state gets the larger value. Saturation flags both."""
    anchor = 0.05 * feats(40, 8, 1)
    kern = reference_kernel(anchor)
    sigma = kern.bandwidths[REFERENCE_SCALES.index(1.0)]
    near_tight = anchor + 40 * sigma
    far_spread = 2.0 * anchor + 80 * sigma
    d_near, d_far = drift(anchor, near_tight, kern, permutations=0), drift(anchor, far_spread, kern, permutations=0)
    assert d_near.saturation > 0.999 and d_far.saturation > 0.999
    assert d_near.mmd2 > d_far.mmd2                                       # the artefact saturation warns of
    close = drift(anchor, anchor + 0.1 * sigma * feats(40, 8, 2), kern, permutations=0)
    assert close.saturation < 0.2


def test_saturation_needs_paired_sets():
    kern = reference_kernel(feats(10, 4, 1))
    with pytest.raises(ValueError, match="saturation needs"):
        saturation(feats(10, 4, 1), feats(9, 4, 2), kern)


def test_saturated_mmd2_has_an_energy_distance_that_still_ranks_distance():
    """Beside each D2x rides the paired energy distance, which has no bandwidth: where both MMD²
    sit at their ceilings it still puts the farther state farther."""
    from taskalign.align import energy_distance

    anchor = 0.05 * feats(40, 8, 1)
    kern = reference_kernel(anchor)
    sigma = kern.bandwidths[REFERENCE_SCALES.index(1.0)]
    d_near = drift(anchor, anchor + 40 * sigma, kern, permutations=0)
    d_far = drift(anchor, 2.0 * anchor + 80 * sigma, kern, permutations=0)
    assert d_near.saturated and d_far.saturated and d_near.to_dict()["saturated"] is True
    assert d_far.energy > d_near.energy > 0
    assert d_near.energy == pytest.approx(energy_distance(anchor, anchor + 40 * sigma))
    assert drift(anchor, anchor, kern, permutations=0, with_energy=False).energy is None


# ---- the kernel rule: σ_ref from the pretrained and random-init features together ----------------

def test_reference_kernel_with_random_init_is_the_median_over_the_union():
    pretrained, random = feats(30, 6, 11), feats(25, 6, 12, scale=3.0)
    union = torch.cat([pretrained, random]).double()
    dist = torch.cdist(union, union).numpy()[np.triu_indices(55, 1)]
    sigma_ref = np.sort(dist)[(dist.size + 1) // 2 - 1]
    kern = reference_kernel(pretrained, random)
    assert kern.bandwidths == pytest.approx(tuple(s * sigma_ref for s in REFERENCE_SCALES), rel=1e-6)  # float32
    assert "pretrained and random-init" in kern.rule
    kernels = reference_kernels({"a": pretrained, "b": pretrained[:, :3]}, {"a": random, "b": random[:, :3]})
    assert kernels["a"].bandwidths == kern.bandwidths
    with pytest.raises(ValueError, match="random_banks lacks"):
        reference_kernels({"a": pretrained, "b": pretrained}, {"a": random})
    with pytest.raises(ValueError, match="differ in width"):
        reference_kernel(pretrained, random[:, :3])


def test_a_collapsed_pretrained_state_no_longer_saturates_d2r():
    """The measured ProViCNet case: pretrained (and fine-tuned) features all but identical, the
    random-init ones spread. σ_ref from the pretrained features alone is tiny and D2R sits at its
    ceiling; with the random-init features in σ_ref it does not."""
    n, d = 40, 16
    centre = feats(1, d, 20)
    pretrained = centre + 1e-3 * feats(n, d, 21)                          # collapsed
    finetuned = pretrained + 1e-3 * feats(n, d, 22)
    random = feats(n, d, 23)                                              # spread, around the origin
    old = drift(finetuned, random, reference_kernel(pretrained), permutations=0)
    new = drift(finetuned, random, reference_kernel(pretrained, random), permutations=0)
    assert old.saturation > 0.99 and old.saturated
    assert new.saturation < 0.9 and not new.saturated
    assert new.mmd2 > 0
