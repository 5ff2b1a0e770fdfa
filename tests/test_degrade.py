"""Degradations: thick-slice down-sampling and EPI susceptibility distortion."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from synthetic_cases import make_case

from taskalign.data.degrade import (
    MIN_JACOBIAN,
    average_slabs,
    case_rng,
    displace_along_axis,
    downsample_through_plane,
    epi_distortion,
    susceptibility_source,
)

SPACING = (4.0, 2.5, 2.5)


# ---------------------------------------------------------------- thick slices
def test_slab_averages_are_the_means_of_their_slices():
    volume = np.random.default_rng(0).random((9, 4, 5))
    slabs = average_slabs(volume, 2)
    assert slabs.shape == (5, 4, 5)
    np.testing.assert_allclose(slabs[1], volume[2:4].mean(axis=0))
    np.testing.assert_allclose(slabs[-1], volume[8])  # the short last group


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_downsampling_preserves_the_mean_and_blurs_along_z(factor):
    volume = np.random.default_rng(1).random((12, 6, 6)).astype(np.float32)
    degraded = downsample_through_plane(volume, factor)
    assert degraded.shape == volume.shape and degraded.dtype == np.float32
    np.testing.assert_allclose(degraded.mean(axis=0), volume.mean(axis=0), rtol=1e-5)
    assert np.abs(np.diff(degraded, axis=0)).mean() < np.abs(np.diff(volume, axis=0)).mean()


def test_downsampling_keeps_linear_ramps_between_the_first_and_last_slab_centres():
    ramp = np.broadcast_to(np.arange(16.0)[:, None, None], (16, 3, 3))
    degraded = downsample_through_plane(ramp, 2)
    np.testing.assert_allclose(degraded[1:-1], ramp[1:-1], atol=1e-5)  # edges repeat the end slabs


def test_through_plane_only_leaves_z_constant_volumes_and_in_plane_option_blurs_xy():
    plane = np.random.default_rng(2).random((8, 8))
    volume = np.broadcast_to(plane, (6, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(downsample_through_plane(volume, 2), volume, rtol=1e-6)
    blurred = downsample_through_plane(volume, 2, in_plane_factor=2)
    assert not np.allclose(blurred, volume)
    np.testing.assert_allclose(blurred.mean(), volume.mean(), rtol=1e-5)


def test_downsampling_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"\(D, H, W\)"):
        downsample_through_plane(np.zeros((2, 3, 4, 5)))
    with pytest.raises(ValueError, match="factor"):
        downsample_through_plane(np.zeros((4, 4, 4)), 0)


# ---------------------------------------------------------------- EPI distortion
def _air(shape=(6, 32, 32)):
    air = np.zeros(shape, bool)
    air[:, 20:25, 13:19] = True
    return air


def _images(shape=(6, 32, 32), seed=0):
    rng = np.random.default_rng(seed)
    dwi = 50 + ndimage.gaussian_filter(rng.random(shape), 1.0) * 100
    adc = 1000 + ndimage.gaussian_filter(rng.random(shape), 1.0) * 800
    return np.stack([dwi, adc]).astype(np.float32)


def test_zero_field_is_the_identity():
    images = _images()
    distorted, displacement = epi_distortion(images, _air(), SPACING, np.random.default_rng(0), max_shift_mm=(0, 0))
    np.testing.assert_array_equal(distorted, images)
    assert not displacement.any()
    np.testing.assert_array_equal(displace_along_axis(images, np.zeros(images.shape[1:]), 1, (0,)), images)


def test_peak_displacement_in_range_and_concentrated_near_air():
    air = _air()
    _, displacement = epi_distortion(_images(), air, SPACING, np.random.default_rng(1), max_shift_mm=(3.0, 6.0))
    peak_mm = np.abs(displacement).max() * SPACING[1]
    assert 3.0 - 1e-4 <= peak_mm <= 6.0 + 1e-4
    distance = ndimage.distance_transform_edt(~air, sampling=SPACING)
    near, far = np.abs(displacement)[(distance > 0) & (distance < 5)], np.abs(displacement)[distance > 20]
    assert near.mean() > 5 * far.mean()


def test_displacement_is_along_y_only():
    images = _images()
    y_constant = np.broadcast_to(images[:, :, :1, :], images.shape).copy()  # varies along z and x only
    distorted, displacement = epi_distortion(y_constant, _air(), SPACING, np.random.default_rng(2),
                                             jacobian_channels=())
    assert np.abs(displacement).max() > 0.5
    np.testing.assert_allclose(distorted, y_constant, rtol=1e-6)  # nothing moves between columns
    point = np.zeros((1, 6, 32, 32), np.float32)
    point[0, 3, 16, 10] = 1.0
    moved = displace_along_axis(point, np.full((6, 32, 32), 0.5), axis=1)
    assert set(map(tuple, np.argwhere(moved[0])[:, [0, 2]])) == {(3, 10)}  # same (z, x) column
    assert moved[0, 3, 15, 10] == pytest.approx(0.5) and moved[0, 3, 16, 10] == pytest.approx(0.5)


def test_jacobian_conserves_each_column_signal_for_dwi_and_adc_only_moves():
    images = np.zeros((2, 6, 48, 32), np.float32)
    images[:, :, 10:38, :] = _images((6, 28, 32))  # signal away from the y edges
    images[0, :, 18:22, :] *= 3  # a bright band where the field is steep: without J its sum would change ~10 %
    air = np.zeros((6, 48, 32), bool)
    air[:, 22:26, 12:20] = True
    distorted, displacement = epi_distortion(images, air, SPACING, np.random.default_rng(3), max_shift_mm=(5, 6),
                                             smooth_mm=4.0)
    columns_before, columns_after = images[0].sum(axis=1), distorted[0].sum(axis=1)
    np.testing.assert_allclose(columns_after, columns_before, rtol=0.015)
    adc_only_moved = displace_along_axis(images[1:], displacement, axis=1)
    np.testing.assert_allclose(distorted[1:], adc_only_moved)
    assert not np.allclose(distorted[1], images[1])


def test_strong_fields_never_fold_the_image():
    images = _images()
    distorted, displacement = epi_distortion(images, _air(), SPACING, np.random.default_rng(4), max_shift_mm=(60, 60),
                                             smooth_mm=2.0)
    jacobian = 1 + np.gradient(displacement.astype(np.float64), axis=1)
    assert jacobian.min() >= MIN_JACOBIAN - 1e-4
    assert (distorted[0] >= 0).all()


def test_distortion_is_deterministic_in_the_generator_and_case_rng_is_stable():
    images, air = _images(), _air()
    a, _ = epi_distortion(images, air, SPACING, case_rng("case-7", 0))
    b, _ = epi_distortion(images, air, SPACING, case_rng("case-7", 0))
    c, _ = epi_distortion(images, air, SPACING, case_rng("case-7", 1))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    with pytest.raises(ValueError, match="seed"):
        case_rng("case-7", -1)


def test_without_air_a_smooth_field_still_distorts():
    distorted, displacement = epi_distortion(_images(), None, SPACING, np.random.default_rng(5), max_shift_mm=(4, 4))
    assert np.abs(displacement).max() * SPACING[1] == pytest.approx(4.0, rel=1e-4)
    assert not np.allclose(distorted, _images())


def test_susceptibility_source_uses_meta_air_else_finds_dark_midline_voxels():
    case = make_case(0)
    np.testing.assert_array_equal(susceptibility_source(case), case.meta["air"])
    found = susceptibility_source(make_case(0, air_in_meta=False))
    assert found.any()
    assert (found & ~case.meta["air"]).sum() == 0  # only the rectal air, no lateral or outside voxels


def test_bad_shift_range_is_rejected():
    with pytest.raises(ValueError, match="max_shift_mm"):
        epi_distortion(_images(), _air(), SPACING, np.random.default_rng(0), max_shift_mm=(5, 2))
