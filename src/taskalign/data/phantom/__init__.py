"""The built-in prostate bpMRI phantom (DESIGN.md §4): seeded synthetic patients on any grid.

Modules, in the order a case is made: `anatomy` (random geometry in mm), `lesions` (cancers,
benign mimics and the label rule), `grid` (voxel centres, thick-slice sub-slices), `noise`
(smooth fields in mm), `paint` (tissue classes), `tissues` (MR properties per class),
`contrast` (property maps and signal equations), `acquisition` (scanner: slice profile, PSF,
bias, Rician noise, ADC fit), `labels` (masks on the output grid), `cohort` (the public entry
points). See docs/phantom.md.
"""
from taskalign.data.phantom.acquisition import SCANNERS, Scanner
from taskalign.data.phantom.cohort import COHORTS, make_cohort, phantom_case
from taskalign.data.phantom.lesions import ADC_CSPCA_MAX, VOLUME_CSPCA_MIN_CC, is_significant

__all__ = ["ADC_CSPCA_MAX", "COHORTS", "SCANNERS", "Scanner", "VOLUME_CSPCA_MIN_CC", "is_significant",
           "make_cohort", "phantom_case"]
