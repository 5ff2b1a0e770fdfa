"""`synthesis`: ADC from T2w (cross-sequence synthesis, DESIGN.md §2).

Input (1, D, H, W): T2w in units. Target (1, D, H, W): ADC / 1000 (ADC has absolute units,
10⁻⁶ mm²/s, so no per-case statistics are needed and tissue lands near 0.6-2.0);
to_units {"adc": scale 1000, offset 0}. No residual base: T2w is not an ADC estimate. The
sample is deterministic, so the seed plays no part.
"""
from __future__ import annotations

from taskalign.data.case import Case, body_mask
from taskalign.tasks.base import Sample, register_task
from taskalign.tasks.image_task import ImageTask
from taskalign.tasks.normalise import ADC_SCALE, affine, to_target_space


@register_task("synthesis")
class Synthesis(ImageTask):
    name = "synthesis"
    input_sequences = ("t2w",)
    out_channels = 1
    target_sequences = ("adc",)

    def make_sample(self, case: Case, seed: int) -> Sample:
        spec = affine(ADC_SCALE)
        return Sample(
            case_id=case.case_id,
            input=case.sequence("t2w").astype("float32")[None],
            input_sequences=self.input_sequences,
            target=to_target_space(case.sequence("adc"), spec)[None],
            mask=body_mask(case),
            gland=case.gland,
            base=None,
            to_units={"adc": spec},
        )
