"""`super_resolution`: T2w from its ×2 through-plane degraded copy (DESIGN.md §2).

Input (1, D, H, W): the T2w degraded by `data.degrade.downsample_through_plane` (thick slices of
`factor` slices, linearly resampled back onto the target grid; `in_plane_factor` 2 also
degrades y and x), in units. The degradation is deterministic, so the seed plays no part.

Target space: z-score by the *degraded input's* mean m and std s inside the input's own body
mask (`normalise.body_mask_of`), so the map exists at inference time:
    target = (t2w − m) / s,   base = (degraded − m) / s,   to_units {"t2w": scale s, offset m}.
Every model predicts a residual on `base`; predicting `base` itself is the identity baseline.
"""
from __future__ import annotations


from taskalign.data.case import Case, body_mask
from taskalign.data.degrade import downsample_through_plane
from taskalign.tasks.base import Sample, register_task
from taskalign.tasks.image_task import ImageTask
from taskalign.tasks.normalise import body_mask_of, to_target_space, zscore_spec


@register_task("super_resolution")
class SuperResolution(ImageTask):
    name = "super_resolution"
    input_sequences = ("t2w",)
    out_channels = 1
    target_sequences = ("t2w",)

    def __init__(self, factor: int = 2, in_plane_factor: int = 1) -> None:
        if factor < 1 or in_plane_factor < 1:
            raise ValueError(f"super_resolution: factors must be >= 1, got factor={factor}, "
                             f"in_plane_factor={in_plane_factor}")
        self.factor, self.in_plane_factor = factor, in_plane_factor

    def make_sample(self, case: Case, seed: int) -> Sample:
        t2w = case.sequence("t2w")
        degraded = downsample_through_plane(t2w, self.factor, self.in_plane_factor)  # (D, H, W)
        spec = zscore_spec(degraded, body_mask_of(degraded))
        return Sample(
            case_id=case.case_id,
            input=degraded[None],
            input_sequences=self.input_sequences,
            target=to_target_space(t2w, spec)[None],
            mask=body_mask(case),
            gland=case.gland,
            base=to_target_space(degraded, spec)[None],
            to_units={"t2w": spec},
        )
