"""The five downstream tasks: samples, target spaces, losses and evaluation."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from synthetic_cases import make_case

from taskalign.data.case import body_mask
from taskalign.tasks import Sample, create_task, list_tasks
from taskalign.tasks.metrics import PSNR_CAP_DB
from taskalign.tasks.normalise import target_to_units

TASK_NAMES = ["classification", "segmentation", "super_resolution", "distortion_correction", "synthesis"]
EXPECTED = {  # kind, metric, out_channels, requires, target channels
    "classification": ("classification", "auroc", 1, ("label",)),
    "segmentation": ("segmentation", "dice", 2, ("lesion",)),
    "super_resolution": ("image", "psnr", 1, ()),
    "distortion_correction": ("image", "psnr", 2, ()),
    "synthesis": ("image", "psnr", 1, ()),
}


def test_all_five_tasks_are_registered_with_their_contract():
    assert set(TASK_NAMES) <= set(list_tasks())
    for name, (kind, metric, out_channels, requires) in EXPECTED.items():
        task = create_task(name)
        assert (task.name, task.kind, task.metric_name, task.out_channels, task.requires) == (
            name, kind, metric, out_channels, requires)
        assert task.higher_is_better


@pytest.mark.parametrize("name", TASK_NAMES)
def test_sample_shapes_dtypes_and_determinism(name):
    task, case = create_task(name), make_case(1)
    a, b = task.make_sample(case, seed=3), task.make_sample(case, seed=3)
    grid = case.shape
    assert a.input.shape == (len(task.input_sequences), *grid) and a.input.dtype == np.float32
    assert a.input_sequences == task.input_sequences
    assert a.mask.shape == grid and a.mask.dtype == bool
    expected_target = {"classification": (1,), "segmentation": (1, *grid)}.get(name, (task.out_channels, *grid))
    assert a.target.shape == expected_target and a.target.dtype == np.float32
    if a.base is not None:
        assert a.base.shape == a.target.shape and a.base.dtype == np.float32
    for field in ("input", "target", "mask"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_distortion_depends_on_seed_and_keeps_t2w():
    task, case = create_task("distortion_correction"), make_case(2)
    a, b = task.make_sample(case, 0), task.make_sample(case, 1)
    assert not np.allclose(a.input[1:], b.input[1:])
    np.testing.assert_array_equal(a.input[0], case.sequence("t2w"))
    # the target is the undistorted truth (its space follows the distorted input's statistics)
    np.testing.assert_allclose(target_to_units(a.target, a.to_units), target_to_units(b.target, b.to_units),
                               rtol=1e-5, atol=1e-3)
    assert list(a.to_units) == ["dwi", "adc"]


def test_distortion_works_without_meta_air():
    sample = create_task("distortion_correction").make_sample(make_case(3, air_in_meta=False), 0)
    assert not np.allclose(sample.base, sample.target)


@pytest.mark.parametrize("name, truth", [
    ("super_resolution", lambda c: c.image[[0]]),
    ("synthesis", lambda c: c.image[[2]]),
    ("distortion_correction", lambda c: c.image[[1, 2]]),
])
def test_to_units_round_trips_the_target(name, truth):
    case = make_case(4)
    sample = create_task(name).make_sample(case, 0)
    np.testing.assert_allclose(target_to_units(sample.target, sample.to_units), truth(case), rtol=1e-5, atol=1e-3)


def test_target_spaces_are_computed_from_the_input():
    case = make_case(5)
    sr = create_task("super_resolution").make_sample(case, 0)
    np.testing.assert_allclose(target_to_units(sr.base, sr.to_units)[0], sr.input[0], rtol=1e-5, atol=1e-3)
    dc = create_task("distortion_correction").make_sample(case, 0)
    np.testing.assert_allclose(target_to_units(dc.base, dc.to_units), dc.input[1:], rtol=1e-5, atol=1e-3)
    assert dc.base[0][dc.mask].mean() == pytest.approx(0.0, abs=1e-4)  # z-scored by the distorted DWI
    assert create_task("synthesis").make_sample(case, 0).base is None


def test_segmentation_target_keeps_grade_two_and_above_only():
    case = make_case(6, lesion_grades=(3, 1))
    target = create_task("segmentation").make_sample(case, 0).target[0]
    np.testing.assert_array_equal(target > 0, case.lesion == 3)
    assert (case.lesion == 1).any()


def test_segmentation_binary_masks():
    task = create_task("segmentation")
    positive = make_case(7, lesion_grades=(1,), label=1)  # a 0/1 mask of a csPCa case: csPCa lesions
    np.testing.assert_array_equal(task.make_sample(positive, 0).target[0] > 0, positive.lesion > 0)
    negative = make_case(7, lesion_grades=(1,), label=0)  # read as ISUP 1: no csPCa
    assert not task.make_sample(negative, 0).target.any()
    negative.meta["lesion_values"] = "binary"  # the source's own statement wins
    assert task.make_sample(negative, 0).target.any()


def test_missing_labels_raise_clear_errors():
    case = make_case(8)
    case.label, case.lesion = None, None
    assert create_task("classification").missing_labels(case) == ["label"]
    with pytest.raises(ValueError, match="label"):
        create_task("classification").make_sample(case, 0)
    with pytest.raises(ValueError, match="lesion"):
        create_task("segmentation").make_sample(case, 0)


# ---------------------------------------------------------------- evaluation
def _samples(name: str, n: int = 3) -> list[Sample]:
    task = create_task(name)
    return [task.make_sample(make_case(i, lesion_grades=(3,) if i % 2 == 0 else ()), seed=0) for i in range(n)]


def test_classification_evaluate_and_loss():
    task, samples = create_task("classification"), _samples("classification", 4)
    labels = [int(s.target[0]) for s in samples]
    assert labels == [1, 0, 1, 0]
    logits = [np.array([2.0 if y else -2.0]) for y in labels]
    metrics, rows = task.evaluate(logits, samples)
    assert metrics["auroc"] == 1.0 and metrics["balanced_accuracy"] == 1.0 and metrics["ap"] == 1.0
    assert [r["case_id"] for r in rows] == [s.case_id for s in samples]
    with pytest.warns(RuntimeWarning, match="one class"):
        one_class, _ = task.evaluate(logits[::2], samples[::2])
    assert np.isnan(one_class["auroc"])
    pred, target = torch.tensor([[0.3], [-1.0]]), torch.tensor([[1.0], [0.0]])
    manual = -(torch.log(torch.sigmoid(pred[0])) + torch.log(1 - torch.sigmoid(pred[1]))) / 2
    assert task.loss(pred, target).item() == pytest.approx(manual.item(), rel=1e-6)


def test_segmentation_evaluate_excludes_lesion_free_cases_from_the_mean():
    task, samples = create_task("segmentation"), _samples("segmentation", 3)
    perfect = [np.concatenate([-s.target, s.target]) for s in samples]  # logit of class 1 wins on lesion
    metrics, rows = task.evaluate(perfect, samples)
    assert metrics["dice"] == 1.0 and metrics["cases_with_lesion"] == 2
    assert metrics["false_positive_case_fraction"] == 0.0
    lesion_free = [r for r in rows if not r["has_lesion"]]
    assert len(lesion_free) == 1 and np.isnan(lesion_free[0]["dice"])
    everywhere = [np.stack([np.zeros_like(s.target[0]), np.ones_like(s.target[0])]) for s in samples]
    metrics, _ = task.evaluate(everywhere, samples)
    assert 0 < metrics["dice"] < 1 and metrics["false_positive_case_fraction"] == 1.0


def test_segmentation_loss_prefers_the_right_logits():
    task, sample = create_task("segmentation"), _samples("segmentation", 1)[0]
    target = torch.from_numpy(sample.target)[None]
    right = torch.cat([-5 * (2 * target - 1), 5 * (2 * target - 1)], dim=1)
    assert task.loss(right, target) < task.loss(-right, target)
    with pytest.raises(ValueError, match="logits"):
        task.loss(right[:, :1], target)


@pytest.mark.parametrize("name", ["super_resolution", "distortion_correction", "synthesis"])
def test_perfect_image_prediction_reaches_the_ceiling(name):
    task, samples = create_task(name), _samples(name, 2)
    metrics, rows = task.evaluate([s.target.copy() for s in samples], samples)
    assert metrics["psnr"] == PSNR_CAP_DB and metrics["ssim"] == pytest.approx(1.0)
    assert metrics["ncc"] == pytest.approx(1.0)
    if name == "distortion_correction":
        assert {"psnr_dwi", "psnr_adc", "ssim_dwi", "ssim_adc", "ncc_dwi", "ncc_adc"} <= set(rows[0])


@pytest.mark.parametrize("name", ["super_resolution", "distortion_correction"])
def test_identity_prediction_beats_a_constant_one(name):
    task, samples = create_task(name), _samples(name, 2)
    identity, _ = task.evaluate([s.base for s in samples], samples)
    constant, _ = task.evaluate([np.zeros_like(s.target) for s in samples], samples)
    assert identity["psnr"] > constant["psnr"] + 3 and identity["ssim"] > constant["ssim"]
    assert identity["psnr"] < PSNR_CAP_DB  # the degradation is real


def test_image_loss_is_squared_error_and_checks_shapes():
    task = create_task("synthesis")
    pred, target = torch.zeros(2, 1, 4, 4, 4), torch.full((2, 1, 4, 4, 4), 0.5)
    target[0, 0, 0, 0, 0] = 2.5  # one outlier: squared error weighs it 4^2 = 16 times the others
    expected = (0.25 * (2 * 64 - 1) + 2.5 ** 2) / (2 * 64)
    assert task.loss(pred, target).item() == pytest.approx(expected)
    with pytest.raises(ValueError, match="differ"):
        task.loss(pred, target[:, :, :2])


def test_image_evaluate_rejects_wrong_prediction_shape():
    task, samples = create_task("synthesis"), _samples("synthesis", 1)
    with pytest.raises(ValueError, match="prediction shape"):
        task.evaluate([samples[0].target[0]], samples)


def test_body_mask_is_the_metric_mask():
    case = make_case(9)
    for name in ("super_resolution", "synthesis", "distortion_correction"):
        np.testing.assert_array_equal(create_task(name).make_sample(case, 0).mask, body_mask(case))
