"""`distortion_correction`: undistorted DWI and ADC from EPI-distorted ones plus T2w (DESIGN.md §2).

The distortion (`data.degrade.epi_distortion`) is drawn per (case, seed): a B0 field around the
air found by `susceptibility_source` (the phantom's `meta["air"]`, else dark midline T2w),
a peak displacement in `max_shift_mm` along y (anterior-posterior, the phase-encode axis) with a
random sign; DWI gets the Jacobian intensity change, ADC the displacement only.

Input (3, D, H, W) in units: T2w (undistorted, the anatomical reference), distorted DWI,
distorted ADC. Target (2, D, H, W): DWI z-scored by the *distorted* DWI's mean m and std s
inside the body mask of the (undistorted) T2w, and ADC / 1000. Both maps come from the input,
so they exist at inference time: to_units {"dwi": scale s, offset m; "adc": scale 1000}.
base (2, D, H, W) = the distorted DWI and ADC in that space, so the identity is the starting
point of every model's residual.
"""
from __future__ import annotations

import numpy as np

from taskalign.data.case import Case, body_mask
from taskalign.data.degrade import case_rng, epi_distortion, susceptibility_source
from taskalign.tasks.base import Sample, register_task
from taskalign.tasks.image_task import ImageTask
from taskalign.tasks.normalise import ADC_SCALE, affine, to_target_space, zscore_spec


@register_task("distortion_correction")
class DistortionCorrection(ImageTask):
    name = "distortion_correction"
    input_sequences = ("t2w", "dwi", "adc")
    out_channels = 2
    target_sequences = ("dwi", "adc")

    def __init__(self, max_shift_mm: tuple[float, float] = (2.0, 8.0), smooth_mm: float = 6.0) -> None:
        self.max_shift_mm, self.smooth_mm = tuple(max_shift_mm), smooth_mm

    def make_sample(self, case: Case, seed: int) -> Sample:
        """Deterministic in (case, seed); another seed draws another distortion."""
        undistorted = case.image[1:3].astype(np.float32)  # (2, D, H, W) DWI, ADC
        distorted, _ = epi_distortion(
            undistorted, susceptibility_source(case), case.spacing_mm, case_rng(case.case_id, seed),
            max_shift_mm=self.max_shift_mm, phase_axis=1, jacobian_channels=(0,), smooth_mm=self.smooth_mm,
        )
        mask = body_mask(case)
        specs = {"dwi": zscore_spec(distorted[0], mask), "adc": affine(ADC_SCALE)}

        def to_target(volumes: np.ndarray) -> np.ndarray:  # (2, D, H, W) units -> target space
            return np.stack([to_target_space(v, spec) for v, spec in zip(volumes, specs.values())])

        return Sample(
            case_id=case.case_id,
            input=np.concatenate([case.sequence("t2w")[None].astype(np.float32), distorted]),
            input_sequences=self.input_sequences,
            target=to_target(undistorted),
            mask=mask,
            gland=case.gland,
            base=to_target(distorted),
            to_units=specs,
        )
