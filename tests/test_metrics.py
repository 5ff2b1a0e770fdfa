"""Metrics against independent computations (hand formulas, brute force, skimage)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from taskalign.tasks.metrics import (
    PSNR_CAP_DB,
    auroc,
    average_precision,
    balanced_accuracy,
    dice,
    image_metrics,
    ncc_masked,
    psnr_masked,
    scale_by_target_percentiles,
    ssim_masked,
)


def test_psnr_matches_the_formula_inside_the_mask():
    target = np.array([[[0.0, 0.5, 1.0, 0.2]]])
    pred = np.array([[[0.1, 0.5, 0.7, 0.9]]])
    mask = np.array([[[True, True, True, False]]])  # the last voxel (error 0.7) is outside
    mse = (0.1**2 + 0.0 + 0.3**2) / 3
    assert psnr_masked(pred, target, mask) == pytest.approx(10 * np.log10(1.0 / mse), rel=1e-12)


def test_psnr_of_a_perfect_prediction_is_the_cap():
    x = np.random.default_rng(0).random((2, 5, 5))
    assert psnr_masked(x, x, np.ones_like(x, dtype=bool)) == PSNR_CAP_DB


def test_dice_matches_set_counting():
    rng = np.random.default_rng(1)
    a, b = rng.random((4, 6, 6)) > 0.6, rng.random((4, 6, 6)) > 0.5
    set_a = {tuple(i) for i in np.argwhere(a)}
    set_b = {tuple(i) for i in np.argwhere(b)}
    assert dice(a, b) == pytest.approx(2 * len(set_a & set_b) / (len(set_a) + len(set_b)))
    assert dice(a, a) == 1.0
    assert dice(a, np.zeros_like(a)) == 0.0
    assert dice(np.zeros_like(a), np.zeros_like(a)) == 1.0


def test_dice_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        dice(np.zeros((2, 2)), np.zeros((2, 3)))


def test_auroc_matches_counting_concordant_pairs():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 30)
    scores = np.round(rng.random(30), 1)  # rounding creates ties, which count one half
    pairs = [(p, n) for p, n in itertools.product(np.flatnonzero(labels == 1), np.flatnonzero(labels == 0))]
    concordant = sum(1.0 if scores[p] > scores[n] else 0.5 if scores[p] == scores[n] else 0.0 for p, n in pairs)
    assert auroc(labels, scores) == pytest.approx(concordant / len(pairs))


def test_auroc_with_one_class_is_nan_and_warns():
    with pytest.warns(RuntimeWarning, match="one class"):
        assert np.isnan(auroc(np.ones(5), np.arange(5.0)))


def test_average_precision_by_hand():
    # ranked: +, -, +  -> precision 1 at recall 0.5, precision 2/3 at recall 1
    assert average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    with pytest.warns(RuntimeWarning):
        assert np.isnan(average_precision([0, 0], [0.1, 0.2]))


def test_balanced_accuracy_by_hand():
    # sensitivity 1/2, specificity 2/3
    assert balanced_accuracy([1, 1, 0, 0, 0], [1, 0, 0, 0, 1]) == pytest.approx((0.5 + 2 / 3) / 2)


def test_scaling_rule_uses_target_percentiles_inside_the_mask_and_clips():
    target = np.zeros((1, 1, 111))
    target[0, 0, :101] = np.arange(101.0)     # inside: p1 = 1, p99 = 99
    target[0, 0, 101:] = 1e6                   # outside the mask: must not move the percentiles
    mask = np.zeros_like(target, dtype=bool)
    mask[0, 0, :101] = True
    pred = target + 10.0
    pred01, target01 = scale_by_target_percentiles(pred, target, mask)
    assert target01[0, 0, 50] == pytest.approx((50 - 1) / 98)
    assert pred01[0, 0, 50] == pytest.approx((60 - 1) / 98)
    assert target01.min() == 0.0 and pred01.max() == 1.0   # clipped
    assert target01[0, 0, 0] == 0.0 and target01[0, 0, 100] == 1.0


def test_scaling_rule_rejects_constant_target():
    x = np.ones((1, 3, 3))
    with pytest.raises(ValueError, match="constant"):
        scale_by_target_percentiles(x, x, x > 0)


def test_ssim_of_constant_images_matches_the_hand_formula():
    a, b = 0.6, 0.4
    c1 = (0.01 * 1.0) ** 2  # contrast and structure terms are 1 for two flat images
    expected = (2 * a * b + c1) / (a**2 + b**2 + c1)
    shape = (2, 12, 12)
    assert ssim_masked(np.full(shape, b), np.full(shape, a), np.ones(shape, bool)) == pytest.approx(expected)


def test_ssim_matches_skimage_on_its_own_region():
    rng = np.random.default_rng(3)
    target = rng.random((1, 20, 20))
    pred = np.clip(target + 0.1 * rng.standard_normal(target.shape), 0, 1)
    mask = np.zeros(target.shape, bool)
    mask[0, 3:-3, 3:-3] = True  # skimage's mean SSIM leaves out the (7 - 1) / 2 border
    reference = structural_similarity(target[0], pred[0], data_range=1.0, win_size=7)
    assert ssim_masked(pred, target, mask) == pytest.approx(reference, rel=1e-10)
    assert ssim_masked(target, target, mask) == pytest.approx(1.0)


def test_ncc_is_affine_invariant_and_signed():
    rng = np.random.default_rng(4)
    x = rng.random((2, 6, 6))
    mask = np.ones_like(x, dtype=bool)
    assert ncc_masked(3 * x + 2, x, mask) == pytest.approx(1.0)
    assert ncc_masked(-x, x, mask) == pytest.approx(-1.0)


def test_image_metrics_ceiling_for_a_perfect_prediction():
    rng = np.random.default_rng(5)
    target = 100 + 50 * rng.random((3, 16, 16))
    mask = np.ones_like(target, dtype=bool)
    m = image_metrics(target.copy(), target, mask)
    assert m["psnr"] == PSNR_CAP_DB and m["ssim"] == pytest.approx(1.0) and m["ncc"] == pytest.approx(1.0)
