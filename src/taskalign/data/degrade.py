"""Image degradations for the restoration tasks (DESIGN.md §2, §4).

Through-plane down-sampling (super-resolution): groups of `factor` adjacent slices are averaged,
as a thick slice's profile integrates the tissue it spans, and the thick slices are linearly
interpolated back onto the original grid (each thick slice sits at the centre of its group;
beyond the first and last centre the nearest thick slice is repeated). In-plane ×2 is the same
operation along y and x.

EPI susceptibility distortion (distortion correction): the B0 offset is modelled as a smooth
field that is largest in and next to air (a Gaussian-blurred air mask, width `smooth_mm`) and
falls off into tissue; it is normalised to a peak of 1 and scaled by a peak displacement drawn
from `max_shift_mm` with a random sign (the phase-encode polarity). In EPI the displacement runs
along the phase-encode axis only (anterior-posterior, y). The forward model, for a
displacement d(y) in voxels evaluated on the distorted grid, is
    distorted(y) = true(y + d(y)) · J(y),   J = 1 + ∂d/∂y,
so ∫ distorted dy = ∫ true du (signal is conserved along each phase-encode column): DWI gets
J, ADC (a ratio of two DWIs distorted alike, J cancels) gets the displacement only. Sampling is
linear, with edge values repeated outside the volume. Peak displacements that would fold the
image (J < 0.1) are scaled down until J ≥ 0.1 everywhere. The air comes from
`susceptibility_source` (the phantom's `meta["air"]`, else dark midline T2w voxels); with no
air at all, a smooth random field stands in. Randomness comes only from the generator passed
in; `case_rng(case_id, seed)` makes one per case.
"""
from __future__ import annotations

import zlib

import numpy as np
from scipy import ndimage

from taskalign.data.case import Case, body_mask

MIN_JACOBIAN = 0.1
"""Smallest allowed 1 + ∂d/∂y: below it the simulated image would fold over itself."""


def case_rng(case_id: str, seed: int) -> np.random.Generator:
    """Generator for one case's degradation, a function of (case_id, seed) only: the case id is
    hashed with CRC-32 (stable across processes, unlike `hash`)."""
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    return np.random.default_rng([int(seed), zlib.crc32(case_id.encode("utf-8"))])


# ---------------------------------------------------------------- thick slices
def average_slabs(volume: np.ndarray, factor: int, axis: int = 0) -> np.ndarray:
    """Average each group of `factor` consecutive slices along `axis` (the last group may be
    shorter). (D, H, W) -> (ceil(D / factor), H, W) for axis 0."""
    if factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor}")
    moved = np.moveaxis(volume.astype(np.float64), axis, 0)
    groups = [moved[i : i + factor].mean(axis=0) for i in range(0, moved.shape[0], factor)]
    return np.moveaxis(np.stack(groups), 0, axis)


def _interpolation_weights(n: int, factor: int) -> np.ndarray:
    """(n, K) weights that linearly interpolate K thick slices (at their group centres) onto n
    original slice positions; rows sum to 1."""
    centres = np.array([np.arange(i, min(i + factor, n)).mean() for i in range(0, n, factor)])
    positions = np.arange(n, dtype=np.float64)
    eye = np.eye(centres.size)
    return np.stack([np.interp(positions, centres, eye[k]) for k in range(centres.size)], axis=1)


def resample_slabs(thick: np.ndarray, n: int, factor: int, axis: int = 0) -> np.ndarray:
    """Linearly interpolate thick slices (output of `average_slabs`) back to n slices along axis."""
    weights = _interpolation_weights(n, factor)  # (n, K)
    moved = np.moveaxis(thick, axis, 0)  # (K, ...)
    out = np.tensordot(weights, moved, axes=(1, 0))  # (n, ...)
    return np.moveaxis(out, 0, axis)


def downsample_through_plane(volume: np.ndarray, factor: int = 2, in_plane_factor: int = 1) -> np.ndarray:
    """(D, H, W) -> (D, H, W) float32: thick slices of `factor` slices (slice-profile averaging)
    resampled back to the grid; `in_plane_factor` > 1 does the same along y and x."""
    if volume.ndim != 3:
        raise ValueError(f"volume must be (D, H, W), got shape {volume.shape}")
    out = volume.astype(np.float64)
    for axis, f in ((0, factor), (1, in_plane_factor), (2, in_plane_factor)):
        if f != 1:
            out = resample_slabs(average_slabs(out, f, axis), volume.shape[axis], f, axis)
    return out.astype(np.float32)


# ---------------------------------------------------------------- EPI distortion
def susceptibility_source(case: Case, dark_fraction: float = 0.15, smooth_mm: float = 2.0) -> np.ndarray:
    """(D, H, W) bool air mask: `case.meta["air"]` when the source gives it (the phantom), else
    rectal air found on T2w: voxels of the in-plane smoothed T2w (Gaussian, `smooth_mm`) darker
    than `dark_fraction` × the body median, opened by a disc of radius `smooth_mm`, kept as the
    3D components that do not touch the in-plane border of the field of view (air around the
    body, signal-free end slices) and whose centre lies in the middle half along x (the rectum
    is midline on a gland-centred crop; dark muscle and bone lie laterally)."""
    if case.meta.get("air") is not None:
        air = np.asarray(case.meta["air"]).astype(bool)
        if air.shape != case.shape:
            raise ValueError(f"case {case.case_id}: meta['air'] has shape {air.shape}, grid is {case.shape}")
        return air
    t2w = case.sequence("t2w").astype(np.float64)
    sigma = [0.0] + [smooth_mm / s for s in case.spacing_mm[1:]]
    dark = ndimage.gaussian_filter(t2w, sigma) < dark_fraction * float(np.median(t2w[body_mask(case)]))
    ry, rx = (max(1, int(round(smooth_mm / s))) for s in case.spacing_mm[1:])
    yy, xx = np.mgrid[-ry : ry + 1, -rx : rx + 1]
    disc = ((yy / ry) ** 2 + (xx / rx) ** 2 <= 1.0)[None]
    labels, count = ndimage.label(ndimage.binary_opening(dark, structure=disc))
    height, width = case.shape[1:]
    air = np.zeros(case.shape, dtype=bool)
    for index, found in enumerate(ndimage.find_objects(labels), start=1):
        _, ys, xs = found
        touches_border = ys.start == 0 or xs.start == 0 or ys.stop == height or xs.stop == width
        centre_x = 0.5 * (xs.start + xs.stop - 1)
        if not touches_border and width / 4 <= centre_x <= 3 * width / 4:
            air |= labels == index
    return air


def b0_field(air: np.ndarray, spacing_mm: tuple[float, float, float], rng: np.random.Generator,
             smooth_mm: float = 6.0) -> np.ndarray:
    """(D, H, W) float64 B0-offset shape with peak |value| 1: the air mask (D, H, W) blurred by a
    Gaussian of `smooth_mm`. Without air (an empty mask) a smooth random field (Gaussian-blurred
    noise of width 4 × smooth_mm) stands in for residual inhomogeneity."""
    sigma_vox = [smooth_mm / s for s in spacing_mm]
    if air.any():
        field = ndimage.gaussian_filter(air.astype(np.float64), sigma_vox, mode="nearest")
    else:
        field = ndimage.gaussian_filter(rng.standard_normal(air.shape), [4 * s for s in sigma_vox], mode="wrap")
    peak = np.abs(field).max()
    return field / peak if peak > 0 else field


def displace_along_axis(images: np.ndarray, displacement_vox: np.ndarray, axis: int = 1,
                        jacobian_channels: tuple[int, ...] = ()) -> np.ndarray:
    """Pull-back resampling of images (C, D, H, W) along volume axis `axis` (0 z, 1 y, 2 x):
    out[c](p) = images[c](p + d(p) ê_axis), linear, edges repeated; channels in
    `jacobian_channels` are also multiplied by 1 + ∂d/∂axis. displacement_vox: (D, H, W)."""
    if images.ndim != 4 or displacement_vox.shape != images.shape[1:]:
        raise ValueError(f"images must be (C, D, H, W) and displacement (D, H, W); got {images.shape}, "
                         f"{displacement_vox.shape}")
    n = images.shape[1 + axis]
    d = np.moveaxis(displacement_vox.astype(np.float64), axis, -1)  # phase axis last
    position = np.clip(np.arange(n, dtype=np.float64) + d, 0.0, n - 1)
    lower = np.floor(position).astype(np.intp)
    upper = np.minimum(lower + 1, n - 1)
    weight = position - lower
    jacobian = 1.0 + np.gradient(d, axis=-1) if n > 1 else np.ones_like(d)
    out = np.empty(images.shape, dtype=np.float32)
    for c in range(images.shape[0]):
        channel = np.moveaxis(images[c].astype(np.float64), axis, -1)
        below, above = np.take_along_axis(channel, lower, -1), np.take_along_axis(channel, upper, -1)
        moved = (1.0 - weight) * below + weight * above
        if c in jacobian_channels:
            moved = moved * jacobian
        out[c] = np.moveaxis(moved, -1, axis)
    return out


def epi_distortion(images: np.ndarray, air_mask: np.ndarray | None, spacing_mm: tuple[float, float, float],
                   rng: np.random.Generator, max_shift_mm: tuple[float, float] = (2.0, 8.0),
                   phase_axis: int = 1, jacobian_channels: tuple[int, ...] = (0,),
                   smooth_mm: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """Simulate EPI susceptibility distortion on images (C, D, H, W) (e.g. DWI, ADC).

    The peak displacement is drawn uniformly from `max_shift_mm` (mm) with a random sign;
    `jacobian_channels` (DWI) get the intensity change, the others (ADC) only move. Returns the
    distorted images (C, D, H, W) float32 and the displacement (D, H, W) float32 in voxels along
    `phase_axis`. max_shift_mm = (0, 0) gives the identity."""
    low, high = max_shift_mm
    if not 0 <= low <= high:
        raise ValueError(f"max_shift_mm must be (low, high) with 0 <= low <= high, got {max_shift_mm}")
    air = np.zeros(images.shape[1:], dtype=bool) if air_mask is None else np.asarray(air_mask, dtype=bool)
    if air.shape != images.shape[1:]:
        raise ValueError(f"air_mask has shape {air.shape}, the images' grid is {images.shape[1:]}")
    field = b0_field(air, spacing_mm, rng, smooth_mm)
    peak_vox = rng.uniform(low, high) / spacing_mm[phase_axis] * rng.choice((-1.0, 1.0))
    displacement = peak_vox * field
    steepest = 0.0
    if images.shape[1 + phase_axis] > 1:
        steepest = float(np.abs(np.gradient(displacement, axis=phase_axis)).max())
    if steepest > 1.0 - MIN_JACOBIAN:  # the image would fold: shrink the peak until it does not
        displacement *= (1.0 - MIN_JACOBIAN) / steepest
    distorted = displace_along_axis(images, displacement, phase_axis, jacobian_channels)
    return distorted, displacement.astype(np.float32)
